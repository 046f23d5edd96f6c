/**
 * IEEE half-precision helpers for fp16 ONNX exports (Node 20 has no Float16Array).
 * Conversions go through lookup tables so the per-frame cost is one indexed load per value.
 */

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** float32 (given as a JS number) -> half bits, round to nearest even (as numpy/torch do). */
export function toHalfBits(x: number): number {
  f32[0] = x;
  const b = u32[0];
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  let mant = b & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0); // inf / nan
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00; // overflow -> inf
  if (e <= 0) {
    if (e < -10) return sign; // underflow -> signed zero
    mant |= 0x800000; // subnormal half: shift the implicit bit in
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    const rest = mant & ((1 << shift) - 1);
    let m = mant >>> shift;
    if (rest > half || (rest === half && m & 1)) m++;
    return sign | m;
  }
  const m = mant >>> 13;
  const rest = mant & 0x1fff;
  let out = sign | (e << 10) | m;
  if (rest > 0x1000 || (rest === 0x1000 && m & 1)) out++; // a carry rolls into the exponent correctly
  return out;
}

let halfToFloatTable: Float32Array | undefined;

/** All 65536 half values as float32, built once (256 KB). */
export function halfTable(): Float32Array {
  if (halfToFloatTable) return halfToFloatTable;
  const t = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const s = h & 0x8000 ? -1 : 1;
    const e = (h >>> 10) & 0x1f;
    const m = h & 0x3ff;
    if (e === 0) t[h] = s * m * 2 ** -24;
    else if (e === 0x1f) t[h] = m ? NaN : s * Infinity;
    else t[h] = s * (1 + m / 1024) * 2 ** (e - 15);
  }
  halfToFloatTable = t;
  return t;
}

/** Round a number to the nearest half-precision value (returned as a number). */
export function roundHalf(x: number): number {
  return halfTable()[toHalfBits(x)];
}

/** Convert half bits to float32 into `out` (reused by the caller). */
export function halfToFloat(src: Uint16Array, out: Float32Array): void {
  const t = halfTable();
  for (let i = 0; i < src.length; i++) out[i] = t[src[i]];
}
