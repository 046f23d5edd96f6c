/**
 * Reads the few parts of an ONNX ModelProto the detector needs: `metadata_props` (ultralytics puts
 * names/imgsz/stride/task/args there; onnxruntime-node does not expose them), the graph's input and
 * output value infos (element type, symbolic or fixed dims), the opset, and the operator types of
 * the graph's nodes (a QDQ int8 model is told apart by its QuantizeLinear/DequantizeLinear nodes).
 *
 * Hand-written rather than protobufjs: we need six fields of onnx.proto and must skip the weight
 * initializers without decoding them; a 100-line wire-format reader does that with no schema file
 * and no copy of the tensor data.
 */

export interface OnnxDim {
  /** Fixed size, or undefined when symbolic/unknown. */
  value?: number;
  /** Symbolic name (dynamic axes), when set. */
  param?: string;
}

export interface OnnxValueInfo {
  name: string;
  /** TensorProto.DataType: 1 float32, 10 float16, 11 float64, 7 int64 ... (0 when not a tensor). */
  elemType: number;
  /** Undefined when the shape is absent altogether. */
  dims?: OnnxDim[];
}

export interface OnnxModelSummary {
  irVersion: number;
  producerName: string;
  producerVersion: string;
  opset: number;
  metadata: Record<string, string>;
  inputs: OnnxValueInfo[];
  outputs: OnnxValueInfo[];
  /** How many nodes of each operator type the main graph holds (`QuantizeLinear`: 12, ...). */
  opTypes: Record<string, number>;
}

export const ONNX_ELEM_TYPE: Record<number, string> = {
  1: 'float32',
  2: 'uint8',
  3: 'int8',
  5: 'int16',
  6: 'int32',
  7: 'int64',
  9: 'bool',
  10: 'float16',
  11: 'float64',
  16: 'bfloat16',
};

export class ProtoError extends Error {}

/** Minimal protobuf wire-format cursor over one message's bytes. */
class Reader {
  pos: number;
  constructor(
    readonly buf: Uint8Array,
    start = 0,
    readonly end = buf.length,
  ) {
    this.pos = start;
  }

  get done(): boolean {
    return this.pos >= this.end;
  }

  varint(): number {
    // Values here (lengths, ids, dims) fit in 2^53; larger varints are read approximately.
    let result = 0;
    let mul = 1;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) throw new ProtoError('truncated varint');
      const b = this.buf[this.pos++];
      result += (b & 0x7f) * mul;
      if (b < 0x80) return result;
      mul *= 128;
    }
    throw new ProtoError('varint too long');
  }

  /** Returns [fieldNumber, wireType]. */
  tag(): [number, number] {
    const t = this.varint();
    const field = Math.floor(t / 8);
    if (field === 0) throw new ProtoError('field number 0');
    return [field, t & 7];
  }

  bytes(): [number, number] {
    const len = this.varint();
    const start = this.pos;
    if (start + len > this.end) throw new ProtoError('length-delimited field runs past its message');
    this.pos += len;
    return [start, start + len];
  }

  string(): string {
    const [s, e] = this.bytes();
    return Buffer.from(this.buf.buffer, this.buf.byteOffset + s, e - s).toString('utf8');
  }

  skip(wire: number): void {
    switch (wire) {
      case 0:
        this.varint();
        return;
      case 1:
        this.pos += 8;
        break;
      case 2:
        this.bytes();
        return;
      case 5:
        this.pos += 4;
        break;
      default:
        throw new ProtoError(`unsupported wire type ${wire}`);
    }
    if (this.pos > this.end) throw new ProtoError('fixed-width field runs past its message');
  }

  sub([s, e]: [number, number]): Reader {
    return new Reader(this.buf, s, e);
  }
}

/** Parse a ModelProto; throws ProtoError when the bytes are not one. */
export function readOnnxModel(buf: Uint8Array): OnnxModelSummary {
  const r = new Reader(buf);
  const out: OnnxModelSummary = {
    irVersion: 0,
    producerName: '',
    producerVersion: '',
    opset: 0,
    metadata: {},
    inputs: [],
    outputs: [],
    opTypes: {},
  };
  let sawGraph = false;
  while (!r.done) {
    const [field, wire] = r.tag();
    if (field === 1 && wire === 0) out.irVersion = r.varint();
    else if (field === 2 && wire === 2) out.producerName = r.string();
    else if (field === 3 && wire === 2) out.producerVersion = r.string();
    else if (field === 7 && wire === 2) {
      sawGraph = true;
      readGraph(r.sub(r.bytes()), out);
    } else if (field === 8 && wire === 2) {
      // OperatorSetIdProto: domain=1, version=2; the default ('' or 'ai.onnx') domain is the opset.
      const o = r.sub(r.bytes());
      let domain = '';
      let version = 0;
      while (!o.done) {
        const [f, w] = o.tag();
        if (f === 1 && w === 2) domain = o.string();
        else if (f === 2 && w === 0) version = o.varint();
        else o.skip(w);
      }
      if (domain === '' || domain === 'ai.onnx') out.opset = version;
    } else if (field === 14 && wire === 2) {
      const e = r.sub(r.bytes());
      let key = '';
      let value = '';
      while (!e.done) {
        const [f, w] = e.tag();
        if (f === 1 && w === 2) key = e.string();
        else if (f === 2 && w === 2) value = e.string();
        else e.skip(w);
      }
      out.metadata[key] = value;
    } else r.skip(wire);
  }
  if (!sawGraph || out.irVersion === 0) throw new ProtoError('no ir_version or graph: not an ONNX model');
  return out;
}

function readGraph(g: Reader, out: OnnxModelSummary): void {
  const initializers = new Set<string>();
  const inputs: OnnxValueInfo[] = [];
  while (!g.done) {
    const [field, wire] = g.tag();
    if (field === 1 && wire === 2) {
      // NodeProto: only op_type (field 4); attributes (Constant tensors) are skipped unread.
      const n = g.sub(g.bytes());
      while (!n.done) {
        const [f, w] = n.tag();
        if (f === 4 && w === 2) {
          const op = n.string();
          out.opTypes[op] = (out.opTypes[op] ?? 0) + 1;
        } else n.skip(w);
      }
    } else if (field === 11 && wire === 2) inputs.push(readValueInfo(g.sub(g.bytes())));
    else if (field === 12 && wire === 2) out.outputs.push(readValueInfo(g.sub(g.bytes())));
    else if (field === 5 && wire === 2) {
      // TensorProto: only its name (field 8), to drop initializers listed as inputs (IR < 4).
      const t = g.sub(g.bytes());
      while (!t.done) {
        const [f, w] = t.tag();
        if (f === 8 && w === 2) initializers.add(t.string());
        else t.skip(w);
      }
    } else g.skip(wire);
  }
  out.inputs = inputs.filter((i) => !initializers.has(i.name));
}

function readValueInfo(v: Reader): OnnxValueInfo {
  const info: OnnxValueInfo = { name: '', elemType: 0 };
  while (!v.done) {
    const [field, wire] = v.tag();
    if (field === 1 && wire === 2) info.name = v.string();
    else if (field === 2 && wire === 2) {
      const tp = v.sub(v.bytes());
      while (!tp.done) {
        const [f, w] = tp.tag();
        if (f === 1 && w === 2) readTensorType(tp.sub(tp.bytes()), info);
        else tp.skip(w);
      }
    } else v.skip(wire);
  }
  return info;
}

function readTensorType(t: Reader, info: OnnxValueInfo): void {
  while (!t.done) {
    const [f, w] = t.tag();
    if (f === 1 && w === 0) info.elemType = t.varint();
    else if (f === 2 && w === 2) {
      const shape = t.sub(t.bytes());
      info.dims = [];
      while (!shape.done) {
        const [sf, sw] = shape.tag();
        if (sf === 1 && sw === 2) {
          const d = shape.sub(shape.bytes());
          const dim: OnnxDim = {};
          while (!d.done) {
            const [df, dw] = d.tag();
            if (df === 1 && dw === 0) dim.value = d.varint();
            else if (df === 2 && dw === 2) dim.param = d.string();
            else d.skip(dw);
          }
          info.dims.push(dim);
        } else shape.skip(sw);
      }
    } else t.skip(w);
  }
}
