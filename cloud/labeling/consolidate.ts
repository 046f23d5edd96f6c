import type { Box } from '../../contracts/box.js';
import { iou } from '../../contracts/box.js';

/**
 * Consolidation of several workers' boxes for one image: IoU clustering, then averaging.
 *
 * 1. Pool every worker's boxes (class-agnostic, so a box two workers drew with different
 *    classes still counts as one object).
 * 2. Candidate links: every pair of boxes drawn by DIFFERENT workers with IoU >= `iouThreshold`
 *    (default 0.5).
 * 3. Agglomerate: take the links by IoU, highest first (ties: by worker order, then box order),
 *    and merge the two clusters they join, unless the merged cluster would hold two boxes of
 *    the same worker (a worker votes at most once per object). This is single-linkage
 *    clustering with a one-box-per-worker constraint; the result does not depend on the order
 *    in which workers submitted.
 * 4. A cluster becomes an object when at least `minVotes` distinct workers drew it
 *    (default ceil(W/2) for W workers: 1 of 1, 1 of 2, 2 of 3, 2 of 4, 3 of 5). Smaller clusters
 *    are treated as one worker's false positive and dropped; an object drawn by too few workers
 *    is treated as a miss of the others only when enough of them agree.
 * 5. Its box is the coordinate-wise mean of the members' corners (x1, y1, x2, y2); its class
 *    is the members' majority class (ties: the lowest class id); its confidence is
 *    votes / W × the mean IoU of the members with the averaged box.
 *
 * Output order: by class, then x1, then y1.
 */
export interface WorkerAnnotation {
  worker: string;
  boxes: Box[];
}

export interface ConsolidatedBox extends Box {
  confidence: number;
  votes: number;
}

export interface ConsolidateOptions {
  iouThreshold?: number;
  /** Minimum distinct workers per object; default ceil(W/2). */
  minVotes?: number;
}

export function consolidate(annotations: WorkerAnnotation[], opts: ConsolidateOptions = {}): ConsolidatedBox[] {
  const W = annotations.length;
  if (W === 0) return [];
  const thr = opts.iouThreshold ?? 0.5;
  const minVotes = opts.minVotes ?? Math.ceil(W / 2);
  // Workers sorted by id so ties break the same way whatever the submission order.
  const workers = [...annotations].sort((a, b) => (a.worker < b.worker ? -1 : a.worker > b.worker ? 1 : 0));
  const items: { w: number; box: Box }[] = [];
  workers.forEach((a, w) => a.boxes.forEach((box) => items.push({ w, box })));

  const links = candidateLinks(items, thr);
  links.sort((a, b) => b.v - a.v || a.i - b.i || a.j - b.j);

  // Union-find where each root also knows which workers its cluster holds.
  const parent = items.map((_, i) => i);
  const members = items.map((it) => new Set([it.w]));
  const find = (x: number): number => (parent[x] === x ? x : (parent[x] = find(parent[x]!)));
  for (const { i, j } of links) {
    const a = find(i);
    const b = find(j);
    if (a === b) continue;
    const ma = members[a]!;
    const mb = members[b]!;
    if ([...mb].some((w) => ma.has(w))) continue;
    parent[b] = a;
    for (const w of mb) ma.add(w);
  }

  const clusters = new Map<number, Box[]>();
  items.forEach((it, i) => {
    const r = find(i);
    const list = clusters.get(r) ?? [];
    list.push(it.box);
    clusters.set(r, list);
  });

  const out: ConsolidatedBox[] = [];
  for (const boxes of clusters.values()) {
    const votes = boxes.length; // one box per worker per cluster, so boxes = distinct workers
    if (votes < minVotes) continue;
    const mean = (k: 'x1' | 'y1' | 'x2' | 'y2') => boxes.reduce((s, b) => s + b[k], 0) / votes;
    const counts = new Map<number, number>();
    for (const b of boxes) counts.set(b.cls, (counts.get(b.cls) ?? 0) + 1);
    const cls = [...counts.entries()].sort((a, b) => b[1] - a[1] || a[0] - b[0])[0]![0];
    const avg: Box = { cls, x1: mean('x1'), y1: mean('y1'), x2: mean('x2'), y2: mean('y2') };
    const meanIou = boxes.reduce((s, b) => s + iou(b, avg), 0) / votes;
    out.push({ ...avg, votes, confidence: (votes / W) * meanIou });
  }
  out.sort((a, b) => a.cls - b.cls || a.x1 - b.x1 || a.y1 - b.y1);
  return out;
}

/**
 * Every pair of boxes from different workers with IoU >= thr (thr > 0), as {i < j, v}. Boxes
 * with IoU > 0 overlap in x, so a sweep over boxes sorted by x1 compares each box only with
 * those starting before it ends: near O(n log n) for labels spread over an image instead of
 * O(n²) (45,000 boxes: about a billion pairs otherwise). Same pairs as comparing all.
 */
function candidateLinks(items: { w: number; box: Box }[], thr: number): { i: number; j: number; v: number }[] {
  const order = items.map((_, i) => i).sort((a, b) => items[a]!.box.x1 - items[b]!.box.x1 || a - b);
  const links: { i: number; j: number; v: number }[] = [];
  for (let p = 0; p < order.length; p++) {
    const a = order[p]!;
    const A = items[a]!;
    for (let q = p + 1; q < order.length; q++) {
      const b = order[q]!;
      const B = items[b]!;
      if (B.box.x1 >= A.box.x2) break; // sorted by x1: no later box overlaps A in x
      if (A.w === B.w || B.box.y1 >= A.box.y2 || A.box.y1 >= B.box.y2) continue;
      const v = iou(A.box, B.box);
      if (v >= thr) links.push(a < b ? { i: a, j: b, v } : { i: b, j: a, v });
    }
  }
  return links;
}
