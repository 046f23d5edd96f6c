import { iou } from '../../contracts/box.js';
import type { ConsolidateOptions, ConsolidatedBox, WorkerAnnotation } from '../../cloud/labeling/consolidate.js';
import type { Box } from '../../cloud/dataset/types.js';

/**
 * The consolidation as it was before the x-sweep: links from every pair of boxes (O(n²)), then
 * the same clustering. The reference the sweep is checked against (consolidate.test.ts) and the
 * baseline of the labelling bench (05-labeling.bench.ts).
 */
export function consolidateAllPairs(annotations: WorkerAnnotation[], opts: ConsolidateOptions = {}): ConsolidatedBox[] {
  const W = annotations.length;
  const thr = opts.iouThreshold ?? 0.5;
  const minVotes = opts.minVotes ?? Math.ceil(W / 2);
  const workers = [...annotations].sort((x, y) => (x.worker < y.worker ? -1 : x.worker > y.worker ? 1 : 0));
  const items: { w: number; box: Box }[] = [];
  workers.forEach((a, w) => a.boxes.forEach((box) => items.push({ w, box })));
  const links: { i: number; j: number; v: number }[] = [];
  for (let i = 0; i < items.length; i++)
    for (let j = i + 1; j < items.length; j++) {
      if (items[i]!.w === items[j]!.w) continue;
      const v = iou(items[i]!.box, items[j]!.box);
      if (v >= thr) links.push({ i, j, v });
    }
  links.sort((x, y) => y.v - x.v || x.i - y.i || x.j - y.j);
  const parent = items.map((_, i) => i);
  const members = items.map((it) => new Set([it.w]));
  const find = (x: number): number => (parent[x] === x ? x : (parent[x] = find(parent[x]!)));
  for (const { i, j } of links) {
    const ra = find(i);
    const rb = find(j);
    if (ra === rb || [...members[rb]!].some((w) => members[ra]!.has(w))) continue;
    parent[rb] = ra;
    for (const w of members[rb]!) members[ra]!.add(w);
  }
  const clusters = new Map<number, Box[]>();
  items.forEach((it, i) => clusters.set(find(i), [...(clusters.get(find(i)) ?? []), it.box]));
  const out: ConsolidatedBox[] = [];
  for (const boxes of clusters.values()) {
    const votes = boxes.length;
    if (votes < minVotes) continue;
    const mean = (k: 'x1' | 'y1' | 'x2' | 'y2') => boxes.reduce((sum, x) => sum + x[k], 0) / votes;
    const counts = new Map<number, number>();
    for (const x of boxes) counts.set(x.cls, (counts.get(x.cls) ?? 0) + 1);
    const cls = [...counts.entries()].sort((x, y) => y[1] - x[1] || x[0] - y[0])[0]![0];
    const avg = { cls, x1: mean('x1'), y1: mean('y1'), x2: mean('x2'), y2: mean('y2') };
    out.push({ ...avg, votes, confidence: (votes / W) * (boxes.reduce((sum, x) => sum + iou(x, avg), 0) / votes) });
  }
  return out.sort((x, y) => x.cls - y.cls || x.x1 - y.x1 || x.y1 - y.y1);
}
