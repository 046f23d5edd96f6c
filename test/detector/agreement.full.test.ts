import { mkdtemp, rm } from 'node:fs/promises';
import { readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeFileAtomic } from '../../lib/fsutil.js';
import { projectRoot } from '../../lib/paths.js';
import { Detector, type DetectOptions } from '../../components/detector/detector.js';
import { runCli } from '../helpers/cli.js';
import { yoloDataset } from '../helpers/datasets.js';
import { fixtureModel, type FixtureModel } from '../helpers/models.js';
import { ultralytics } from './reference.js';

// AGREEMENT with ultralytics predict on both shared data sets (their test splits), with every
// fixture export: each ultralytics box must have a loupe box of the same class with IoU >= 0.98
// and |Δconf| <= 0.02, and loupe may have no extra box. The figures (and how many boxes are
// bit-identical) go to test-artifacts/agreement.json.

interface RefImage {
  shape: number[];
  boxes: number[][];
}

interface Figures {
  images: number;
  boxes: number;
  identical: number;
  minIou: number;
  maxDconf: number;
  unmatched: number;
  extra: number;
}

function iou(a: number[], b: number[]): number {
  const w = Math.max(0, Math.min(a[2], b[2]) - Math.max(a[0], b[0]));
  const h = Math.max(0, Math.min(a[3], b[3]) - Math.max(a[1], b[1]));
  const i = w * h;
  return i / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - i);
}

type Loupe = Map<string, { width: number; height: number; boxes: Array<{ xyxy: number[]; conf: number; cls: number }> }>;

function compare(ref: Record<string, RefImage>, ours: Loupe): Figures {
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
      if (best < 0.98 || Math.abs(d.conf - b[4]) > 0.02) f.unmatched++;
      if (d.xyxy.every((v, k) => v === b[k]) && d.conf === b[4]) f.identical++;
    }
    f.extra += o!.boxes.length - used.size;
  }
  return f;
}

async function ours(model: string, files: string[], opts: DetectOptions = {}, load: { imgsz?: number } = {}): Promise<Loupe> {
  const det = await Detector.load(model, load);
  try {
    const out: Loupe = new Map();
    // All queued at once: exercises the detector's internal queue (decodes overlap inference).
    const all = await Promise.all(files.map((f) => det.detect(f, opts)));
    files.forEach((f, i) => out.set(f, { width: all[i].width, height: all[i].height, boxes: all[i].detections }));
    return out;
  } finally {
    await det.dispose();
  }
}

let tmp: string;
const report: Record<string, Figures> = {};
const splitImages: Record<string, string[]> = {};

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'loupe-agree-'));
  for (const ds of ['metal-tags', 'neu-det'] as const) {
    const dir = join(dirname(await yoloDataset(ds)), 'images', 'test');
    splitImages[ds] = readdirSync(dir)
      .sort()
      .map((f) => join(dir, f));
  }
}, 600_000);

afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
  await writeFileAtomic(join(projectRoot, 'test-artifacts', 'agreement.json'), JSON.stringify(report, null, 2));
});

interface Job {
  name: string;
  model: FixtureModel;
  ds: 'metal-tags' | 'neu-det';
  kwargs?: Record<string, unknown>;
  opts?: DetectOptions;
  load?: { imgsz?: number };
}

const jobs: Job[] = [
  { name: 'metal-tags', model: 'metal-tags', ds: 'metal-tags' },
  { name: 'metal-tags conf 0.05', model: 'metal-tags', ds: 'metal-tags', kwargs: { conf: 0.05 }, opts: { conf: 0.05 } },
  { name: 'metal-tags-dynamic (rect letterbox)', model: 'metal-tags-dynamic', ds: 'metal-tags', kwargs: { imgsz: 480 } },
  { name: 'metal-tags-dynamic at imgsz 320', model: 'metal-tags-dynamic', ds: 'metal-tags', kwargs: { imgsz: 320 }, load: { imgsz: 320 } },
  { name: 'metal-tags-nms', model: 'metal-tags-nms', ds: 'metal-tags' },
  { name: 'metal-tags-fp16', model: 'metal-tags-fp16', ds: 'metal-tags' },
  { name: 'neu-det', model: 'neu-det', ds: 'neu-det' },
  { name: 'neu-det classes 1,3 iou 0.5', model: 'neu-det', ds: 'neu-det', kwargs: { classes: [1, 3], iou: 0.5 }, opts: { classes: [1, 3], iou: 0.5 } },
  { name: 'neu-det-dynamic', model: 'neu-det-dynamic', ds: 'neu-det', kwargs: { imgsz: 256 } },
  { name: 'neu-det-nms', model: 'neu-det-nms', ds: 'neu-det' },
];

describe('agreement with ultralytics predict', () => {
  it(
    'every fixture export on the test splits of metal-tags and neu-det',
    async () => {
      const models = await Promise.all(jobs.map((j) => fixtureModel(j.model)));
      const ref = await ultralytics<Array<Record<string, RefImage>>>(
        'predict_many',
        { cwd: tmp, jobs: jobs.map((j, k) => ({ model: models[k], files: splitImages[j.ds], kwargs: j.kwargs ?? {} })) },
        1_800_000,
      );
      for (let k = 0; k < jobs.length; k++) {
        const j = jobs[k];
        const f = compare(ref[k], await ours(models[k], splitImages[j.ds], j.opts, j.load));
        report[j.name] = f;
        expect(f.boxes, j.name).toBeGreaterThan(10);
        expect(f.unmatched, j.name).toBe(0);
        expect(f.extra, j.name).toBe(0);
        expect(f.minIou, j.name).toBeGreaterThanOrEqual(0.98);
        expect(f.maxDconf, j.name).toBeLessThanOrEqual(0.02);
      }
    },
    3_600_000,
  );

  it(
    'loupe detect --json on a folder gives the same boxes (CLI contract)',
    async () => {
      const model = await fixtureModel('metal-tags');
      const dir = dirname(splitImages['metal-tags'][0]);
      const r = await runCli(['detect', dir, '--model', model, '--json'], { timeoutMs: 600_000 });
      expect(r.code, r.stderr).toBe(0);
      const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { image: string; width: number; height: number; detections: Array<{ xyxy: number[]; conf: number; cls: number; name: string }> });
      expect(lines.map((l) => l.image)).toEqual(splitImages['metal-tags']);
      for (const l of lines) {
        expect(Object.keys(l)).toEqual(['image', 'width', 'height', 'detections']);
        for (const d of l.detections) expect(Object.keys(d)).toEqual(['xyxy', 'conf', 'cls', 'name']);
      }
      const ref = await ours(model, splitImages['metal-tags']);
      for (const l of lines) expect(l.detections).toEqual(ref.get(l.image)!.boxes);
    },
    900_000,
  );
});
