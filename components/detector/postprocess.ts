import { roundHalf } from './fp16.js';

/**
 * ultralytics 8.3.253 postprocessing, mirrored operation by operation in float32 (or float16
 * where ultralytics computes in half): utils/nms.py non_max_suppression with torchvision's
 * CPU nms kernel (ultralytics imports torchvision, so `torchvision.ops.nms` is what runs), then
 * utils/ops.py scale_boxes + clip_boxes.
 */

const fr = Math.fround;
/** nms.py max_wh: class offset that keeps boxes of different classes apart. */
export const MAX_WH = 7680;

export interface NmsOptions {
  /** Scores must be strictly greater. */
  conf: number;
  /** IoU strictly greater suppresses. */
  iou: number;
  maxDet: number;
  /** Candidates kept (highest scores) before NMS. */
  maxNms: number;
  /** Every class score above the threshold is a candidate (validation) instead of the best class only. */
  multiLabel: boolean;
  /** Keep only these class ids (applied after the threshold, as ultralytics' `classes`). */
  classes?: ReadonlySet<number>;
  /** Per-class thresholds by class id (loupe addition: a class without one uses `conf`). */
  classConf?: ReadonlyArray<number | undefined>;
  /** Model output is half precision: thresholds and xywh->xyxy compare/compute in half as torch does. */
  fp16: boolean;
}

/** Kept boxes in model-input pixels, views into reused buffers (valid until the next call). */
export interface RawBoxes {
  n: number;
  xyxy: Float32Array;
  conf: Float32Array;
  cls: Int32Array;
}

function grow<T extends Float32Array | Int32Array | Uint8Array>(a: T, n: number, make: (n: number) => T): T {
  if (a.length >= n) return a;
  const b = make(Math.max(n, a.length * 2));
  b.set(a);
  return b;
}

/** Stable sort of indices 0..n-1 by score descending (torch.sort(stable=True, descending=True)). */
function argsortDesc(scores: Float32Array, n: number, idx: Int32Array): void {
  for (let i = 0; i < n; i++) idx[i] = i;
  const view = idx.subarray(0, n);
  view.sort((a, b) => scores[b] - scores[a] || a - b);
}

export class Postprocessor {
  private box = new Float32Array(0);
  private score = new Float32Array(0);
  private cls = new Int32Array(0);
  private order = new Int32Array(0);
  private off = new Float32Array(0);
  private area = new Float32Array(0);
  private supp = new Uint8Array(0);
  private keep = new Int32Array(0);
  private out: RawBoxes = { n: 0, xyxy: new Float32Array(0), conf: new Float32Array(0), cls: new Int32Array(0) };

  private thrKey: { conf: number; classConf: NmsOptions['classConf']; fp16: boolean; nc: number } | undefined;
  private thr = new Float32Array(0);

  /** Per-class thresholds as torch compares them (in the output's dtype); reused while options repeat. */
  private thresholds(nc: number, o: NmsOptions): Float32Array {
    const k = this.thrKey;
    if (k && k.conf === o.conf && k.classConf === o.classConf && k.fp16 === o.fp16 && k.nc === nc) return this.thr;
    const rnd = o.fp16 ? roundHalf : fr; // torch compares a half/float tensor with a Python float in the tensor's dtype
    const t = new Float32Array(nc);
    for (let c = 0; c < nc; c++) t[c] = rnd(o.classConf?.[c] ?? o.conf);
    this.thr = t;
    this.thrKey = { conf: o.conf, classConf: o.classConf, fp16: o.fp16, nc };
    return t;
  }

  private ensure(cap: number): void {
    this.box = grow(this.box, cap * 4, (n) => new Float32Array(n));
    this.off = grow(this.off, cap * 4, (n) => new Float32Array(n));
    this.score = grow(this.score, cap, (n) => new Float32Array(n));
    this.area = grow(this.area, cap, (n) => new Float32Array(n));
    this.cls = grow(this.cls, cap, (n) => new Int32Array(n));
    this.order = grow(this.order, cap, (n) => new Int32Array(n));
    this.keep = grow(this.keep, cap, (n) => new Int32Array(n));
    this.supp = grow(this.supp, cap, (n) => new Uint8Array(n));
  }

  /** Standard export: `pred` is [4+nc, anchors] (batch 1), rows cx, cy, w, h, class scores. */
  run(pred: Float32Array, nc: number, anchors: number, o: NmsOptions): RawBoxes {
    const thr = this.thresholds(nc, o);
    let minThr = thr[0];
    for (let c = 1; c < nc; c++) if (thr[c] < minThr) minThr = thr[c];
    const multi = o.multiLabel && nc > 1; // nms.py: multi_label &= nc > 1
    const half = o.fp16 ? roundHalf : fr;
    this.ensure(multi ? anchors * nc : anchors);
    let n = 0;
    const N = anchors;
    for (let j = 0; j < N; j++) {
      // xc: amax over class scores > conf (first index of the max, as torch.max)
      let best = pred[4 * N + j];
      let bc = 0;
      for (let c = 1; c < nc; c++) {
        const s = pred[(4 + c) * N + j];
        if (s > best) {
          best = s;
          bc = c;
        }
      }
      if (!(best > minThr)) continue;
      const cx = pred[j];
      const cy = pred[N + j];
      const hw = half(pred[2 * N + j] / 2);
      const hh = half(pred[3 * N + j] / 2);
      const x1 = half(cx - hw);
      const y1 = half(cy - hh);
      const x2 = half(cx + hw);
      const y2 = half(cy + hh);
      if (multi) {
        for (let c = 0; c < nc; c++) {
          const s = pred[(4 + c) * N + j];
          if (!(s > thr[c])) continue;
          if (o.classes && !o.classes.has(c)) continue;
          this.push(n++, x1, y1, x2, y2, s, c);
        }
      } else {
        if (!(best > thr[bc])) continue;
        if (o.classes && !o.classes.has(bc)) continue;
        this.push(n++, x1, y1, x2, y2, best, bc);
      }
    }
    return this.nms(n, o);
  }

  /** nms=True export: `pred` is [rows, 6] of x1, y1, x2, y2, score, class, score-sorted, zero-padded. */
  runEnd2End(pred: Float32Array, rows: number, nc: number, o: NmsOptions): RawBoxes {
    const thr = this.thresholds(nc, o);
    const rnd = o.fp16 ? roundHalf : fr;
    const globalThr = rnd(o.conf);
    this.ensure(rows);
    let n = 0;
    // nms.py end2end: pred[pred[:, 4] > conf][:max_det], then the class filter.
    for (let r = 0; r < rows && n < o.maxDet; r++) {
      const s = pred[r * 6 + 4];
      const c = Math.round(pred[r * 6 + 5]);
      const t = o.classConf ? (thr[c] ?? globalThr) : globalThr;
      if (!(s > t)) continue;
      this.push(n++, pred[r * 6], pred[r * 6 + 1], pred[r * 6 + 2], pred[r * 6 + 3], s, c);
    }
    let k = 0;
    for (let i = 0; i < n; i++) {
      if (o.classes && !o.classes.has(this.cls[i])) continue;
      if (k !== i) this.move(i, k);
      k++;
    }
    return this.view(k);
  }

  private push(i: number, x1: number, y1: number, x2: number, y2: number, s: number, c: number): void {
    const b = this.box;
    b[i * 4] = x1;
    b[i * 4 + 1] = y1;
    b[i * 4 + 2] = x2;
    b[i * 4 + 3] = y2;
    this.score[i] = s;
    this.cls[i] = c;
  }

  private move(from: number, to: number): void {
    this.box.copyWithin(to * 4, from * 4, from * 4 + 4);
    this.score[to] = this.score[from];
    this.cls[to] = this.cls[from];
  }

  private nms(n: number, o: NmsOptions): RawBoxes {
    const { box, score, cls, order, off, area, supp, keep } = this;
    if (n === 0) return this.view(0);
    let count = n;
    if (n > o.maxNms) {
      // x[:, 4].argsort(descending=True)[:max_nms]: keep the best, in score order.
      argsortDesc(score, n, order);
      const b2 = new Float32Array(o.maxNms * 4);
      const s2 = new Float32Array(o.maxNms);
      const c2 = new Int32Array(o.maxNms);
      for (let k = 0; k < o.maxNms; k++) {
        const i = order[k];
        b2.set(box.subarray(i * 4, i * 4 + 4), k * 4);
        s2[k] = score[i];
        c2[k] = cls[i];
      }
      box.set(b2);
      score.set(s2);
      cls.set(c2);
      count = o.maxNms;
    }
    // boxes = x[:, :4] + cls * max_wh (float32), areas as torchvision computes them.
    for (let i = 0; i < count; i++) {
      const c = cls[i] * MAX_WH;
      const x1 = fr(box[i * 4] + c);
      const y1 = fr(box[i * 4 + 1] + c);
      const x2 = fr(box[i * 4 + 2] + c);
      const y2 = fr(box[i * 4 + 3] + c);
      off[i * 4] = x1;
      off[i * 4 + 1] = y1;
      off[i * 4 + 2] = x2;
      off[i * 4 + 3] = y2;
      area[i] = fr(fr(x2 - x1) * fr(y2 - y1));
      supp[i] = 0;
    }
    argsortDesc(score, count, order);
    let kept = 0;
    const thr = o.iou; // torchvision compares the float IoU with the double threshold
    for (let a = 0; a < count && kept < o.maxDet; a++) {
      const i = order[a];
      if (supp[i]) continue;
      keep[kept++] = i;
      const ix1 = off[i * 4];
      const iy1 = off[i * 4 + 1];
      const ix2 = off[i * 4 + 2];
      const iy2 = off[i * 4 + 3];
      const ia = area[i];
      for (let b = a + 1; b < count; b++) {
        const j = order[b];
        if (supp[j]) continue;
        const w = fr(Math.min(ix2, off[j * 4 + 2]) - Math.max(ix1, off[j * 4]));
        if (!(w > 0)) continue;
        const h = fr(Math.min(iy2, off[j * 4 + 3]) - Math.max(iy1, off[j * 4 + 1]));
        if (!(h > 0)) continue;
        const inter = fr(w * h);
        const ovr = fr(inter / fr(fr(ia + area[j]) - inter));
        if (ovr > thr) supp[j] = 1;
      }
    }
    // Gather kept rows in keep order.
    const out = this.outBuffers(kept);
    for (let k = 0; k < kept; k++) {
      const i = keep[k];
      out.xyxy.set(box.subarray(i * 4, i * 4 + 4), k * 4);
      out.conf[k] = score[i];
      out.cls[k] = cls[i];
    }
    out.n = kept;
    return out;
  }

  private outBuffers(n: number): RawBoxes {
    if (this.out.conf.length < n) {
      const cap = Math.max(n, 64);
      this.out = { n: 0, xyxy: new Float32Array(cap * 4), conf: new Float32Array(cap), cls: new Int32Array(cap) };
    }
    return this.out;
  }

  private view(n: number): RawBoxes {
    const out = this.outBuffers(n);
    out.xyxy.set(this.box.subarray(0, n * 4));
    out.conf.set(this.score.subarray(0, n));
    out.cls.set(this.cls.subarray(0, n));
    out.n = n;
    return out;
  }
}

/** How model-input boxes map back to the original image (scale_boxes' gain and pad). */
export interface ScaleBack {
  gain: number;
  padX: number;
  padY: number;
  /** Original image size, for clipping. */
  width: number;
  height: number;
}

/** Boxes to original pixels in place: subtract pad, divide by gain (float32, as torch), clip. */
export function scaleBoxes(xyxy: Float32Array, n: number, s: ScaleBack): void {
  const g = fr(s.gain);
  for (let i = 0; i < n; i++) {
    const k = i * 4;
    xyxy[k] = clamp(fr(fr(xyxy[k] - s.padX) / g), s.width);
    xyxy[k + 1] = clamp(fr(fr(xyxy[k + 1] - s.padY) / g), s.height);
    xyxy[k + 2] = clamp(fr(fr(xyxy[k + 2] - s.padX) / g), s.width);
    xyxy[k + 3] = clamp(fr(fr(xyxy[k + 3] - s.padY) / g), s.height);
  }
}

function clamp(v: number, hi: number): number {
  return v < 0 ? 0 : v > hi ? hi : v;
}
