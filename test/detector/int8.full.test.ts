import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeFileAtomic } from '../../lib/fsutil.js';
import { projectRoot } from '../../lib/paths.js';
import { Detector } from '../../components/detector/detector.js';
import { runCli } from '../helpers/cli.js';
import { yoloDataset } from '../helpers/datasets.js';
import { fixtureModel } from '../helpers/models.js';
import { compare, testSplitImages, type Figures, type Loupe, type RefImage } from './box-agreement.js';
import { ultralytics } from './reference.js';

// int8 models from `loupe quantize` in loupe's detector. `loupe detect` and `loupe eval` must agree
// with onnxruntime in Python on the same int8 file: ultralytics predict and val run it through
// the venv's onnxruntime (1.20.1; loupe runs onnxruntime-node 1.30), with the same pre- and
// postprocessing loupe reproduces, so what is compared is the int8 graph's execution.
// Figures land in test-artifacts/int8-agreement.json.

const DATASETS = ['metal-tags', 'neu-det'] as const;
type Ds = (typeof DATASETS)[number];

let tmp: string;
const report: Record<string, unknown> = {};
const splitImages = {} as Record<Ds, string[]>;
const yaml = {} as Record<Ds, string>;

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'loupe-int8-'));
  for (const ds of DATASETS) {
    yaml[ds] = await yoloDataset(ds);
    splitImages[ds] = await testSplitImages(ds);
  }
}, 600_000);

afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
  await writeFileAtomic(join(projectRoot, 'test-artifacts', 'int8-agreement.json'), JSON.stringify(report, null, 2));
});

describe('int8 (QDQ) models in the detector', () => {
  it('reports each model precision from its graph: fp32, fp16, int8', async () => {
    const cases: Array<[Parameters<typeof fixtureModel>[0], string]> = [
      ['metal-tags', 'fp32'],
      ['metal-tags-fp16', 'fp16'],
      ['metal-tags-int8', 'int8'],
    ];
    for (const [name, precision] of cases) {
      const det = await Detector.load(await fixtureModel(name));
      expect(det.info.precision, name).toBe(precision);
      // int8 models keep the float32 input and output of the export
      expect(det.info.fp16, name).toBe(precision === 'fp16');
      await det.dispose();
    }
  }, 1_200_000);

  it('loupe detect on int8 models agrees with onnxruntime in Python (ultralytics predict) on both test splits', async () => {
    const models = { 'metal-tags': await fixtureModel('metal-tags-int8'), 'neu-det': await fixtureModel('neu-det-int8') };
    const ref = await ultralytics<Array<Record<string, RefImage>>>(
      'predict_many',
      { cwd: tmp, jobs: DATASETS.map((ds) => ({ model: models[ds], files: splitImages[ds], kwargs: {} })) },
      1_800_000,
    );
    for (let k = 0; k < DATASETS.length; k++) {
      const ds = DATASETS[k]!;
      // The CLI contract, as a user runs it: one JSON line per image of the folder.
      const r = await runCli(['detect', dirname(splitImages[ds][0]!), '--model', models[ds], '--json'], { timeoutMs: 900_000 });
      expect(r.code, r.stderr).toBe(0);
      const ours: Loupe = new Map();
      for (const line of r.stdout.trim().split('\n')) {
        const l = JSON.parse(line) as {
          image: string;
          width: number;
          height: number;
          detections: Array<{ xyxy: number[]; conf: number; cls: number }>;
        };
        ours.set(l.image, { width: l.width, height: l.height, boxes: l.detections });
      }
      const f: Figures = compare(ref[k]!, ours);
      report[`detect ${ds}-int8`] = f;
      expect(f.boxes, ds).toBeGreaterThan(10);
      expect(f.unmatched, ds).toBe(0);
      expect(f.extra, ds).toBe(0);
      expect(f.minIou, ds).toBeGreaterThanOrEqual(0.98);
      expect(f.maxDconf, ds).toBeLessThanOrEqual(0.02);
    }
  }, 3_600_000);

  it('loupe eval on int8 models agrees with onnxruntime in Python (ultralytics val) on both test splits', async () => {
    for (const ds of DATASETS) {
      const model = await fixtureModel(ds === 'metal-tags' ? 'metal-tags-int8' : 'neu-det-int8');
      const r = await runCli(['eval', '--model', model, '--data', yaml[ds], '--split', 'test', '--json'], { timeoutMs: 900_000 });
      expect(r.code, r.stderr).toBe(0);
      const ours = JSON.parse(r.stdout) as { images: number; map50: number; map50_95: number };
      const det = await Detector.load(model);
      const imgsz = det.info.imgsz[0];
      await det.dispose();
      const theirs = await ultralytics<{ map50: number; map50_95: number }>(
        'val',
        { cwd: tmp, tmp, model, data: yaml[ds], split: 'test', imgsz },
        1_800_000,
      );
      report[`eval ${ds}-int8`] = {
        loupe: ours,
        ultralytics: theirs,
        dMap50: Math.abs(ours.map50 - theirs.map50),
        dMap50_95: Math.abs(ours.map50_95 - theirs.map50_95),
      };
      expect(ours.images).toBe(splitImages[ds].length);
      expect(Math.abs(ours.map50 - theirs.map50), ds).toBeLessThanOrEqual(0.005);
      expect(Math.abs(ours.map50_95 - theirs.map50_95), ds).toBeLessThanOrEqual(0.005);
    }
  }, 3_600_000);
});
