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
 * Row-by-row resizer: `rows(src, dy)` leaves in h0/h1 the horizontally resized source rows that
 * destination row dy blends, with weights b0/b1; `verticalPixel` finishes one element. Callers fuse
 * the vertical step with their own output (letterbox.ts writes tensor planes directly). Tables and
 * row buffers are kept between frames of the same size.
 */
export class LinearResizer {
  /** Horizontal rows already shifted right by 4 (the SIMD path's first step; fits int16). */
  h0: Int16Array = new Int16Array(0);
  h1: Int16Array = new Int16Array(0);
  b0 = 0;
  b1 = 0;
  private xKey = '';
  private yKey = '';
  private xofs = new Int32Array(0);
  private xw0 = new Int32Array(0);
  private xw1 = new Int32Array(0);
  private yt!: AxisTable;
  private hrow: [Int16Array, Int16Array] = [new Int16Array(0), new Int16Array(0)];
  private hrowId: [number, number] = [-1, -1];
  private sw = 0;
  private sh = 0;
  private cn = 3;
  private dw = 0;

  /** Set up for one frame: source and destination sizes. */
  begin(sw: number, sh: number, cn: number, dw: number, dh: number): void {
    const xk = `${sw}:${dw}:${cn}`;
    if (xk !== this.xKey) {
      const t = axisTable(sw, dw, true);
      this.xofs = Int32Array.from(t.ofs, (v) => v * cn);
      this.xw0 = Int32Array.from(t.w0);
      this.xw1 = Int32Array.from(t.w1);
      this.xKey = xk;
    }
    const yk = `${sh}:${dh}`;
    if (yk !== this.yKey) {
      this.yt = axisTable(sh, dh, false);
      this.yKey = yk;
    }
    if (this.hrow[0].length < dw * cn) this.hrow = [new Int16Array(dw * cn), new Int16Array(dw * cn)];
    this.hrowId = [-1, -1];
    this.sw = sw;
    this.sh = sh;
    this.cn = cn;
    this.dw = dw;
  }

  /** Select the two (clamped) source rows of destination row dy and their weights. */
  rows(src: Uint8Array, dy: number): void {
    const sh = this.sh;
    const sy = this.yt.ofs[dy];
    const r0 = sy < 0 ? 0 : sy >= sh ? sh - 1 : sy;
    const r1 = sy + 1 < 0 ? 0 : sy + 1 >= sh ? sh - 1 : sy + 1;
    this.h0 = this.hRow(src, r0);
    this.h1 = this.hRow(src, r1);
    this.b0 = this.yt.w0[dy];
    this.b1 = this.yt.w1[dy];
  }

  /** Horizontal pass of source row `sy` (cached: consecutive output rows share source rows). */
  private hRow(src: Uint8Array, sy: number): Int16Array {
    if (this.hrowId[0] === sy) return this.hrow[0];
    if (this.hrowId[1] === sy) return this.hrow[1];
    // Replace the older buffer: rows are requested in increasing order.
    const slot = this.hrowId[0] < this.hrowId[1] ? 0 : 1;
    const out = this.hrow[slot];
    this.hrowId[slot] = sy;
    const { xofs, xw0, xw1, dw, cn } = this;
    const base = sy * this.sw * cn;
    if (cn === 3) {
      for (let dx = 0, o = 0; dx < dw; dx++, o += 3) {
        const s = base + xofs[dx];
        const a0 = xw0[dx];
        const a1 = xw1[dx];
        if (a1 === 0) {
          // also the right border, where s + 3 would be past the row
          out[o] = Math.imul(src[s], a0) >> 4;
          out[o + 1] = Math.imul(src[s + 1], a0) >> 4;
          out[o + 2] = Math.imul(src[s + 2], a0) >> 4;
        } else {
          out[o] = (Math.imul(src[s], a0) + Math.imul(src[s + 3], a1)) >> 4;
          out[o + 1] = (Math.imul(src[s + 1], a0) + Math.imul(src[s + 4], a1)) >> 4;
          out[o + 2] = (Math.imul(src[s + 2], a0) + Math.imul(src[s + 5], a1)) >> 4;
        }
      }
    } else {
      for (let dx = 0; dx < dw; dx++) {
        const s = base + xofs[dx];
        const a0 = xw0[dx];
        const a1 = xw1[dx];
        for (let c = 0; c < cn; c++) out[dx * cn + c] = (a1 === 0 ? src[s + c] * a0 : src[s + c] * a0 + src[s + cn + c] * a1) >> 4;
      }
    }
    return out;
  }
}

/**
 * Vertical blend of one element (h0s/h1s: horizontal values already >> 4), with
 * VResizeLinearVec_32s8u's arithmetic: v_mul_hi(pack(S>>4), b),
 * summed, rounding shift by 2. Measured against cv2 4.11 it applies to every element of a row,
 * tails included (the scalar FixedPtCast formula (S0*b0 + S1*b1 + 2^21) >> 22 would differ by 1 in
 * places). The result is always within 0..255 since b0 + b1 = 2048.
 */
export function verticalPixel(h0s: number, h1s: number, b0: number, b1: number): number {
  return ((Math.imul(h0s, b0) >> 16) + (Math.imul(h1s, b1) >> 16) + 2) >> 2;
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
  resizer.begin(sw, sh, cn, dw, dh);
  for (let dy = 0; dy < dh; dy++) {
    resizer.rows(src, dy);
    const { h0, h1, b0, b1 } = resizer;
    const o = dy * w;
    for (let x = 0; x < w; x++) dst[o + x] = ((Math.imul(h0[x], b0) >> 16) + (Math.imul(h1[x], b1) >> 16) + 2) >> 2;
  }
  return dst;
}
