import { existsSync, readFileSync } from 'node:fs';
import { basename, join, relative, sep } from 'node:path';
import type { Logger } from 'pino';
import { Progress } from '../../lib/progress.js';
import { mapLimit, readImageInfo } from './image-info.js';
import { yoloToBox } from '../../contracts/box.js';
import { checkBox, checkClass, dropDuplicateBoxes } from './label-check.js';
import { emptyReport, SPLITS, type ImportedDataset, type LabelledImage, type SplitName } from './types.js';
import { readYoloDataset } from './yolo-read.js';
import type { DatasetManifest } from './yolo-write.js';

export interface YoloLabelledImage extends LabelledImage {
  /** The split the YOLO folder put it in (may differ from splitOf(id) for folders loupe did not write). */
  split: SplitName;
}

/**
 * Read a YOLO data set back into labelled images in pixels. Ids come from loupe's manifest.json
 * when the folder has one (so a round trip keeps ids and splits), else they are image paths
 * relative to the data set root. Boxes are checked like any import (class known, inside the image).
 */
export async function readYoloLabelled(
  yamlPath: string,
  opts: { log?: Logger } = {},
): Promise<ImportedDataset & { images: YoloLabelledImage[] }> {
  const ds = readYoloDataset(yamlPath);
  const manifestPath = join(ds.root, 'manifest.json');
  const idOfFile = new Map<string, string>();
  if (existsSync(manifestPath)) {
    const m = JSON.parse(readFileSync(manifestPath, 'utf8')) as DatasetManifest;
    for (const e of m.images) idOfFile.set(`${e.split}/${e.file}`, e.id);
  }
  const items = SPLITS.flatMap((split) => (ds.splits[split] ?? []).map((it) => ({ ...it, split })));
  const report = emptyReport('yolo', ds.yamlPath);
  report.records = items.length;
  const progress = new Progress('read yolo', items.length, opts.log);
  let done = 0;
  const images = await mapLimit(items, 4, async (it): Promise<YoloLabelledImage> => {
    const size = await readImageInfo(it.imagePath, { file: it.labelPath, record: 'image' });
    const boxes = it.labels.map((l, i) => {
      const src = { file: it.labelPath, record: `line ${i + 1}` };
      const cls = checkClass(l.cls, ds.names, src);
      return checkBox({ ...yoloToBox(l, size.width, size.height), cls }, size, src, () => report.clipped++);
    });
    progress.update(++done);
    const id = idOfFile.get(`${it.split}/${basename(it.imagePath)}`) ?? relative(ds.root, it.imagePath).split(sep).join('/');
    return {
      id,
      imagePath: it.imagePath,
      width: size.width,
      height: size.height,
      boxes: dropDuplicateBoxes(boxes, size, () => report.duplicates++),
      split: it.split,
    };
  });
  progress.finish();
  report.images = images.length;
  report.boxes = images.reduce((n, i) => n + i.boxes.length, 0);
  return { names: ds.names, images, report };
}
