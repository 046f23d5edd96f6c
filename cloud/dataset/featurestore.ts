import { existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, extname, join, relative, resolve, sep } from 'node:path';
import type { Logger } from 'pino';
import { LoupeError } from '../../lib/errors.js';
import { Progress } from '../../lib/progress.js';
import { mapLimit, readImageInfo } from './image-info.js';
import { checkBox, checkClass, dropDuplicateBoxes, labelError, type LabelSource } from './label-check.js';
import { idFromSourceRef, localPathFor } from './source-ref.js';
import { parseLabelsCsv } from '../../contracts/labels-csv.js';
import { emptyReport, type ImportedDataset, type LabelledImage } from './types.js';
import { gtToBox, type Box } from '../../contracts/box.js';
import { IMAGE_EXTENSIONS } from './yolo-read.js';

/** The reference solution's label layout has one class: 0 = scratch. */
export const FEATURE_STORE_DEFAULT_NAMES = ['scratch'];

export interface FeatureStoreImportOptions {
  /** Folder holding `<folder>/<name>.jpg` as named by each source_ref's last two parts; default: the CSV's folder. */
  imagesDir?: string;
  /** Class names by class_id; default FEATURE_STORE_DEFAULT_NAMES. */
  names?: string[];
  log?: Logger;
}

function listImages(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory() && !e.name.startsWith('.')) walk(join(d, e.name));
      else if (e.isFile() && IMAGE_EXTENSIONS.has(extname(e.name).toLowerCase())) out.push(join(d, e.name));
    }
  };
  walk(dir);
  return out;
}

/**
 * Import the reference solution's feature-store export (labels.csv): per image the latest
 * APPROVED record by event_time wins; images in the folder without any record are reported and
 * left out. Ids are the source_ref's last two path parts (`bad/x.jpg`).
 */
export async function importFeatureStore(csvPath: string, opts: FeatureStoreImportOptions = {}): Promise<ImportedDataset> {
  const abs = resolve(csvPath);
  if (!existsSync(abs) || !statSync(abs).isFile()) throw new LoupeError('DATA_MISSING', 'feature-store CSV not found', { input: abs });
  const imagesDir = resolve(opts.imagesDir ?? dirname(abs));
  if (!existsSync(imagesDir)) throw new LoupeError('DATA_MISSING', 'images folder not found', { input: imagesDir });
  const names = opts.names ?? FEATURE_STORE_DEFAULT_NAMES;
  const records = parseLabelsCsv(abs).map(({ row, record }) => ({ row, id: idFromSourceRef(record.source_ref), ...record }));
  const report = emptyReport('featurestore', abs);
  report.records = records.length;
  const latest = new Map<string, (typeof records)[number]>();
  for (const r of records) {
    if (r.status !== 'APPROVED') {
      report.rejected++;
      continue;
    }
    const prev = latest.get(r.id);
    // Ties on event_time: the later row wins (append order).
    if (!prev || r.event_time >= prev.event_time) latest.set(r.id, r);
    if (prev) report.superseded++;
  }
  const chosen = [...latest.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  const progress = new Progress('featurestore import', chosen.length, opts.log);
  let done = 0;
  const images = await mapLimit(chosen, 4, async (r): Promise<LabelledImage> => {
    const src: LabelSource = { file: abs, record: `row ${r.row} (${r.id})` };
    const imagePath = localPathFor(imagesDir, r.id);
    const size = await readImageInfo(imagePath, src);
    if (size.width !== r.image_width || size.height !== r.image_height) {
      throw labelError(
        'LABEL_SIZE_MISMATCH',
        src,
        `image_width x image_height say ${r.image_width}x${r.image_height} but ${imagePath} is ${size.width}x${size.height}`,
      );
    }
    const boxes: Box[] = r.annotations.map((a, i) => {
      const bsrc = { ...src, record: `${src.record} box ${i + 1}` };
      const cls = checkClass(a.class_id, names, bsrc);
      return checkBox({ ...gtToBox(a), cls }, size, bsrc, () => report.clipped++);
    });
    progress.update(++done);
    return {
      id: r.id,
      imagePath,
      width: size.width,
      height: size.height,
      boxes: dropDuplicateBoxes(boxes, size, () => report.duplicates++),
    };
  });
  progress.finish();
  const labelled = new Set(images.map((i) => i.id));
  report.unlabelled = listImages(imagesDir)
    .map((p) => relative(imagesDir, p).split(sep).join('/'))
    .filter((id) => !labelled.has(id) && id.split('/').length === 2)
    .sort();
  report.images = images.length;
  report.boxes = images.reduce((n, i) => n + i.boxes.length, 0);
  return { names, images, report };
}
