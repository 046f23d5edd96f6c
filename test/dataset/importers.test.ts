import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { importFeatureStore } from '../../cloud/dataset/featurestore.js';
import { parseLabelsCsv } from '../../contracts/labels-csv.js';
import { datasetDir, requireDataset } from '../../lib/paths.js';
import { importVoc } from '../../cloud/dataset/voc.js';
import { splitOf } from '../../cloud/dataset/split.js';
import { readYoloDataset } from '../../cloud/dataset/yolo-read.js';
import type { ImportedDataset } from '../../cloud/dataset/types.js';
import type { DatasetManifest } from '../../cloud/dataset/yolo-write.js';
import { yoloDataset } from '../helpers/datasets.js';

const metal = datasetDir('metal-tags');
const neu = datasetDir('neu-det');

describe('feature-store CSV importer on ../shared/datasets/metal-tags', () => {
  let ds: ImportedDataset;
  beforeAll(async () => {
    ds = await importFeatureStore(join(metal, 'labels.csv'), { imagesDir: metal });
  });

  it('reads all 235 records: 228 labelled bad + 7 good images, 482 boxes, class 0 = scratch', () => {
    expect(ds.report.records).toBe(235);
    expect(ds.images).toHaveLength(235);
    expect(ds.images.filter((i) => i.id.startsWith('bad/'))).toHaveLength(228);
    expect(ds.images.filter((i) => i.id.startsWith('good/'))).toHaveLength(7);
    expect(ds.report.boxes).toBe(482);
    expect(ds.images.reduce((n, i) => n + i.boxes.length, 0)).toBe(482);
    expect(ds.names).toEqual(['scratch']);
    expect(ds.report.rejected).toBe(0);
  });

  it('reports the 4 unlabelled bad/ images and leaves them out', () => {
    expect(ds.report.unlabelled).toEqual([
      'bad/image-2020-04-22-10-53-33-04-cropped-left-bottom.jpg',
      'bad/image-2020-04-22-11-02-50-45-cropped-left-bottom.jpg',
      'bad/image-2020-04-22-11-04-19-06-cropped-left-top.jpg',
      'bad/image-2020-04-22-11-06-38-66-cropped-left-bottom.jpg',
    ]);
    const ids = new Set(ds.images.map((i) => i.id));
    for (const u of ds.report.unlabelled) expect(ids.has(u)).toBe(false);
  });

  it('turns left/top/width/height into corner boxes on the real image size', () => {
    const img = ds.images.find((i) => i.id === 'bad/image-2020-04-22-11-07-29-26-cropped-left-top.jpg');
    expect(img).toBeDefined();
    expect(img?.width).toBe(450);
    expect(img?.height).toBe(300);
    expect(img?.imagePath).toBe(join(metal, 'bad', 'image-2020-04-22-11-07-29-26-cropped-left-top.jpg'));
    // first CSV row: {'class_id': 0, 'top': 123, 'left': 81, 'height': 97, 'width': 82}, ...
    expect(img?.boxes[0]).toEqual({ cls: 0, x1: 81, y1: 123, x2: 163, y2: 220 });
    expect(img?.boxes).toHaveLength(3);
  });

  it('splits exactly as the shipped model was trained: train 163 / val 37 / test 35', () => {
    const counts = { train: 0, val: 0, test: 0 };
    for (const i of ds.images) counts[splitOf(i.id)]++;
    expect(counts).toEqual({ train: 163, val: 37, test: 35 });
  });

  it('parses every annotations cell as the Python literal it is', () => {
    const rows = parseLabelsCsv(join(metal, 'labels.csv')).map((r) => r.record);
    expect(rows).toHaveLength(235);
    expect(rows.every((r) => r.status === 'APPROVED' && r.image_width === 450 && r.image_height === 300)).toBe(true);
    expect(rows[0]?.annotations[0]).toEqual({ class_id: 0, top: 123, left: 81, height: 97, width: 82 });
  });
});

describe('Pascal VOC importer on ../shared/datasets/neu-det', () => {
  let ds: ImportedDataset;
  beforeAll(async () => {
    ds = await importVoc(requireDataset('neu-det'));
  });

  it('reads all 1800 images (1770 + 30 validation) with the six classes in name order', () => {
    expect(ds.images).toHaveLength(1800);
    expect(ds.report.records).toBe(1800);
    expect(ds.images.filter((i) => i.id.startsWith('IMAGES/'))).toHaveLength(1770);
    expect(ds.images.filter((i) => i.id.startsWith('Validation_Images/'))).toHaveLength(30);
    expect(ds.names).toEqual(['crazing', 'inclusion', 'patches', 'pitted_surface', 'rolled-in_scale', 'scratches']);
    expect(ds.report.unlabelled).toEqual([]);
    expect(ds.images.every((i) => i.width === 200 && i.height === 200)).toBe(true);
  });

  it('skips the 81 difficult objects by default (4189 objects, 4108 kept, 3 exact duplicates dropped as ultralytics does) and keeps them on request', async () => {
    expect(ds.report.skippedDifficult).toBe(81);
    expect(ds.report.duplicates).toBe(3);
    expect(ds.report.boxes).toBe(4105);
    const all = await importVoc(neu, { includeDifficult: true });
    expect(all.report.skippedDifficult).toBe(0);
    expect(all.report.boxes).toBe(4186);
  });

  it('keeps the corners as written and ids relative to the import root', () => {
    const img = ds.images.find((i) => i.id === 'IMAGES/crazing_1.jpg');
    expect(img?.boxes).toEqual([{ cls: 0, x1: 2, y1: 2, x2: 193, y2: 194 }]);
    // <filename> in some XML files lacks the extension: the image is found by the XML's stem
    expect(ds.images.find((i) => i.id === 'IMAGES/patches_104.jpg')?.boxes.length).toBeGreaterThan(0);
  });
});

describe('yoloDataset test helper', () => {
  it('gives YOLO exports of both shared data sets that ultralytics-style readers accept', async () => {
    for (const [name, expected] of [
      ['metal-tags', { train: 163, val: 37, test: 35, names: ['scratch'], boxes: 482 }],
      [
        'neu-det',
        {
          train: 1262,
          val: 281,
          test: 257,
          names: ['crazing', 'inclusion', 'patches', 'pitted_surface', 'rolled-in_scale', 'scratches'],
          boxes: 4105,
        },
      ],
    ] as const) {
      const yaml = await yoloDataset(name);
      const ds = readYoloDataset(yaml);
      expect(ds.names).toEqual(expected.names);
      expect(ds.splits.train).toHaveLength(expected.train);
      expect(ds.splits.val).toHaveLength(expected.val);
      expect(ds.splits.test).toHaveLength(expected.test);
      const boxes = Object.values(ds.splits).reduce((n, items) => n + items.reduce((m, it) => m + it.labels.length, 0), 0);
      expect(boxes).toBe(expected.boxes);
      const manifest = JSON.parse(readFileSync(join(ds.root, 'manifest.json'), 'utf8')) as DatasetManifest;
      expect(manifest.counts).toEqual({ train: expected.train, val: expected.val, test: expected.test });
      expect(readFileSync(yaml, 'utf8')).toContain(`path: ${ds.root}`);
      expect(await yoloDataset(name)).toBe(yaml); // cached
    }
  });
});
