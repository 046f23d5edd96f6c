import { copyFile, mkdir, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { basename, extname, join } from 'node:path';
import { stringify as toYaml } from 'yaml';
import { readYoloDataset } from '../../cloud/dataset/yolo-read.js';
import type { SplitName } from '../../cloud/dataset/types.js';
import { yoloDataset } from '../helpers/datasets.js';

export interface SubsetOptions {
  /** Keep at most this many images per split (in file-name order; 0 = an empty split folder). */
  limit?: Partial<Record<SplitName, number>>;
  /** Write empty label files (the "no labels" error case). */
  dropBoxes?: boolean;
  /** Class names for data.yaml (default: the source's). */
  names?: string[];
}

/**
 * A small copy of the metal-tags YOLO export (loupe's split, from helper "datasets"'s
 * yoloDataset) in `dir`, for short CPU runs and error cases. Images are copied, never linked:
 * ultralytics writes .cache files beside the labels. No manifest.json is written, so the copy is
 * described by its own content (it is not the exported data set version).
 */
export async function metalTagsSubset(dir: string, opts: SubsetOptions = {}): Promise<string> {
  const src = readYoloDataset(await yoloDataset('metal-tags'));
  for (const split of ['train', 'val', 'test'] as const) {
    await mkdir(join(dir, 'images', split), { recursive: true });
    await mkdir(join(dir, 'labels', split), { recursive: true });
    const items = [...(src.splits[split] ?? [])]
      .sort((a, b) => (a.imagePath < b.imagePath ? -1 : 1))
      .slice(0, opts.limit?.[split] ?? Infinity);
    for (const item of items) {
      const file = basename(item.imagePath);
      await copyFile(item.imagePath, join(dir, 'images', split, file));
      const label = join(dir, 'labels', split, basename(file, extname(file)) + '.txt');
      if (opts.dropBoxes) await writeFile(label, '');
      else if (existsSync(item.labelPath)) await copyFile(item.labelPath, label);
    }
  }
  const yamlPath = join(dir, 'data.yaml');
  await writeFile(
    yamlPath,
    toYaml({ path: dir, train: 'images/train', val: 'images/val', test: 'images/test', names: opts.names ?? src.names }),
  );
  return yamlPath;
}
