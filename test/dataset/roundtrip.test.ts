import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { projectRoot, datasetDir } from '../../lib/paths.js';
import {
  formatGroundTruthLine,
  groundTruthRecordsFor,
  importGroundTruth,
  parseGroundTruthManifest,
  writeGroundTruthManifest,
} from '../../cloud/dataset/groundtruth-manifest.js';
import { datasetVersion } from '../../cloud/dataset/version.js';
import { readYoloLabelled } from '../../cloud/dataset/yolo-labelled.js';
import type { ImportedDataset } from '../../cloud/dataset/types.js';
import type { DatasetManifest } from '../../cloud/dataset/yolo-write.js';
import { importShared, yoloDataset } from '../helpers/datasets.js';
import { tempDir } from './synth.js';
import { roundTrip } from './roundtrip-check.js';

const fixtures = join(projectRoot, 'test', 'fixtures', 'groundtruth');

const manifestVersion = (yaml: string) =>
  (JSON.parse(readFileSync(join(yaml, '..', 'manifest.json'), 'utf8')) as { version: string }).version;

/**
 * metal-tags (235 images, one class) and a copy of every 30th image of the neu-det export (six
 * classes, 60 images); roundtrip.full.test.ts runs the same check on all 1800 neu-det images.
 */
describe('YOLO → COCO → YOLO round trip (metal-tags and neu-det)', () => {
  it('metal-tags: same ids, splits, label files and version', async () => {
    const yaml = await yoloDataset('metal-tags');
    await roundTrip(yaml, manifestVersion(yaml));
  });

  it('neu-det, every 30th image of each split: same ids, splits, label files and version', async () => {
    const src = join(await yoloDataset('neu-det'), '..');
    const root = await tempDir();
    // The export's manifest.json carries the image ids (and so the splits): the copy keeps its entries.
    const manifest = JSON.parse(readFileSync(join(src, 'manifest.json'), 'utf8')) as DatasetManifest;
    const kept = new Set<string>();
    for (const split of ['train', 'val', 'test']) {
      mkdirSync(join(root, 'images', split), { recursive: true });
      mkdirSync(join(root, 'labels', split), { recursive: true });
      const files = readdirSync(join(src, 'images', split))
        .sort()
        .filter((_, i) => i % 30 === 0);
      for (const f of files) {
        kept.add(`${split}/${f}`);
        copyFileSync(join(src, 'images', split, f), join(root, 'images', split, f));
        const label = f.replace(/\.[^.]+$/, '.txt');
        if (existsSync(join(src, 'labels', split, label)))
          copyFileSync(join(src, 'labels', split, label), join(root, 'labels', split, label));
      }
    }
    const images = manifest.images.filter((e) => kept.has(`${e.split}/${e.file}`));
    const counts = { train: 0, val: 0, test: 0 };
    for (const e of images) counts[e.split]++;
    writeFileSync(join(root, 'manifest.json'), JSON.stringify({ ...manifest, images, counts }));
    const yaml = join(root, 'data.yaml');
    writeFileSync(yaml, readFileSync(join(src, 'data.yaml'), 'utf8').replace(/^path: .*$/m, `path: ${root}`));
    const subset = await readYoloLabelled(yaml);
    expect(subset.images.length).toBeGreaterThanOrEqual(55);
    expect(new Set(subset.images.flatMap((i) => i.boxes.map((b) => b.cls))).size).toBe(6);
    await roundTrip(yaml, datasetVersion(subset.names, subset.images));
  });
});

describe('Ground Truth output manifests', () => {
  it('parses the documented bounding-box job output', () => {
    const p = parseGroundTruthManifest(readFileSync(join(fixtures, 'bounding-box.manifest'), 'utf8'));
    expect(p.attribute).toBe('bounding-box');
    expect(p.failures).toEqual([]);
    const r = p.records[0]!;
    expect(r.imageSize).toEqual({ width: 500, height: 400, depth: 3 });
    expect(r.annotations).toEqual([
      { class_id: 0, left: 111, top: 134, width: 61, height: 128, confidence: 0.8 },
      { class_id: 5, left: 161, top: 250, width: 30, height: 30, confidence: 0.9 },
      { class_id: 5, left: 20, top: 20, width: 30, height: 30, confidence: 0.9 },
    ]);
    expect(r.classMap).toEqual({ 0: 'dog', 5: 'bone' });
    expect(r).toMatchObject({ jobName: 'identify-dogs-and-toys', humanAnnotated: true, creationDate: '2018-10-18T22:18:13.527256' });
  });

  it('asks which attribute to read after an adjustment job, and reads the adjusted boxes when told', () => {
    const text = readFileSync(join(fixtures, 'adjustment.manifest'), 'utf8');
    expect(() => parseGroundTruthManifest(text, { file: 'adjustment.manifest' })).toThrow(
      /adjustment\.manifest: several bounding-box label attributes \(adjusted-bounding-box, bounding-box\)/,
    );
    const p = parseGroundTruthManifest(text, { attribute: 'adjusted-bounding-box' });
    const r = p.records[0]!;
    expect(r.adjustmentStatus).toBe('adjusted');
    expect(r.jobName).toBe('adjust-bounding-boxes-on-dogs-and-toys');
    expect(r.annotations[0]).toMatchObject({ left: 110, top: 135 });
    expect(r.annotations[2]).toMatchObject({ left: 10, top: 10 });
    // the original job's attribute is kept untouched for writing back
    expect(Object.keys(r.extra ?? {})).toEqual(['bounding-box', 'bounding-box-metadata']);
  });

  it('carries verification results found on the line', () => {
    const p = parseGroundTruthManifest(readFileSync(join(fixtures, 'verification.manifest'), 'utf8'));
    expect(p.attribute).toBe('bounding-box');
    expect(p.records[0]!.verifications).toEqual([
      {
        attribute: 'verify-bounding-box',
        value: '1',
        className: 'bad',
        confidence: 0.93,
        jobName: 'verify-bounding-boxes',
        creationDate: '2018-11-20T22:18:13.527256',
        workerFeedback: ['The bounding box on the bird is too wide on the right side.', 'The bird on the upper right is not labeled.'],
      },
    ]);
  });

  it('write → read gives back the same records, line for line (documented samples)', async () => {
    const dir = await tempDir();
    for (const [f, attribute] of [
      ['bounding-box.manifest', undefined],
      ['adjustment.manifest', 'adjusted-bounding-box'],
      ['verification.manifest', undefined],
    ] as const) {
      const text = readFileSync(join(fixtures, f), 'utf8');
      const parsed = parseGroundTruthManifest(text, { attribute });
      const out = join(dir, f);
      await writeGroundTruthManifest(out, parsed.records);
      const again = parseGroundTruthManifest(readFileSync(out, 'utf8'), { attribute });
      expect(again.records).toEqual(parsed.records);
      // and as JSON, the written line holds exactly the keys and values of the original
      expect(JSON.parse(readFileSync(out, 'utf8'))).toEqual(JSON.parse(text));
      expect(formatGroundTruthLine(parsed.records[0]!)).not.toContain('\n');
    }
  });

  it('reports lines whose task failed, without treating them as labels', () => {
    const ok = readFileSync(join(fixtures, 'bounding-box.manifest'), 'utf8').trim();
    const failed = JSON.stringify({
      'source-ref': 's3://b/x/a/late.jpg',
      'bounding-box-metadata': { 'failure-reason': 'ClientError: task expired' },
    });
    const p = parseGroundTruthManifest(`${ok}\n${failed}\n`);
    expect(p.records).toHaveLength(1);
    expect(p.failures).toEqual([{ line: 2, sourceRef: 's3://b/x/a/late.jpg', reason: 'ClientError: task expired' }]);
  });

  describe('on metal-tags: feature store → manifest → import', () => {
    let fs: ImportedDataset;
    beforeAll(async () => {
      fs = await importShared('metal-tags');
    });

    it('imports the manifest it wrote to the same data set version', async () => {
      const dir = await tempDir();
      const records = groundTruthRecordsFor(fs.names, fs.images, {
        jobName: 'labeling-job/loupe-test',
        creationDate: '2024-05-01T10:00:00.000000',
        sourceRefOf: (id) => `s3://loupe-bucket/incoming/${id}`,
      });
      const manifest = join(dir, 'output.manifest');
      await writeGroundTruthManifest(manifest, records);
      expect(readFileSync(manifest, 'utf8').trim().split('\n')).toHaveLength(235);
      const gt = await importGroundTruth(manifest, { imagesDir: datasetDir('metal-tags') });
      expect(gt.names).toEqual(['scratch']);
      expect(gt.report.images).toBe(235);
      expect(gt.report.boxes).toBe(482);
      expect(datasetVersion(gt.names, gt.images)).toBe(datasetVersion(fs.names, fs.images));
    });
  });
});
