import { toHalfBits } from './fp16.js';
import { LinearResizer, resizeLinear } from './resize.js';
import type { RgbImage } from './decode.js';

/** Python 3's round(): half to even (`round(2.5) == 2`), which ultralytics' letterbox relies on. */
export function pyRound(x: number): number {
  const f = Math.floor(x);
  const d = x - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/** Where an image lands in the model input: resized size, padding, and the canvas. */
export interface LetterboxGeometry {
  /** Size of the image given to the letterbox. */
  srcW: number;
  srcH: number;
  /** Resized (unpadded) size. */
  newW: number;
  newH: number;
  /** Padding before the image (left/top) and the canvas (tensor) size. */
  left: number;
  top: number;
  outW: number;
  outH: number;
}

export interface LetterboxOptions {
  /** Minimum stride-multiple rectangle instead of the full canvas (dynamic models in predict). */
  auto?: boolean;
  stride?: number;
  /** false: never enlarge (the validator's letterbox). */
  scaleup?: boolean;
}

/** data/augment.py LetterBox.__call__ (8.3.253), centred, no scale_fill. `shape` is [h, w]. */
export function letterboxGeometry(
  srcW: number,
  srcH: number,
  shape: readonly [number, number],
  opts: LetterboxOptions = {},
): LetterboxGeometry {
  const { auto = false, stride = 32, scaleup = true } = opts;
  let r = Math.min(shape[0] / srcH, shape[1] / srcW);
  if (!scaleup) r = Math.min(r, 1);
  const newW = pyRound(srcW * r);
  const newH = pyRound(srcH * r);
  let dw = shape[1] - newW;
  let dh = shape[0] - newH;
  if (auto) {
    dw = ((dw % stride) + stride) % stride; // np.mod
    dh = ((dh % stride) + stride) % stride;
  }
  dw /= 2;
  dh /= 2;
  const top = pyRound(dh - 0.1);
  const bottom = pyRound(dh + 0.1);
  const left = pyRound(dw - 0.1);
  const right = pyRound(dw + 0.1);
  return { srcW, srcH, newW, newH, left, top, outW: newW + left + right, outH: newH + top + bottom };
}

/**
 * The validator's image size for one image (data/base.py BaseDataset.load_image, rect_mode):
 * long side to `imgsz` with math.ceil on the short side, capped at imgsz; unchanged when r == 1.
 * 8.3.253 resizes with INTER_LINEAR both ways (older releases used INTER_AREA when shrinking).
 */
export function valLoadSize(w0: number, h0: number, imgsz: number): [number, number] {
  const r = imgsz / Math.max(h0, w0);
  if (r === 1) return [w0, h0];
  return [Math.min(Math.ceil(w0 * r), imgsz), Math.min(Math.ceil(h0 * r), imgsz)];
}

/**
 * The validator's batch shape for one image when rect batching applies (dynamic models):
 * data/base.py set_rectangle with a batch of one and pad 0.5, as [h, w].
 */
export function valRectShape(w0: number, h0: number, imgsz: number, stride: number): [number, number] {
  const ar = h0 / w0;
  let s: [number, number] = [1, 1];
  if (ar < 1) s = [ar, 1];
  else if (ar > 1) s = [1, 1 / ar];
  return [Math.ceil((s[0] * imgsz) / stride + 0.5) * stride, Math.ceil((s[1] * imgsz) / stride + 0.5) * stride];
}

/** How one image becomes the model input: optional val-loader resize, then the letterbox. */
export interface InputPlan {
  /** The validator's load_image size [w, h] (val mode), or null (predict: the letterbox resizes). */
  load: [number, number] | null;
  geometry: LetterboxGeometry;
  /** Model-input pixels -> original pixels (scale_boxes' gain and pad). */
  gain: number;
  padX: number;
  padY: number;
}

/**
 * predict: engine/predictor.py pre_transform, LetterBox(imgsz, auto=dynamic (rect, one image),
 * stride); boxes go back with scale_boxes' recomputed gain/pad.
 * val: BaseDataset.load_image (long side to imgsz), then LetterBox(scaleup=False) into imgsz, or for
 * dynamic models the per-image rect shape (set_rectangle, batch of one); boxes go back with the
 * validator's ratio_pad (gain = resized/original height, pad = letterbox left/top).
 */
export function inputPlan(
  w0: number,
  h0: number,
  model: { imgsz: readonly [number, number]; stride: number; dynamic: boolean },
  mode: 'predict' | 'val',
): InputPlan {
  const { imgsz, stride, dynamic } = model;
  if (mode === 'predict') {
    const g = letterboxGeometry(w0, h0, imgsz, { auto: dynamic, stride });
    const gain = Math.min(g.outH / h0, g.outW / w0);
    return { load: null, geometry: g, gain, padX: pyRound((g.outW - w0 * gain) / 2 - 0.1), padY: pyRound((g.outH - h0 * gain) / 2 - 0.1) };
  }
  const size = Math.max(imgsz[0], imgsz[1]);
  const [w1, h1] = valLoadSize(w0, h0, size);
  const shape: readonly [number, number] = dynamic ? valRectShape(w0, h0, size, stride) : imgsz;
  const g = letterboxGeometry(w1, h1, shape, { scaleup: false });
  return { load: [w1, h1], geometry: g, gain: h1 / h0, padX: g.left, padY: g.top };
}

const PAD = 114;

/** uint8 -> input value tables: torch's `uint8.float() / 255` and `uint8.half() / 255`. */
const F32_LUT = new Float32Array(256).map((_, v) => v / 255);
const F16_LUT = Uint16Array.from({ length: 256 }, (_, v) => toHalfBits(Math.fround(v / 255)));

/**
 * Writes letterboxed images straight into a model input tensor: resize (OpenCV-exact), pad 114,
 * RGB planes (CHW), /255, as float32 or float16 bits, in one pass over each output row (no
 * intermediate image). The loops are written out per element type so each stays monomorphic.
 * The padding is rewritten only when the geometry changes, since a camera line repeats one size.
 */
export class TensorWriter {
  private readonly resizer = new LinearResizer();
  private lastKey = '';
  private lastTarget: Float32Array | Uint16Array | undefined;

  write(img: RgbImage, g: LetterboxGeometry, target: Float32Array | Uint16Array): void {
    const { outW, outH, left, top, newW, newH } = g;
    if (target.length < outW * outH * 3) throw new Error(`input buffer too small for ${outW}x${outH}`);
    const key = `${outW}x${outH}:${left},${top}:${newW}x${newH}`;
    if (key !== this.lastKey || target !== this.lastTarget) {
      this.fillPadding(target, g, target instanceof Uint16Array ? F16_LUT[PAD] : F32_LUT[PAD]);
      this.lastKey = key;
      this.lastTarget = target;
    }
    const same = newW === img.width && newH === img.height; // LetterBox skips cv2.resize then
    if (!same) this.resizer.begin(img.width, img.height, 3, newW, newH);
    if (target instanceof Uint16Array) {
      if (same) copyRowsF16(img.data, g, target);
      else resizeRowsF16(this.resizer, img.data, g, target);
    } else if (same) copyRowsF32(img.data, g, target);
    else resizeRowsF32(this.resizer, img.data, g, target);
  }

  /** Resize only (the validator's load_image step), into a reused or new buffer. */
  resizeImage(img: RgbImage, w: number, h: number, into?: Uint8Array): RgbImage {
    if (w === img.width && h === img.height) return img;
    const data = into && into.length >= w * h * 3 ? into.subarray(0, w * h * 3) : new Uint8Array(w * h * 3);
    resizeLinear(this.resizer, img.data, img.width, img.height, 3, w, h, data);
    return { data, width: w, height: h };
  }

  private fillPadding(target: Float32Array | Uint16Array, g: LetterboxGeometry, v: number): void {
    const { outW, outH, left, top, newW, newH } = g;
    const plane = outW * outH;
    for (let c = 0; c < 3; c++) {
      const base = c * plane;
      target.fill(v, base, base + top * outW);
      target.fill(v, base + (top + newH) * outW, base + plane);
      for (let y = top; y < top + newH; y++) {
        const r = base + y * outW;
        target.fill(v, r, r + left);
        target.fill(v, r + left + newW, r + outW);
      }
    }
  }
}

function resizeRowsF32(rz: LinearResizer, src: Uint8Array, g: LetterboxGeometry, t: Float32Array): void {
  const { outW, outH, left, top, newW, newH } = g;
  const plane = outW * outH;
  const lut = F32_LUT;
  for (let dy = 0; dy < newH; dy++) {
    rz.rows(src, dy);
    const { h0, h1, b0, b1 } = rz;
    let o = (top + dy) * outW + left;
    for (let x = 0, i = 0; x < newW; x++, i += 3, o++) {
      t[o] = lut[((Math.imul(h0[i], b0) >> 16) + (Math.imul(h1[i], b1) >> 16) + 2) >> 2];
      t[o + plane] = lut[((Math.imul(h0[i + 1], b0) >> 16) + (Math.imul(h1[i + 1], b1) >> 16) + 2) >> 2];
      t[o + 2 * plane] = lut[((Math.imul(h0[i + 2], b0) >> 16) + (Math.imul(h1[i + 2], b1) >> 16) + 2) >> 2];
    }
  }
}

function resizeRowsF16(rz: LinearResizer, src: Uint8Array, g: LetterboxGeometry, t: Uint16Array): void {
  const { outW, outH, left, top, newW, newH } = g;
  const plane = outW * outH;
  const lut = F16_LUT;
  for (let dy = 0; dy < newH; dy++) {
    rz.rows(src, dy);
    const { h0, h1, b0, b1 } = rz;
    let o = (top + dy) * outW + left;
    for (let x = 0, i = 0; x < newW; x++, i += 3, o++) {
      t[o] = lut[((Math.imul(h0[i], b0) >> 16) + (Math.imul(h1[i], b1) >> 16) + 2) >> 2];
      t[o + plane] = lut[((Math.imul(h0[i + 1], b0) >> 16) + (Math.imul(h1[i + 1], b1) >> 16) + 2) >> 2];
      t[o + 2 * plane] = lut[((Math.imul(h0[i + 2], b0) >> 16) + (Math.imul(h1[i + 2], b1) >> 16) + 2) >> 2];
    }
  }
}

function copyRowsF32(src: Uint8Array, g: LetterboxGeometry, t: Float32Array): void {
  const { outW, outH, left, top, newW, newH } = g;
  const plane = outW * outH;
  const lut = F32_LUT;
  for (let y = 0, i = 0; y < newH; y++) {
    let o = (top + y) * outW + left;
    for (let x = 0; x < newW; x++, i += 3, o++) {
      t[o] = lut[src[i]];
      t[o + plane] = lut[src[i + 1]];
      t[o + 2 * plane] = lut[src[i + 2]];
    }
  }
}

function copyRowsF16(src: Uint8Array, g: LetterboxGeometry, t: Uint16Array): void {
  const { outW, outH, left, top, newW, newH } = g;
  const plane = outW * outH;
  const lut = F16_LUT;
  for (let y = 0, i = 0; y < newH; y++) {
    let o = (top + y) * outW + left;
    for (let x = 0; x < newW; x++, i += 3, o++) {
      t[o] = lut[src[i]];
      t[o + plane] = lut[src[i + 1]];
      t[o + 2 * plane] = lut[src[i + 2]];
    }
  }
}
