/**
 * Just enough protobuf wire format for tests that take ONNX models apart (onnx.proto's
 * ModelProto): a varint encoder and a walk over one message's fields. Not a general codec.
 */
export function varint(n: number): number[] {
  const out: number[] = [];
  while (n >= 0x80) {
    out.push((n % 0x80) | 0x80);
    n = Math.floor(n / 0x80);
  }
  out.push(n);
  return out;
}

/** One message's fields: [field number, wire type, field start (tag), body start, end]. */
export function* fields(b: Uint8Array): Generator<[number, number, number, number, number]> {
  let pos = 0;
  const rv = (): number => {
    let v = 0;
    let mul = 1;
    for (;;) {
      const x = b[pos++]!;
      v += (x & 0x7f) * mul;
      if (x < 0x80) return v;
      mul *= 128;
    }
  };
  while (pos < b.length) {
    const start = pos;
    const tag = rv();
    const wire = tag & 7;
    let body = pos;
    if (wire === 0) rv();
    else if (wire === 2) {
      const len = rv();
      body = pos;
      pos += len;
    } else if (wire === 1) pos += 8;
    else if (wire === 5) pos += 4;
    else throw new Error(`wire type ${wire} at ${start}`);
    yield [Math.floor(tag / 8), wire, start, body, pos];
  }
}

/** A length-delimited field: tag (field, wire type 2), length, bytes. */
export function lengthDelimited(field: number, body: Uint8Array | number[]): number[] {
  return [...varint(field * 8 + 2), ...varint(body.length), ...body];
}
