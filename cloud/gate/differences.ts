import type { ImageDetail } from '../evaluation/evaluate.js';

/**
 * Per-image differences between challenger and champion, for the gate report: at an operating
 * point (conf > 0.25, ultralytics predict's default; a prediction matches a truth box of its
 * class at IoU >= 0.5, greedily by confidence), which truth boxes the challenger newly misses
 * (the champion found them), which it newly finds, and which of its false positives the
 * champion did not make (no champion false positive of the class overlaps it at IoU >= 0.5),
 * and the reverse.
 */
export const DIFF_CONF = 0.25;
export const DIFF_IOU = 0.5;

type Box = [number, number, number, number];

export interface ImageDifference {
  image: string;
  width: number;
  height: number;
  truth: { cls: number; xyxy: Box }[];
  challenger: { cls: number; conf: number; xyxy: Box }[];
  champion: { cls: number; conf: number; xyxy: Box }[];
  /** indexes into truth */
  newMisses: number[];
  fixedMisses: number[];
  /** indexes into challenger / champion */
  newFalsePositives: number[];
  removedFalsePositives: number[];
}

export function iou(a: Box | number[], b: Box | number[]): number {
  const w = Math.max(0, Math.min(a[2]!, b[2]!) - Math.max(a[0]!, b[0]!));
  const h = Math.max(0, Math.min(a[3]!, b[3]!) - Math.max(a[1]!, b[1]!));
  const inter = w * h;
  const union = (a[2]! - a[0]!) * (a[3]! - a[1]!) + (b[2]! - b[0]!) * (b[3]! - b[1]!) - inter;
  return union > 0 ? inter / union : 0;
}

/** Greedy matching by confidence: which truths each prediction set finds, and its false positives. */
export function matchAtOperatingPoint(
  truth: { cls: number; xyxy: Box }[],
  preds: { cls: number; conf: number; xyxy: Box }[],
): { found: Set<number>; falsePositives: number[] } {
  const found = new Set<number>();
  const falsePositives: number[] = [];
  const order = preds.map((_, i) => i).sort((a, b) => preds[b]!.conf - preds[a]!.conf);
  for (const i of order) {
    const p = preds[i]!;
    let best = -1;
    let bestIou = DIFF_IOU;
    truth.forEach((t, k) => {
      if (t.cls !== p.cls || found.has(k)) return;
      const v = iou(p.xyxy, t.xyxy);
      if (v >= bestIou) {
        bestIou = v;
        best = k;
      }
    });
    if (best >= 0) found.add(best);
    else falsePositives.push(i);
  }
  return { found, falsePositives };
}

export function imageDifferences(challenger: ImageDetail[], champion: ImageDetail[]): ImageDifference[] {
  const byImage = new Map(champion.map((d) => [d.image, d]));
  const out: ImageDifference[] = [];
  for (const a of challenger) {
    const b = byImage.get(a.image);
    if (!b) continue;
    const ch = a.predictions.filter((p) => p.conf > DIFF_CONF);
    const cp = b.predictions.filter((p) => p.conf > DIFF_CONF);
    const mA = matchAtOperatingPoint(a.labels, ch);
    const mB = matchAtOperatingPoint(a.labels, cp);
    const overlapsAny = (box: { cls: number; xyxy: Box }, others: { cls: number; xyxy: Box }[]) =>
      others.some((o) => o.cls === box.cls && iou(o.xyxy, box.xyxy) >= DIFF_IOU);
    const fpA = mA.falsePositives.map((i) => ch[i]!);
    const fpB = mB.falsePositives.map((i) => cp[i]!);
    const d: ImageDifference = {
      image: a.image,
      width: a.width,
      height: a.height,
      truth: a.labels,
      challenger: ch,
      champion: cp,
      newMisses: [...mB.found].filter((k) => !mA.found.has(k)).sort((x, y) => x - y),
      fixedMisses: [...mA.found].filter((k) => !mB.found.has(k)).sort((x, y) => x - y),
      newFalsePositives: mA.falsePositives.filter((i) => !overlapsAny(ch[i]!, fpB)),
      removedFalsePositives: mB.falsePositives.filter((i) => !overlapsAny(cp[i]!, fpA)),
    };
    if (d.newMisses.length + d.fixedMisses.length + d.newFalsePositives.length + d.removedFalsePositives.length) out.push(d);
  }
  // Worst first: new misses, then new false positives.
  return out.sort(
    (x, y) =>
      y.newMisses.length * 2 + y.newFalsePositives.length - (x.newMisses.length * 2 + x.newFalsePositives.length) ||
      (x.image < y.image ? -1 : 1),
  );
}
