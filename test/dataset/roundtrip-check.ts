import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'vitest';
import { importCoco, writeCocoDataset } from '../../cloud/dataset/coco.js';
import { datasetVersion } from '../../cloud/dataset/version.js';
import { readYoloLabelled } from '../../cloud/dataset/yolo-labelled.js';
import { writeYoloDataset } from '../../cloud/dataset/yolo-write.js';
import { tempDir } from './synth.js';

function labelTexts(root: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const split of ['train', 'val', 'test']) {
    for (const f of readdirSync(join(root, 'labels', split))) out[`${split}/${f}`] = readFileSync(join(root, 'labels', split, f), 'utf8');
  }
  return out;
}

/** YOLO → COCO → YOLO gives back the same ids, splits, label files and data set version (`version`). */
export async function roundTrip(yaml: string, version: string): Promise<void> {
  const yolo = await readYoloLabelled(yaml);
  expect(datasetVersion(yolo.names, yolo.images)).toBe(version);
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
  expect(written.version).toBe(version);
  expect(labelTexts(written.root)).toEqual(labelTexts(join(yaml, '..')));
}
