import { readFileSync } from 'node:fs';
import { appendFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildModelCard, datasetFacts, shellCommand } from '../../cloud/training/card.js';
import { readModelCard, writeModelCard } from '../../contracts/model-card.js';
import { sha256File } from '../../lib/fsutil.js';
import { projectRoot } from '../../lib/paths.js';
import { yoloDataset } from '../helpers/datasets.js';
import { metalTagsSubset } from './yolo-fixture.js';

const shippedDir = join(projectRoot, 'models', 'metal-tags');
let tmp: string;

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'lt-card-'));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

describe('the shipped model card (models/metal-tags/card.json)', () => {
  it('is a valid card whose files, data set and trainer numbers are the real ones', async () => {
    const card = await readModelCard(join(shippedDir, 'card.json'));
    expect(card).toMatchObject({ name: 'metal-tags', version: '1.0.0', task: 'detect', classes: ['scratch'], imgsz: 480 });
    expect(card.files.onnx.sha256).toBe(await sha256File(join(shippedDir, 'model.onnx')));
    expect(card.files.pt?.sha256).toBe(await sha256File(join(shippedDir, 'model.pt')));
    expect(card.trainer).toMatchObject({
      name: 'ultralytics',
      version: '8.3.253',
      script: 'cloud/training/train.py',
      base: 'yolov8n.yaml',
      epochsRun: 246,
      epochsRequested: 400,
    });
    // the data set: loupe's export of metal-tags (same labels, same split rule and test images)
    const manifest = JSON.parse(readFileSync(join(await yoloDataset('metal-tags'), '..', 'manifest.json'), 'utf8')) as {
      version: string;
      images: { id: string; split: string }[];
    };
    expect(card.dataset.versionId).toBe(manifest.version);
    expect(card.dataset.testImages).toEqual(
      manifest.images
        .filter((i) => i.split === 'test')
        .map((i) => i.id)
        .sort(),
    );
    expect(card.dataset.testImages).toHaveLength(35);
    expect(card.dataset.counts).toEqual({
      train: { images: 163, boxes: 327 },
      val: { images: 37, boxes: 82 },
      test: { images: 35, boxes: 73 },
    });
    const trainMetrics = JSON.parse(readFileSync(join(shippedDir, 'train-metrics.json'), 'utf8')) as { val: Record<string, number> };
    expect(card.metrics.val).toMatchObject({ map50: trainMetrics.val.map50, map50_95: trainMetrics.val.map50_95 });
    expect(card.command).toMatch(/^loupe dataset import .* && loupe train --data .* --base yolov8n\.yaml --epochs 400 .*--imgsz 480/);
    expect(card.trainerCommand).toContain('cloud/training/train.py');
  });

  it('carries test metrics from loupe eval on the 35-image test split, meeting the 0.85 mAP50 target', async () => {
    const card = await readModelCard(join(shippedDir, 'card.json'));
    expect(card.metrics.test).toMatchObject({ evaluator: 'loupe eval', split: 'test', images: 35, instances: 73 });
    expect(card.metrics.test!.map50).toBeGreaterThanOrEqual(0.85);
  });
});

describe('model card module', () => {
  it('describes a hand-made YOLO folder by its content: any label change gives a new version id', async () => {
    const yaml = await metalTagsSubset(join(tmp, 'd1'), { limit: { train: 3, val: 2, test: 2 } });
    const a = datasetFacts(yaml);
    expect(a.splitRule).toBe('as given by data.yaml (no loupe manifest)');
    expect(a.testImages).toHaveLength(2);
    expect(a.testImages.every((f) => f.endsWith('.jpg'))).toBe(true);
    expect(a.counts.train?.images).toBe(3);
    expect(datasetFacts(yaml).versionId).toBe(a.versionId);
    await appendFile(join(tmp, 'd1', 'labels', 'test', a.testImages[0]!.replace(/\.jpg$/, '.txt')), '0 0.5 0.5 0.1 0.1\n');
    expect(datasetFacts(yaml).versionId).not.toBe(a.versionId);
  });

  it('writes atomically, reads back, and names the bad field of a broken card', async () => {
    const yaml = await metalTagsSubset(join(tmp, 'd2'), { limit: { train: 2, val: 1, test: 1 } });
    const card = await buildModelCard({
      name: 'm',
      version: '0.1.0',
      classes: ['scratch'],
      imgsz: 160,
      dir: shippedDir,
      onnx: join(shippedDir, 'model.onnx'),
      trainer: {
        name: 'ultralytics',
        version: '8.3.253',
        script: 'cloud/training/train.py',
        backend: 'local',
        base: 'yolov8n.yaml',
        hyperparameters: { epochs: 1 },
      },
      dataset: datasetFacts(yaml),
      test: { map50: 0.5, map50_95: 0.25, evaluator: 'loupe eval', split: 'test', images: 1, instances: 2 },
      val: null,
      command: shellCommand(['loupe', 'train', '--data', "it's here.yaml", '--out', 'o']),
    });
    expect(card.command).toBe(`loupe train --data 'it'\\''s here.yaml' --out o`);
    const path = join(tmp, 'card.json');
    await writeModelCard(path, card);
    expect(await readModelCard(path)).toEqual(card);

    const broken = JSON.parse(readFileSync(path, 'utf8'));
    delete broken.dataset.versionId;
    await writeFile(path, JSON.stringify(broken));
    await expect(readModelCard(path)).rejects.toThrow(`${path}: model card field dataset.versionId:`);
    broken.dataset.versionId = 'v';
    broken.metrics.test.map50 = 1.5;
    await writeFile(path, JSON.stringify(broken));
    await expect(readModelCard(path)).rejects.toThrow(`${path}: model card field metrics.test.map50:`);
    await writeFile(path, '{"name": ');
    await expect(readModelCard(path)).rejects.toMatchObject({ code: 'CARD_BAD' });
  });
});
