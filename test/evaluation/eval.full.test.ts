import { mkdtemp, readFile, rm, writeFile, mkdir, symlink } from 'node:fs/promises';
import { existsSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeFileAtomic } from '../../lib/fsutil.js';
import { projectRoot } from '../../lib/paths.js';
import { evaluate } from '../../cloud/evaluation/index.js';
import { runCli } from '../helpers/cli.js';
import { yoloDataset } from '../helpers/datasets.js';
import { fixtureModel, type FixtureModel } from '../helpers/models.js';
import { ultralytics } from '../detector/reference.js';

// `loupe eval` against ultralytics `val` on the same model and split: mAP50 and mAP50-95 within
// 0.005 (the bar; the figures land in test-artifacts/eval-agreement.json), the DESIGN.md
// JSON shape, the artefacts, and clear refusals.

interface RefVal {
  map50: number;
  map50_95: number;
  precision: number;
  recall: number;
  per_class: Array<{ cls: number; ap50: number; ap50_95: number; p: number; r: number }>;
}

interface Summary {
  images: number;
  instances: number;
  map50: number;
  map50_95: number;
  precision: number;
  recall: number;
  per_class: Array<{ cls: number; name: string; instances: number; ap50: number; ap50_95: number }>;
}

let tmp: string;
const report: Record<string, unknown> = {};

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'loupe-eval-'));
});

afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
  await writeFileAtomic(join(projectRoot, 'test-artifacts', 'eval-agreement.json'), JSON.stringify(report, null, 2));
});

function countImages(yaml: string, split: string): number {
  return readdirSync(join(dirname(yaml), 'images', split)).length;
}

describe('loupe eval agrees with ultralytics val', () => {
  const cases: Array<[string, FixtureModel, 'metal-tags' | 'neu-det']> = [
    ['metal-tags', 'metal-tags', 'metal-tags'],
    ['neu-det', 'neu-det', 'neu-det'],
    ['metal-tags-dynamic (per-image rect)', 'metal-tags-dynamic', 'metal-tags'],
    ['metal-tags-nms', 'metal-tags-nms', 'metal-tags'],
  ];
  for (const [name, modelName, ds] of cases) {
    it(`${name}: test split, mAP50 and mAP50-95 within 0.005`, async () => {
      const model = await fixtureModel(modelName);
      const data = await yoloDataset(ds);
      const imgsz = ds === 'metal-tags' ? 480 : 256;
      const out = join(tmp, `out-${modelName}`);
      const [ref, cli] = await Promise.all([
        ultralytics<RefVal>('val', { cwd: tmp, tmp, model, data, split: 'test', imgsz }, 1_800_000),
        runCli(['eval', '--model', model, '--data', data, '--split', 'test', '--json', '--out', out], { timeoutMs: 1_800_000 }),
      ]);
      expect(cli.code, cli.stderr).toBe(0);
      const lines = cli.stdout.trim().split('\n');
      expect(lines.length).toBe(1);
      const got = JSON.parse(lines[0]) as Summary;
      expect(Object.keys(got)).toEqual(['images', 'instances', 'map50', 'map50_95', 'precision', 'recall', 'per_class']);
      expect(got.images).toBe(countImages(data, 'test'));
      const d = {
        map50: Math.abs(got.map50 - ref.map50),
        map50_95: Math.abs(got.map50_95 - ref.map50_95),
        precision: Math.abs(got.precision - ref.precision),
        recall: Math.abs(got.recall - ref.recall),
        perClassMaxAp: Math.max(
          ...got.per_class.map((c, i) =>
            Math.max(Math.abs(c.ap50 - ref.per_class[i].ap50), Math.abs(c.ap50_95 - ref.per_class[i].ap50_95)),
          ),
        ),
      };
      report[name] = {
        loupe: { map50: got.map50, map50_95: got.map50_95, precision: got.precision, recall: got.recall },
        ultralytics: { map50: ref.map50, map50_95: ref.map50_95, precision: ref.precision, recall: ref.recall },
        absDiff: d,
        images: got.images,
        instances: got.instances,
      };
      expect(got.per_class.map((c) => c.cls)).toEqual(ref.per_class.map((c) => c.cls));
      expect(d.map50).toBeLessThanOrEqual(0.005);
      expect(d.map50_95).toBeLessThanOrEqual(0.005);
      expect(d.perClassMaxAp).toBeLessThanOrEqual(0.005);
      expect(got.map50).toBeGreaterThan(0.3); // a trained model, not noise

      // artefacts: data and pictures a person can open
      for (const f of ['eval.json', 'pr_curve.json', 'pr_curve.svg', 'confusion_matrix.json', 'confusion_matrix.svg'])
        expect(existsSync(join(out, f)), f).toBe(true);
      const cm = JSON.parse(await readFile(join(out, 'confusion_matrix.json'), 'utf8')) as { labels: string[]; matrix: number[][] };
      const nc = cm.labels.length - 1;
      // every label is counted once in its true-class column (matched or missed)
      for (const c of got.per_class) expect(cm.matrix.reduce((s, row) => s + row[c.cls], 0)).toBe(c.instances);
      expect(cm.matrix.length).toBe(nc + 1);
      const pr = JSON.parse(await readFile(join(out, 'pr_curve.json'), 'utf8')) as {
        grid: number[];
        classes: Array<{ precision: number[] | null }>;
      };
      expect(pr.grid.length).toBe(1000);
      expect(pr.classes.length).toBe(got.per_class.length);
      for (const svg of ['pr_curve.svg', 'confusion_matrix.svg']) {
        const text = await readFile(join(out, svg), 'utf8');
        expect(text.startsWith('<svg ')).toBe(true);
        expect(text.trimEnd().endsWith('</svg>')).toBe(true);
        for (const c of got.per_class) expect(text).toContain(c.name.replace(/&/g, '&amp;'));
      }
    }, 3_600_000);
  }
});

describe('evaluate() API', () => {
  it('returns the PR curve and confusion matrix with the metrics, and reports progress', async () => {
    const seen: number[] = [];
    const r = await evaluate({
      model: await fixtureModel('metal-tags'),
      data: await yoloDataset('metal-tags'),
      split: 'val',
      onProgress: (d) => seen.push(d),
    });
    expect(r.split).toBe('val');
    expect(seen.length).toBe(r.images);
    expect(seen[seen.length - 1]).toBe(r.images);
    expect(r.prCurve.classes[0].precision?.length).toBe(1000);
    expect(r.confusionMatrix.labels).toEqual(['scratch', 'background']);
    expect(r.classes[0].ap.length).toBe(10);
    expect(r.speed.inference).toBeGreaterThan(0);
  }, 600_000);

  it('with 2 sessions gives the metrics of one single-threaded session (images run two at a time, taken in order)', async () => {
    const [model, data] = [await fixtureModel('metal-tags'), await yoloDataset('metal-tags')];
    const [a, b] = [
      await evaluate({ model, data, split: 'val', load: { sessions: 2 } }),
      await evaluate({ model, data, split: 'val', load: { threads: 1 } }),
    ];
    expect(a.images).toBeGreaterThan(0);
    expect([a.map50, a.map50_95, a.precision, a.recall, a.classes]).toEqual([b.map50, b.map50_95, b.precision, b.recall, b.classes]);
  }, 600_000);
});

describe('loupe eval refusals', () => {
  it('missing data.yaml, missing split, class mismatch, bad split name: exit 1, message, no stdout', async () => {
    const model = await fixtureModel('metal-tags');
    const noTest = join(tmp, 'no-test');
    await mkdir(join(noTest, 'images', 'val'), { recursive: true });
    const real = dirname(await yoloDataset('metal-tags'));
    const one = readdirSync(join(real, 'images', 'val'))[0];
    await symlink(join(real, 'images', 'val', one), join(noTest, 'images', 'val', one));
    await writeFile(join(noTest, 'data.yaml'), `path: ${noTest}\ntrain: images/val\nval: images/val\nnames:\n  0: scratch\n`);
    const cases: Array<[string[], RegExp]> = [
      [['--data', join(tmp, 'nope.yaml')], /nope\.yaml: data set description not found/],
      [['--data', join(noTest, 'data.yaml')], /has no 'test' split/],
      [['--data', await yoloDataset('neu-det')], /6 classes .* but the model has 1/],
      [['--data', join(noTest, 'data.yaml'), '--split', 'holdout'], /--split: must be one of train, val, test/],
      [['--data', join(noTest, 'data.yaml'), '--conf', '1.5'], /--conf/],
    ];
    for (const [args, msg] of cases) {
      const out = join(tmp, `refused-${Math.random().toString(36).slice(2)}`);
      const r = await runCli(['eval', '--model', model, ...args, '--json', '--out', out]);
      expect(r.code, args.join(' ')).toBe(1);
      expect(r.stdout).toBe('');
      expect(r.stderr).toMatch(msg);
      expect(existsSync(out)).toBe(false); // nothing half-written
    }
  }, 600_000);
});
