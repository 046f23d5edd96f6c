import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { datasetDir } from '../../lib/paths.js';
import { runCli } from '../helpers/cli.js';
import { yoloDataset } from '../helpers/datasets.js';
import { tempDir } from './synth.js';

describe('loupe dataset (CLI, real child process on dist/)', () => {
  it('import --format featurestore --json: the metal-tags data set, version and report on stdout, logs on stderr', async () => {
    const dir = await tempDir();
    const out = join(dir, 'mt');
    const r = await runCli([
      'dataset',
      'import',
      '--format',
      'featurestore',
      '--from',
      join(datasetDir('metal-tags'), 'labels.csv'),
      '--out',
      out,
      '--json',
    ]);
    expect(r.code, r.stderr).toBe(0);
    const s = JSON.parse(r.stdout) as Record<string, unknown>;
    expect(s).toMatchObject({
      data: join(out, 'data.yaml'),
      names: ['scratch'],
      splits: { train: 163, val: 37, test: 35 },
      records: 235,
      images: 235,
      boxes: 482,
      unlabelled: 4,
    });
    expect(s.version).toMatch(/^[0-9a-f]{64}$/);
    expect(JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8')).version).toBe(s.version);
    expect(r.stderr).toMatch(/"msg":"images without labels were left out"/);
    // the same labels imported twice give the same version
    const again = await runCli([
      'dataset',
      'import',
      '--format',
      'featurestore',
      '--from',
      join(datasetDir('metal-tags'), 'labels.csv'),
      '--out',
      join(dir, 'mt2'),
      '--json',
    ]);
    expect(JSON.parse(again.stdout).version).toBe(s.version);
  });

  it('refuses to import into a non-empty folder without --overwrite', async () => {
    const yaml = await yoloDataset('metal-tags');
    const r = await runCli([
      'dataset',
      'import',
      '--format',
      'featurestore',
      '--from',
      join(datasetDir('metal-tags'), 'labels.csv'),
      '--out',
      join(yaml, '..'),
    ]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/output folder exists and is not empty/);
  });

  it('stats --json: images, backgrounds, boxes per split and class; sizes', async () => {
    const r = await runCli(['dataset', 'stats', '--data', await yoloDataset('neu-det'), '--json']);
    expect(r.code, r.stderr).toBe(0);
    const s = JSON.parse(r.stdout);
    expect(s.total).toMatchObject({ images: 1800, boxes: 4105, backgrounds: 4 });
    expect(s.splits.train.images + s.splits.val.images + s.splits.test.images).toBe(1800);
    expect(s.total.perClass.crazing.boxes + s.total.perClass.scratches.boxes).toBeGreaterThan(0);
    expect(Object.values(s.total.perClass as Record<string, { boxes: number }>).reduce((n, c) => n + c.boxes, 0)).toBe(4105);
    expect(s.imageSizes).toEqual({ '200x200': 1800 });
    expect(s.boxSizes.width.max).toBeLessThanOrEqual(200);
    const text = await runCli(['dataset', 'stats', '--data', await yoloDataset('metal-tags')]);
    expect(text.stdout).toMatch(/total\s+235 images\s+5 backgrounds\s+482 boxes/);
  });

  it('export --format coco then import --format coco gives the same version', async () => {
    const dir = await tempDir();
    const yaml = await yoloDataset('metal-tags');
    const e = await runCli(['dataset', 'export', '--data', yaml, '--format', 'coco', '--out', join(dir, 'coco'), '--json']);
    expect(e.code, e.stderr).toBe(0);
    const exported = JSON.parse(e.stdout);
    expect(existsSync(join(dir, 'coco', 'images', 'bad'))).toBe(true);
    const i = await runCli(['dataset', 'import', '--format', 'coco', '--from', exported.path, '--out', join(dir, 'yolo'), '--json']);
    expect(i.code, i.stderr).toBe(0);
    expect(JSON.parse(i.stdout).version).toBe(exported.version);
    const y = await runCli(['dataset', 'export', '--data', yaml, '--format', 'yolo', '--out', join(dir, 'yolo2'), '--json']);
    expect(JSON.parse(y.stdout).version).toBe(exported.version);
  });

  it('bad options: unknown format, missing input, missing data.yaml', async () => {
    const dir = await tempDir();
    const f = await runCli(['dataset', 'import', '--format', 'xml', '--from', dir, '--out', join(dir, 'o')]);
    expect(f.code).not.toBe(0);
    expect(f.stderr).toMatch(/--format: unknown format "xml"/);
    const m = await runCli(['dataset', 'import', '--format', 'voc', '--from', join(dir, 'nope'), '--out', join(dir, 'o')]);
    expect(m.code).not.toBe(0);
    expect(m.stderr).toContain(`${join(dir, 'nope')}: Pascal VOC folder not found`);
    const s = await runCli(['dataset', 'stats', '--data', join(dir, 'none.yaml')]);
    expect(s.code).not.toBe(0);
    expect(s.stderr).toContain('none.yaml: data set description not found');
    const x = await runCli(['dataset', 'export', '--data', await yoloDataset('metal-tags'), '--format', 'voc', '--out', join(dir, 'o')]);
    expect(x.code).not.toBe(0);
    expect(x.stderr).toMatch(/unknown export format "voc"/);
    expect(existsSync(join(dir, 'o'))).toBe(false);
  });
});
