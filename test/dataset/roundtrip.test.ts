import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { projectRoot, datasetDir } from '../../lib/paths.js';
import { importCoco, writeCocoDataset } from '../../cloud/dataset/coco.js';
import {
  formatGroundTruthLine,
  groundTruthRecordsFor,
  importGroundTruth,
  parseGroundTruthManifest,
  writeGroundTruthManifest,
} from '../../cloud/dataset/groundtruth-manifest.js';
import { datasetVersion } from '../../cloud/dataset/version.js';
import { readYoloLabelled } from '../../cloud/dataset/yolo-labelled.js';
import { writeYoloDataset } from '../../cloud/dataset/yolo-write.js';
import type { ImportedDataset } from '../../cloud/dataset/types.js';
import { importShared, yoloDataset } from '../helpers/datasets.js';
import { tempDir } from './synth.js';

const fixtures = join(projectRoot, 'test', 'fixtures', 'groundtruth');

function labelTexts(root: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const split of ['train', 'val', 'test']) {
    for (const f of readdirSync(join(root, 'labels', split))) out[`${split}/${f}`] = readFileSync(join(root, 'labels', split, f), 'utf8');
  }
  return out;
}

describe('YOLO → COCO → YOLO round trip (metal-tags and neu-det)', () => {
  it.each(['metal-tags', 'neu-det'] as const)('%s: same ids, splits, label files and version', async (name) => {
    const yaml = await yoloDataset(name);
    const yolo = await readYoloLabelled(yaml);
    const manifest = JSON.parse(readFileSync(join(yolo.images[0]!.imagePath, '..', '..', '..', 'manifest.json'), 'utf8')) as {
      version: string;
    };
    expect(datasetVersion(yolo.names, yolo.images)).toBe(manifest.version);
    const dir = await tempDir();
    const coco = await writeCocoDataset(yolo.names, yolo.images, join(dir, 'coco'));
    const doc = JSON.parse(readFileSync(coco.jsonPath, 'utf8')) as {
      images: unknown[];
      annotations: unknown[];
      categories: { id: number; name: string }[];
    };
    expect(doc.images).toHaveLength(yolo.images.length);
    expect(doc.annotations).toHaveLength(yolo.report.boxes);
    expect(doc.categories.map((c) => c.name)).toEqual(yolo.names);
    const back = await importCoco(coco.jsonPath);
    expect(back.names).toEqual(yolo.names);
    const written = await writeYoloDataset(back.names, back.images, join(dir, 'yolo'));
    expect(written.version).toBe(manifest.version);
    expect(labelTexts(written.root)).toEqual(labelTexts(join(yaml, '..')));
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
