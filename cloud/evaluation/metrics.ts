/**
 * Detection metrics exactly as ultralytics 8.3.253 computes them (utils/metrics.py box_iou,
 * ap_per_class, compute_ap, smooth, ConfusionMatrix.process_batch; engine/validator.py
 * match_predictions). IoUs are computed in float32 like the torch code; the AP arithmetic runs in
 * float64 like numpy. Known, deliberate approximations: numpy's argsort (quicksort) is not stable,
 * so the order of exactly tied IoUs/confidences may differ (we sort stably); np.convolve's summation
 * order (BLAS dot) can differ in the last bit, which only matters for the P/R operating point on
 * exact plateaus of the smoothed F1 curve.
 */

const fr = Math.fround;

/** torch.linspace(0.5, 0.95, 10) in float32, as the validator's iouv. */
export const IOU_THRESHOLDS: readonly number[] = [
  0.5, 0.550000011920929, 0.6000000238418579, 0.6499999761581421, 0.699999988079071, 0.75, 0.800000011920929, 0.8500000238418579,
  0.8999999761581421, 0.949999988079071,
];
export const NIOU = IOU_THRESHOLDS.length;
const EPS_IOU = fr(1e-7);

/** box_iou(box1 [n,4], box2 [m,4]) -> [n*m] row-major, float32 arithmetic, eps 1e-7. */
export function boxIou(a: Float32Array, n: number, b: Float32Array, m: number): Float32Array {
  const out = new Float32Array(n * m);
  for (let i = 0; i < n; i++) {
    const ax1 = a[i * 4];
    const ay1 = a[i * 4 + 1];
    const ax2 = a[i * 4 + 2];
    const ay2 = a[i * 4 + 3];
    const aa = fr(fr(ax2 - ax1) * fr(ay2 - ay1));
    for (let j = 0; j < m; j++) {
      const bx1 = b[j * 4];
      const by1 = b[j * 4 + 1];
      const bx2 = b[j * 4 + 2];
      const by2 = b[j * 4 + 3];
      let iw = fr(Math.min(ax2, bx2) - Math.max(ax1, bx1));
      let ih = fr(Math.min(ay2, by2) - Math.max(ay1, by1));
      if (!(iw > 0)) iw = 0;
      if (!(ih > 0)) ih = 0;
      const inter = fr(iw * ih);
      const ba = fr(fr(bx2 - bx1) * fr(by2 - by1));
      out[i * m + j] = fr(inter / fr(fr(fr(aa + ba) - inter) + EPS_IOU));
    }
  }
  return out;
}

/** Indices of `vals` sorted ascending, stable. */
function argsortAsc(vals: ArrayLike<number>, n: number): number[] {
  const idx = Array.from({ length: n }, (_, i) => i);
  idx.sort((p, q) => vals[p] - vals[q] || p - q);
  return idx;
}

/** np.unique(col, return_index=True)[1]: first occurrence of each distinct value, by value ascending. */
function uniqueFirst(rows: number[][], col: number): number[][] {
  const first = new Map<number, number[]>();
  for (const r of rows) if (!first.has(r[col])) first.set(r[col], r);
  return [...first.keys()].sort((a, b) => a - b).map((k) => first.get(k)!);
}

/**
 * validator.match_predictions: per IoU threshold, label-prediction pairs of the same class with
 * IoU >= t, sorted by IoU descending, unique per prediction, then unique per label. Returns
 * tp[np * NIOU] (1 = true positive at that threshold).
 */
export function matchPredictions(predCls: Int32Array | number[], trueCls: number[], iou: Float32Array): Uint8Array {
  const np_ = predCls.length;
  const nl = trueCls.length;
  const correct = new Uint8Array(np_ * NIOU);
  if (nl === 0 || np_ === 0) return correct;
  const m = new Float32Array(nl * np_);
  for (let i = 0; i < nl; i++) for (let j = 0; j < np_; j++) m[i * np_ + j] = trueCls[i] === predCls[j] ? iou[i * np_ + j] : 0;
  for (let t = 0; t < NIOU; t++) {
    const thr = IOU_THRESHOLDS[t];
    let matches: number[][] = [];
    for (let i = 0; i < nl; i++) for (let j = 0; j < np_; j++) if (m[i * np_ + j] >= thr) matches.push([i, j]);
    if (matches.length === 0) continue;
    if (matches.length > 1) {
      const vals = matches.map(([i, j]) => m[i * np_ + j]);
      matches = argsortAsc(vals, vals.length)
        .reverse()
        .map((k) => matches[k]); // argsort()[::-1]
      matches = uniqueFirst(matches, 1);
      matches = uniqueFirst(matches, 0);
    }
    for (const [, j] of matches) correct[j * NIOU + t] = 1;
  }
  return correct;
}

/** np.linspace(0, 1, num) as numpy computes it (i * step, last point exactly 1). */
export function linspace01(num: number): Float64Array {
  const step = 1 / (num - 1);
  const x = new Float64Array(num);
  for (let i = 0; i < num; i++) x[i] = i * step;
  x[num - 1] = 1;
  return x;
}

/** np.interp(x, xp, fp, left, right) for increasing xp (duplicates allowed), numpy's rules. */
export function interp(x: ArrayLike<number>, xp: ArrayLike<number>, fp: ArrayLike<number>, left?: number, right?: number): Float64Array {
  const n = xp.length;
  const out = new Float64Array(x.length);
  const lv = left ?? fp[0];
  const rv = right ?? fp[n - 1];
  for (let k = 0; k < x.length; k++) {
    const v = x[k];
    if (Number.isNaN(v)) {
      out[k] = v;
      continue;
    }
    if (v < xp[0]) {
      out[k] = lv;
      continue;
    }
    if (v > xp[n - 1]) {
      out[k] = rv;
      continue;
    }
    if (v === xp[n - 1]) {
      out[k] = fp[n - 1];
      continue;
    }
    // largest j with xp[j] <= v (then v < xp[j+1])
    let lo = 0;
    let hi = n - 1;
    while (hi - lo > 1) {
      const mid = (lo + hi) >> 1;
      if (xp[mid] <= v) lo = mid;
      else hi = mid;
    }
    const j = lo;
    const slope = (fp[j + 1] - fp[j]) / (xp[j + 1] - xp[j]);
    let r = slope * (v - xp[j]) + fp[j];
    if (Number.isNaN(r)) {
      r = slope * (v - xp[j + 1]) + fp[j + 1];
      if (Number.isNaN(r) && fp[j] === fp[j + 1]) r = fp[j];
    }
    out[k] = r;
  }
  return out;
}

const X101 = linspace01(101);

/** compute_ap: 101-point interpolated AP of the precision envelope; also returns mpre/mrec. */
export function computeAp(recall: ArrayLike<number>, precision: ArrayLike<number>): { ap: number; mpre: Float64Array; mrec: Float64Array } {
  const n = recall.length;
  const mrec = new Float64Array(n + 2);
  const mpre = new Float64Array(n + 2);
  mrec[0] = 0;
  mpre[0] = 1;
  for (let i = 0; i < n; i++) {
    mrec[i + 1] = recall[i];
    mpre[i + 1] = precision[i];
  }
  mrec[n + 1] = 1;
  mpre[n + 1] = 0;
  for (let i = n; i >= 0; i--) mpre[i] = Math.max(mpre[i], mpre[i + 1]);
  const y = interp(X101, mrec, mpre);
  let ap = 0;
  for (let i = 0; i < 100; i++) ap += ((X101[i + 1] - X101[i]) * (y[i + 1] + y[i])) / 2; // np.trapz
  return { ap, mpre, mrec };
}

/** smooth(y, f): box filter of odd width round(len*f*2)//2+1, ends padded with the end values. */
export function smooth(y: ArrayLike<number>, f = 0.05): Float64Array {
  const nf = Math.floor(pyRoundHalfEven(y.length * f * 2) / 2) + 1;
  const p = Math.floor(nf / 2);
  const n = y.length;
  const yp = new Float64Array(n + 2 * p);
  for (let i = 0; i < p; i++) {
    yp[i] = y[0];
    yp[n + p + i] = y[n - 1];
  }
  for (let i = 0; i < n; i++) yp[p + i] = y[i];
  const out = new Float64Array(yp.length - nf + 1);
  const w = 1 / nf;
  for (let k = 0; k < out.length; k++) {
    let s = 0;
    for (let m = 0; m < nf; m++) s += yp[k + m] * w;
    out[k] = s;
  }
  return out;
}

function pyRoundHalfEven(x: number): number {
  const f = Math.floor(x);
  const d = x - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

export interface ApPerClass {
  /** Classes that have labels, ascending (ultralytics' ap_class_index). */
  classes: number[];
  /** Labels per class in `classes` order. */
  nt: number[];
  /** Precision/recall/F1 at the best smoothed mean-F1 confidence, per class. */
  p: number[];
  r: number[];
  f1: number[];
  /** AP per class per IoU threshold [classes][NIOU]. */
  ap: number[][];
  /** Confidence grid (1000 points) and per-class curves on it. */
  px: Float64Array;
  pCurve: Float64Array[];
  rCurve: Float64Array[];
  f1Curve: Float64Array[];
  /** Precision at recall px (PR curve at IoU 0.5) per class (null for classes never predicted). */
  prCurve: Array<Float64Array | null>;
  /** Index into px of the operating point. */
  bestIndex: number;
}

/**
 * ap_per_class. `tp` is [n * NIOU], `conf` the scores, `predCls`/`targetCls` class ids.
 */
export function apPerClass(tp: Uint8Array, conf: Float32Array, predCls: Int32Array, targetCls: Int32Array): ApPerClass {
  const eps = 1e-16;
  const n = conf.length;
  // i = np.argsort(-conf)
  const neg = new Float32Array(n);
  for (let i = 0; i < n; i++) neg[i] = -conf[i];
  const order = argsortAsc(neg, n);
  const counts = new Map<number, number>();
  for (const c of targetCls) counts.set(c, (counts.get(c) ?? 0) + 1);
  const classes = [...counts.keys()].sort((a, b) => a - b);
  const nt = classes.map((c) => counts.get(c)!);
  const px = linspace01(1000);
  const negPx = px.map((v) => -v);
  const pCurve: Float64Array[] = classes.map(() => new Float64Array(1000));
  const rCurve: Float64Array[] = classes.map(() => new Float64Array(1000));
  const ap = classes.map(() => new Array<number>(NIOU).fill(0));
  const prCurve: Array<Float64Array | null> = classes.map(() => null);
  classes.forEach((c, ci) => {
    const idx = order.filter((k) => predCls[k] === c);
    const nl = nt[ci];
    const npred = idx.length;
    if (npred === 0 || nl === 0) return;
    const negConf = new Float64Array(npred);
    for (let k = 0; k < npred; k++) negConf[k] = -conf[idx[k]];
    const recall: Float64Array[] = [];
    const precision: Float64Array[] = [];
    for (let t = 0; t < NIOU; t++) {
      const rec = new Float64Array(npred);
      const pre = new Float64Array(npred);
      let tpc = 0;
      let fpc = 0;
      for (let k = 0; k < npred; k++) {
        const hit = tp[idx[k] * NIOU + t];
        tpc += hit;
        fpc += 1 - hit;
        rec[k] = tpc / (nl + eps);
        pre[k] = tpc / (tpc + fpc);
      }
      recall.push(rec);
      precision.push(pre);
    }
    rCurve[ci] = interp(negPx, negConf, recall[0], 0);
    pCurve[ci] = interp(negPx, negConf, precision[0], 1);
    for (let t = 0; t < NIOU; t++) {
      const { ap: a, mpre, mrec } = computeAp(recall[t], precision[t]);
      ap[ci][t] = a;
      if (t === 0) prCurve[ci] = interp(px, mrec, mpre);
    }
  });
  const f1Curve = classes.map((_, ci) => {
    const f = new Float64Array(1000);
    for (let k = 0; k < 1000; k++) f[k] = (2 * pCurve[ci][k] * rCurve[ci][k]) / (pCurve[ci][k] + rCurve[ci][k] + eps);
    return f;
  });
  let bestIndex = 0;
  if (classes.length) {
    const mean = new Float64Array(1000);
    for (let k = 0; k < 1000; k++) {
      let s = 0;
      for (const f of f1Curve) s += f[k];
      mean[k] = s / f1Curve.length;
    }
    const sm = smooth(mean, 0.1);
    for (let k = 1; k < sm.length; k++) if (sm[k] > sm[bestIndex]) bestIndex = k;
  }
  return {
    classes,
    nt,
    p: pCurve.map((c) => c[bestIndex]),
    r: rCurve.map((c) => c[bestIndex]),
    f1: f1Curve.map((c) => c[bestIndex]),
    ap,
    px,
    pCurve,
    rCurve,
    f1Curve,
    prCurve,
    bestIndex,
  };
}

/**
 * ConfusionMatrix (detect): rows = predicted class (last = background), columns = true class
 * (last = background), filled per image with predictions above `conf` matched to labels at
 * IoU > `iou` (0.45). Like the validator, a conf of 0.001 (the val default) counts as 0.25.
 */
export class ConfusionMatrix {
  readonly matrix: number[][];
  readonly conf: number;
  constructor(
    readonly nc: number,
    conf: number,
    readonly iou = 0.45,
  ) {
    this.conf = conf === 0.001 ? 0.25 : conf;
    this.matrix = Array.from({ length: nc + 1 }, () => new Array<number>(nc + 1).fill(0));
  }

  /** One image: predictions (boxes, conf, cls) and labels (boxes, cls) in the same pixel space. */
  processBatch(pBoxes: Float32Array, pConf: Float32Array, pCls: Int32Array, gBoxes: Float32Array, gCls: number[]): void {
    const nc = this.nc;
    const thr = fr(this.conf);
    const keep: number[] = [];
    for (let i = 0; i < pConf.length; i++) if (pConf[i] > thr) keep.push(i);
    if (gCls.length === 0) {
      if (pConf.length) for (const i of keep) this.matrix[pCls[i]][nc]++;
      return;
    }
    if (pConf.length === 0) {
      for (const g of gCls) this.matrix[nc][g]++;
      return;
    }
    const boxes = new Float32Array(keep.length * 4);
    keep.forEach((i, k) => boxes.set(pBoxes.subarray(i * 4, i * 4 + 4), k * 4));
    const dcls = keep.map((i) => pCls[i]);
    const iou = boxIou(gBoxes, gCls.length, boxes, keep.length);
    const ithr = fr(this.iou);
    // [gt, det, iou] for iou > thr, in torch.where's row-major order
    let matches: number[][] = [];
    for (let g = 0; g < gCls.length; g++)
      for (let d = 0; d < keep.length; d++) if (iou[g * keep.length + d] > ithr) matches.push([g, d, iou[g * keep.length + d]]);
    if (matches.length > 1) {
      const byIouDesc = (rows: number[][]): number[][] =>
        argsortAsc(
          rows.map((r) => r[2]),
          rows.length,
        )
          .reverse()
          .map((k) => rows[k]);
      matches = byIouDesc(matches);
      matches = uniqueFirst(matches, 1);
      matches = byIouDesc(matches);
      matches = uniqueFirst(matches, 0);
    }
    const m1 = new Set(matches.map((r) => r[1]));
    gCls.forEach((gc, i) => {
      const js = matches.filter((r) => r[0] === i);
      if (js.length === 1) this.matrix[dcls[js[0][1]]][gc]++;
      else this.matrix[nc][gc]++;
    });
    dcls.forEach((dc, i) => {
      if (!m1.has(i)) this.matrix[dc][nc]++;
    });
  }
}
