import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { isLoupeError } from '../../lib/errors.js';
import { cacheDir, requireDataset } from '../../lib/paths.js';
import { importFeatureStore } from '../../cloud/dataset/featurestore.js';
import { importVoc } from '../../cloud/dataset/voc.js';
import type { ImportedDataset } from '../../cloud/dataset/types.js';
import { YOLO_EXPORTER_VERSION, writeYoloDataset } from '../../cloud/dataset/yolo-write.js';

export type SharedDatasetName = 'metal-tags' | 'neu-det';

/** Import one of ../shared/datasets with loupe's importers (no cache). */
export function importShared(name: SharedDatasetName): Promise<ImportedDataset> {
  const dir = requireDataset(name);
  return name === 'metal-tags' ? importFeatureStore(join(dir, 'labels.csv'), { imagesDir: dir }) : importVoc(dir);
}

/** Where yoloDataset keeps its export (exists only once built). */
export function yoloDatasetDir(name: SharedDatasetName): string {
  return join(cacheDir(), 'test-datasets', `${name}-${YOLO_EXPORTER_VERSION}`);
}

/**
 * The data.yaml of a YOLO export of a shared data set (metal-tags: feature-store labels, 235
 * images, split train 163 / val 37 / test 35; neu-det: Pascal VOC, 1800 images, difficult objects
 * skipped), built once by loupe's own importer and writer and cached under
 * ~/.cache/loupe/test-datasets/<name>-<exporter version>. Safe when several test processes ask at
 * once: each builds in its own temp folder and the first rename wins. Use it read-only, and point
 * ultralytics at it rather than at ../shared (ultralytics writes .cache files beside labels).
 */
export async function yoloDataset(name: SharedDatasetName): Promise<string> {
  const root = yoloDatasetDir(name);
  const yaml = join(root, 'data.yaml');
  if (existsSync(yaml)) return yaml;
  const ds = await importShared(name);
  try {
    return (await writeYoloDataset(ds.names, ds.images, root)).yamlPath;
  } catch (e) {
    if (isLoupeError(e) && e.code === 'OUT_EXISTS' && existsSync(yaml)) return yaml; // another process finished first
    throw e;
  }
}
