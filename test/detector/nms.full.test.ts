import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { roundHalf } from '../../components/detector/fp16.js';
import { Postprocessor, type NmsOptions } from '../../components/detector/postprocess.js';
import { ultralytics } from './reference.js';

// loupe's NMS against ultralytics' utils/nms.py non_max_suppression (with torchvision, as
// ultralytics runs it) on synthetic model outputs built to hit the edge cases.

interface Case {
  name: string;
  nc: number;
  /** Boxes as [cx, cy, w, h, ...class scores] per anchor. */
  anchors: number[][];
  conf: number;
  iou: number;
  multi?: boolean;
  classes?: number[];
  max_det?: number;
  fp16?: boolean;
  end2end?: boolean;
}

/** [4+nc, N] channel-major, the export's layout. */
function layout(c: Case): number[] {
  const n = c.anchors.length;
  const rows = 4 + c.nc;
  const out = new Array<number>(rows * n);
  c.anchors.forEach((a, j) => a.forEach((v, r) => (out[r * n + j] = c.fp16 ? roundHalf(v) : Math.fround(v))));
  return out;
}

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

const cases: Case[] = [
  {
    name: 'tied scores: the lower anchor index wins (stable sort)',
    nc: 1,
    anchors: [
      [50, 50, 20, 20, 0.8],
      [51, 50, 20, 20, 0.8],
      [52, 50, 20, 20, 0.8],
      [150, 50, 20, 20, 0.8],
    ],
    conf: 0.25,
    iou: 0.5,
  },
  {
    name: 'IoU exactly 0.5 at threshold 0.5 is kept (strictly greater suppresses)',
    nc: 1,
    anchors: [
      [5, 5, 10, 10, 0.9],
      [5, 10, 10, 20, 0.8],
    ],
    conf: 0.25,
    iou: 0.5,
  },
  {
    name: 'IoU 0.5 at threshold 0.49 is suppressed',
    nc: 1,
    anchors: [
      [5, 5, 10, 10, 0.9],
      [5, 10, 10, 20, 0.8],
    ],
    conf: 0.25,
    iou: 0.49,
  },
  {
    name: 'IoU 70/100 (float32 0.69999999) against the double threshold 0.7 is kept',
    nc: 1,
    anchors: [
      [5, 5, 10, 10, 0.9],
      [3.5, 5, 7, 10, 0.8],
    ],
    conf: 0.25,
    iou: 0.7,
  },
  {
    name: 'score equal to conf is dropped (strictly greater passes)',
    nc: 2,
    anchors: [
      [10, 10, 5, 5, 0.25, 0.1],
      [40, 10, 5, 5, 0.1, 0.2500001],
      [80, 10, 5, 5, 0.5, 0.5],
    ],
    conf: 0.25,
    iou: 0.7,
  },
  {
    name: 'same box, different classes: both kept (class offset 7680)',
    nc: 3,
    anchors: [
      [100, 100, 50, 50, 0.9, 0.1, 0.1],
      [100, 100, 50, 50, 0.1, 0.8, 0.1],
      [101, 100, 50, 50, 0.1, 0.1, 0.7],
    ],
    conf: 0.25,
    iou: 0.7,
  },
  {
    name: 'multi-label (val): one box, two classes above conf',
    nc: 3,
    anchors: [
      [100, 100, 50, 50, 0.6, 0.55, 0.0005],
      [300, 100, 50, 50, 0.002, 0.3, 0.0009],
    ],
    conf: 0.001,
    iou: 0.7,
    multi: true,
  },
  {
    name: 'class filter applies to the best class',
    nc: 3,
    anchors: [
      [10, 10, 5, 5, 0.9, 0.8, 0.1],
      [40, 10, 5, 5, 0.1, 0.8, 0.1],
      [80, 10, 5, 5, 0.1, 0.2, 0.7],
    ],
    conf: 0.25,
    iou: 0.7,
    classes: [1, 2],
  },
  {
    name: 'boxes partly outside the input',
    nc: 1,
    anchors: [
      [2, 3, 20, 30, 0.9],
      [470, 478, 40, 10, 0.8],
      [3, 3, 20, 30, 0.85],
    ],
    conf: 0.25,
    iou: 0.7,
  },
  {
    name: 'fp16 outputs: thresholds and xywh->xyxy in half precision',
    nc: 2,
    anchors: [
      [123.3, 77.7, 33.3, 21.1, 0.2501, 0.1],
      [124.1, 78.2, 33.9, 20.7, 0.6, 0.3],
      [300.5, 200.25, 10.1, 10.3, 0.1, 0.4],
    ],
    conf: 0.25,
    iou: 0.7,
    fp16: true,
  },
];

// Dense random outputs: thousands of candidates, overlapping, several classes, both modes.
for (const [seed, multi, maxDet] of [
  [1, false, 300],
  [2, true, 300],
  [3, false, 50],
] as const) {
  const r = rng(seed);
  const anchors: number[][] = [];
  for (let j = 0; j < 3000; j++) {
    const cx = Math.round(r() * 480 * 4) / 4;
    const cy = Math.round(r() * 480 * 4) / 4;
    anchors.push([cx, cy, 5 + r() * 80, 5 + r() * 80, r() * r(), r() * r() * r(), r() * 0.5]);
  }
  cases.push({
    name: `random 3000 anchors, seed ${seed}, ${multi ? 'multi-label' : 'best class'}, max_det ${maxDet}`,
    nc: 3,
    anchors,
    conf: multi ? 0.001 : 0.05,
    iou: 0.6,
    multi,
    max_det: maxDet,
  });
}

let tmp: string;
beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'loupe-nms-'));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

describe('NMS agrees with ultralytics non_max_suppression', () => {
  it('on edge cases and dense random outputs, exactly (boxes, scores, classes, order)', async () => {
    const ref = await ultralytics<number[][][]>('nms', {
      cwd: tmp,
      cases: cases.map((c) => ({
        pred: layout(c),
        shape: [1, 4 + c.nc, c.anchors.length],
        conf: c.conf,
        iou: c.iou,
        classes: c.classes ?? null,
        multi: c.multi ?? false,
        max_det: c.max_det ?? 300,
        fp16: c.fp16 ?? false,
      })),
    });
    const post = new Postprocessor();
    cases.forEach((c, k) => {
      const opts: NmsOptions = {
        conf: c.conf,
        iou: c.iou,
        maxDet: c.max_det ?? 300,
        maxNms: 30000,
        multiLabel: c.multi ?? false,
        classes: c.classes ? new Set(c.classes) : undefined,
        fp16: c.fp16 ?? false,
      };
      const out = post.run(Float32Array.from(layout(c)), c.nc, c.anchors.length, opts);
      const ours: number[][] = [];
      for (let i = 0; i < out.n; i++) ours.push([...out.xyxy.subarray(i * 4, i * 4 + 4), out.conf[i], out.cls[i]]);
      expect(ours, c.name).toEqual(ref[k]);
    });
    // the edge cases say what they claim
    expect(ref[1].length).toBe(2);
    expect(ref[2].length).toBe(1);
    expect(ref[3].length).toBe(2);
    expect(ref[4].map((r) => r[5])).toEqual([0, 1]);
    expect(ref[6].length).toBe(4); // 0.6 + 0.55 on the first box, 0.002 + 0.3 on the second
  }, 600_000);

  it('nms=True exports: threshold, max_det, then class filter', async () => {
    const rows: number[][] = [
      [10, 10, 20, 20, 0.9, 0],
      [30, 30, 50, 50, 0.8, 1],
      [10, 10, 20, 20, 0.25, 1],
      [60, 60, 70, 70, 0.3, 2],
      ...Array.from({ length: 296 }, () => [0, 0, 0, 0, 0, 0]),
    ];
    const pred = rows.flat();
    const ref = await ultralytics<number[][][]>('nms', {
      cwd: tmp,
      cases: [
        { pred, shape: [1, 300, 6], conf: 0.25, iou: 0.7, classes: null, end2end: true },
        { pred, shape: [1, 300, 6], conf: 0.25, iou: 0.7, classes: [1, 2], end2end: true },
        { pred, shape: [1, 300, 6], conf: 0.1, iou: 0.7, classes: null, end2end: true, max_det: 2 },
      ],
    });
    const post = new Postprocessor();
    const run = (conf: number, classes: number[] | undefined, maxDet: number): number[][] => {
      const o = post.runEnd2End(Float32Array.from(pred), 300, 3, {
        conf,
        iou: 0.7,
        maxDet,
        maxNms: 30000,
        multiLabel: false,
        classes: classes ? new Set(classes) : undefined,
        fp16: false,
      });
      return Array.from({ length: o.n }, (_, i) => [...o.xyxy.subarray(i * 4, i * 4 + 4), o.conf[i], o.cls[i]]);
    };
    expect(run(0.25, undefined, 300)).toEqual(ref[0]);
    expect(run(0.25, [1, 2], 300)).toEqual(ref[1]);
    expect(run(0.1, undefined, 2)).toEqual(ref[2]);
  }, 600_000);

  it('per-class thresholds behave as ultralytics run at that class threshold, class by class', () => {
    // loupe addition: scratch at 0.6, others at 0.25. Classes never suppress each other (offset),
    // so the result is the union of per-class runs.
    const c: Case = cases[cases.length - 3];
    const pred = Float32Array.from(layout(c));
    const post = new Postprocessor();
    const base = { iou: c.iou, maxDet: 3000, maxNms: 30000, multiLabel: false, fp16: false }; // no cap interplay
    const mixed = post.run(pred, 3, c.anchors.length, { ...base, conf: 0.25, classConf: [0.6, undefined, undefined] });
    const got = Array.from({ length: mixed.n }, (_, i) => `${mixed.cls[i]}:${mixed.conf[i]}`).sort();
    const want: string[] = [];
    for (const [cls, conf] of [
      [0, 0.6],
      [1, 0.25],
      [2, 0.25],
    ] as const) {
      const o = post.run(pred, 3, c.anchors.length, { ...base, conf, classes: new Set([cls]) });
      for (let i = 0; i < o.n; i++) want.push(`${o.cls[i]}:${o.conf[i]}`);
    }
    expect(got).toEqual(want.sort());
    expect(got.some((s) => s.startsWith('0:'))).toBe(true);
  }, 600_000);
});
