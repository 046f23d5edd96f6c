/**
 * Bilinear resize of 8-bit interleaved images, bit-exact with OpenCV 4.11's `cv::resize(...,
 * INTER_LINEAR)` on CV_8U (imgproc/src/resize.cpp: the generic fixed-point path, `HResizeLinear`
 * + `VResizeLinear` with 11-bit coefficients, rounded the way its SIMD `VResizeLinearVec_32s8u`
 * rounds).
 *
 * Why hand-written: ultralytics resizes with OpenCV; libvips (sharp) resamples with different
 * kernels and rounding, which moves pixels by ±1..3 and, near thresholds, boxes and scores. The
 * detector wants ultralytics' exact input tensor, and the resize is fused with the letterbox
 * write (see letterbox.ts) so a frame needs no intermediate image.
 */

const COEF_BITS = 11;
const COEF_SCALE = 1 << COEF_BITS; // INTER_RESIZE_COEF_SCALE

/** cvRound on a float: round half to even (SSE cvtss2si under the default rounding mode). */
function cvRound(x: number): number {
  const f = Math.floor(x);
  const d = x - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

function saturateShort(x: number): number {
  const v = cvRound(x);
  return v < -32768 ? -32768 : v > 32767 ? 32767 : v;
}

/** Source index and fixed-point weights per destination coordinate along one axis. */
export interface AxisTable {
  ofs: Int32Array;
  w0: Int16Array;
  w1: Int16Array;
}

/**
 * resize.cpp's coefficient loop: fx = (float)((dx+0.5)*scale - 0.5), sx = floor(fx), fx -= sx;
 * the x axis clamps at both borders (fx = 0), the y axis does not (rows are clamped instead).
 */
export function axisTable(src: number, dst: number, clampBorders: boolean): AxisTable {
  const scale = 1 / (dst / src); // resize.cpp: scale_x = 1./inv_scale_x, inv_scale_x = (double)dsize/ssize
  const ofs = new Int32Array(dst);
  const w0 = new Int16Array(dst);
  const w1 = new Int16Array(dst);
  for (let d = 0; d < dst; d++) {
    let f = Math.fround((d + 0.5) * scale - 0.5);
    let s = Math.floor(f);
    f = Math.fround(f - s);
    if (clampBorders) {
      if (s < 0) {
        f = 0;
        s = 0;
      }
      if (s + 1 >= src) {
        f = 0;
        s = src - 1;
      }
    }
    ofs[d] = s;
    w0[d] = saturateShort(Math.fround(1 - f) * COEF_SCALE);
    w1[d] = saturateShort(f * COEF_SCALE);
  }
  return { ofs, w0, w1 };
}

/**
 * Resizes row by row into `row` (a reused buffer of dw*cn bytes) and hands each finished
 * destination row to `onRow`. Keeps its tables and row buffers between frames of the same size.
 */
export class LinearResizer {
  private xKey = '';
  private yKey = '';
  private xt!: AxisTable;
  private yt!: AxisTable;
  private hrow: [Int32Array, Int32Array] = [new Int32Array(0), new Int32Array(0)];
  private hrowId: [number, number] = [-1, -1];
  private row = new Uint8Array(0);

  resize(src: Uint8Array, sw: number, sh: number, cn: number, dw: number, dh: number, onRow: (dy: number, row: Uint8Array) => void): void {
    const xk = `${sw}:${dw}:${cn}`;
    if (xk !== this.xKey) {
      this.xt = axisTable(sw, dw, true);
      this.xKey = xk;
    }
    const yk = `${sh}:${dh}`;
    if (yk !== this.yKey) {
      this.yt = axisTable(sh, dh, false);
      this.yKey = yk;
    }
    const width = dw * cn;
    if (this.row.length < width) {
      this.row = new Uint8Array(width);
      this.hrow = [new Int32Array(width), new Int32Array(width)];
    }
    this.hrowId = [-1, -1];
    const row = this.row;
    const { ofs: yofs, w0: yb0, w1: yb1 } = this.yt;
    for (let dy = 0; dy < dh; dy++) {
      const sy = yofs[dy];
      const r0 = sy < 0 ? 0 : sy >= sh ? sh - 1 : sy;
      const r1 = sy + 1 < 0 ? 0 : sy + 1 >= sh ? sh - 1 : sy + 1;
      const h0 = this.hRow(src, sw, cn, width, r0);
      const h1 = this.hRow(src, sw, cn, width, r1);
      const b0 = yb0[dy];
      const b1 = yb1[dy];
      // VResizeLinearVec_32s8u's arithmetic: v_mul_hi(pack(S>>4), b), summed, rounding shift by 2.
      // Measured against cv2 4.11 it applies to every element of the row, tails included (the
      // scalar FixedPtCast formula (S0*b0 + S1*b1 + 2^21) >> 22 would differ by 1 in places).
      for (let x = 0; x < width; x++) {
        const v = ((((h0[x] >> 4) * b0) >> 16) + (((h1[x] >> 4) * b1) >> 16) + 2) >> 2;
        row[x] = v < 0 ? 0 : v > 255 ? 255 : v;
      }
      onRow(dy, row);
    }
  }

  /** Horizontal pass of source row `sy` (cached: consecutive output rows share source rows). */
  private hRow(src: Uint8Array, sw: number, cn: number, width: number, sy: number): Int32Array {
    if (this.hrowId[0] === sy) return this.hrow[0];
    if (this.hrowId[1] === sy) return this.hrow[1];
    // Replace the older buffer: rows are requested in increasing order.
    const slot = this.hrowId[0] < this.hrowId[1] ? 0 : 1;
    const out = this.hrow[slot];
    this.hrowId[slot] = sy;
    const { ofs, w0, w1 } = this.xt;
    const base = sy * sw * cn;
    const dw = width / cn;
    if (cn === 3) {
      for (let dx = 0, o = 0; dx < dw; dx++, o += 3) {
        const s = base + ofs[dx] * 3;
        const a0 = w0[dx];
        const a1 = w1[dx];
        if (a1 === 0) {
          out[o] = src[s] * a0;
          out[o + 1] = src[s + 1] * a0;
          out[o + 2] = src[s + 2] * a0;
        } else {
          out[o] = src[s] * a0 + src[s + 3] * a1;
          out[o + 1] = src[s + 1] * a0 + src[s + 4] * a1;
          out[o + 2] = src[s + 2] * a0 + src[s + 5] * a1;
        }
      }
    } else {
      for (let dx = 0; dx < dw; dx++) {
        const s = base + ofs[dx] * cn;
        const a0 = w0[dx];
        const a1 = w1[dx];
        for (let c = 0; c < cn; c++) out[dx * cn + c] = a1 === 0 ? src[s + c] * a0 : src[s + c] * a0 + src[s + cn + c] * a1;
      }
    }
    return out;
  }
}

/** Resize into a new or given HWC buffer (the val loader's long-side resize uses this). */
export function resizeLinear(
  resizer: LinearResizer,
  src: Uint8Array,
  sw: number,
  sh: number,
  cn: number,
  dw: number,
  dh: number,
  dst: Uint8Array = new Uint8Array(dw * dh * cn),
): Uint8Array {
  const w = dw * cn;
  resizer.resize(src, sw, sh, cn, dw, dh, (dy, row) => dst.set(row.subarray(0, w), dy * w));
  return dst;
}
