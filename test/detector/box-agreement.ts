import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { expect } from 'vitest';
import { yoloDataset } from '../helpers/datasets.js';

/** The test split's images of a shared data set's YOLO export, sorted (as ultralytics' loader lists them). */
export async function testSplitImages(ds: 'metal-tags' | 'neu-det'): Promise<string[]> {
  const dir = join(dirname(await yoloDataset(ds)), 'images', 'test');
  return readdirSync(dir)
    .sort()
    .map((f) => join(dir, f));
}

/**
 * Box-by-box agreement between a reference (ultralytics predict: [x1, y1, x2, y2, conf, cls] per
 * box) and loupe's detections on the same images: each reference box is matched to the loupe
 * box of the same class with the highest IoU; the figures say how close the matches are, how
 * many are bit-identical, and how many boxes either side has without a partner.
 */
export interface RefImage {
  shape: number[];
  boxes: number[][];
}

export interface Figures {
  images: number;
  boxes: number;
  identical: number;
  minIou: number;
  maxDconf: number;
  unmatched: number;
  extra: number;
}

export function iou(a: number[], b: number[]): number {
  const w = Math.max(0, Math.min(a[2], b[2]) - Math.max(a[0], b[0]));
  const h = Math.max(0, Math.min(a[3], b[3]) - Math.max(a[1], b[1]));
  const i = w * h;
  return i / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - i);
}

export type Loupe = Map<string, { width: number; height: number; boxes: Array<{ xyxy: number[]; conf: number; cls: number }> }>;

export function compare(ref: Record<string, RefImage>, ours: Loupe, tol = { iou: 0.98, conf: 0.02 }): Figures {
  const f: Figures = { images: 0, boxes: 0, identical: 0, minIou: 1, maxDconf: 0, unmatched: 0, extra: 0 };
  for (const [file, r] of Object.entries(ref)) {
    const o = ours.get(file);
    expect(o, file).toBeDefined();
    expect([o!.height, o!.width], file).toEqual(r.shape);
    f.images++;
    const used = new Set<number>();
    for (const b of r.boxes) {
      f.boxes++;
      let best = -1;
      let bi = -1;
      o!.boxes.forEach((d, i) => {
        if (used.has(i) || d.cls !== b[5]) return;
        const v = iou(d.xyxy, b);
        if (v > best) {
          best = v;
          bi = i;
        }
      });
      if (bi < 0) {
        f.unmatched++;
        continue;
      }
      used.add(bi);
      const d = o!.boxes[bi];
      f.minIou = Math.min(f.minIou, best);
      f.maxDconf = Math.max(f.maxDconf, Math.abs(d.conf - b[4]));
      if (best < tol.iou || Math.abs(d.conf - b[4]) > tol.conf) f.unmatched++;
      if (d.xyxy.every((v, k) => v === b[k]) && d.conf === b[4]) f.identical++;
    }
    f.extra += o!.boxes.length - used.size;
  }
  return f;
}
