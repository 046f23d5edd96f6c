import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeFileAtomic } from '../../lib/fsutil.js';
import { projectRoot } from '../../lib/paths.js';
import { Detector, type DetectOptions } from '../../components/detector/detector.js';
import { runCli } from '../helpers/cli.js';
import { fixtureModel, type FixtureModel } from '../helpers/models.js';
import { ultralytics } from './reference.js';
import { compare, testSplitImages, type Figures, type Loupe, type RefImage } from './box-agreement.js';

// AGREEMENT with ultralytics predict on both shared data sets (their test splits), with every
// fixture export: each ultralytics box must have a loupe box of the same class with IoU >= 0.98
// and |Δconf| <= 0.02, and loupe may have no extra box. The figures (and how many boxes are
// bit-identical) go to test-artifacts/agreement.json.

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
  for (const ds of ['metal-tags', 'neu-det'] as const) splitImages[ds] = await testSplitImages(ds);
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
  {
    name: 'neu-det classes 1,3 iou 0.5',
    model: 'neu-det',
    ds: 'neu-det',
    kwargs: { classes: [1, 3], iou: 0.5 },
    opts: { classes: [1, 3], iou: 0.5 },
  },
  { name: 'neu-det-dynamic', model: 'neu-det-dynamic', ds: 'neu-det', kwargs: { imgsz: 256 } },
  { name: 'neu-det-nms', model: 'neu-det-nms', ds: 'neu-det' },
];

describe('agreement with ultralytics predict', () => {
  it('every fixture export on the test splits of metal-tags and neu-det', async () => {
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
  }, 3_600_000);

  it('loupe detect --json on a folder gives the same boxes (CLI contract)', async () => {
    const model = await fixtureModel('metal-tags');
    const dir = dirname(splitImages['metal-tags'][0]);
    const r = await runCli(['detect', dir, '--model', model, '--json'], { timeoutMs: 600_000 });
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout
      .trim()
      .split('\n')
      .map(
        (l) =>
          JSON.parse(l) as {
            image: string;
            width: number;
            height: number;
            detections: Array<{ xyxy: number[]; conf: number; cls: number; name: string }>;
          },
      );
    expect(lines.map((l) => l.image)).toEqual(splitImages['metal-tags']);
    for (const l of lines) {
      expect(Object.keys(l)).toEqual(['image', 'width', 'height', 'detections']);
      for (const d of l.detections) expect(Object.keys(d)).toEqual(['xyxy', 'conf', 'cls', 'name']);
    }
    const ref = await ours(model, splitImages['metal-tags']);
    for (const l of lines) expect(l.detections).toEqual(ref.get(l.image)!.boxes);
  }, 900_000);
});
