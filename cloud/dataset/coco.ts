import { existsSync, readFileSync, statSync } from 'node:fs';
import { copyFile, link, mkdir, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { LoupeError } from '../../lib/errors.js';
import { fsyncDir } from '../../lib/fsutil.js';
import { Progress } from '../../lib/progress.js';
import { mapLimit, readImageInfo } from './image-info.js';
import { checkBox, checkClass, dropDuplicateBoxes, labelError, type LabelSource } from './label-check.js';
import { emptyReport, type ImportedDataset, type LabelledImage } from './types.js';
import { boxToCoco, cocoToBox, type Box } from '../../contracts/box.js';
import { datasetVersion } from './version.js';
import { assertOutputFree, checkIds, commitDir } from './yolo-write.js';

/** COCO "instances" JSON, the fields loupe reads and writes. */
export interface CocoImage {
  id: number;
  file_name: string;
  width: number;
  height: number;
}
export interface CocoAnnotation {
  id: number;
  image_id: number;
  category_id: number;
  /** [x, y, width, height] in pixels, top-left origin. */
  bbox: [number, number, number, number];
  area: number;
  iscrowd: 0 | 1;
}
export interface CocoCategory {
  id: number;
  name: string;
  supercategory?: string;
}
export interface CocoJson {
  info?: Record<string, unknown>;
  licenses?: unknown[];
  images: CocoImage[];
  annotations: CocoAnnotation[];
  categories: CocoCategory[];
}

export interface CocoImportOptions {
  /** Folder that `file_name` is relative to; default `<json folder>/images` when present, else the JSON's folder. */
  imagesDir?: string;
  /** Class names in index order; categories are matched by name. Default: categories sorted by id, made contiguous. */
  names?: string[];
  log?: Logger;
}

function fail(file: string, why: string): never {
  throw new LoupeError('LABEL_BAD_COCO', why, { input: file });
}

/**
 * Import COCO instances JSON. Ids are `file_name` (a relative path); category ids may be any
 * integers and become contiguous class indexes in id order. `iscrowd` annotations are skipped as
 * ultralytics' COCO converter skips them; images without annotations are kept as backgrounds.
 */
export async function importCoco(jsonPath: string, opts: CocoImportOptions = {}): Promise<ImportedDataset> {
  const abs = resolve(jsonPath);
  if (!existsSync(abs) || !statSync(abs).isFile()) throw new LoupeError('DATA_MISSING', 'COCO JSON not found', { input: abs });
  let doc: Partial<CocoJson>;
  try {
    doc = JSON.parse(readFileSync(abs, 'utf8')) as Partial<CocoJson>;
  } catch (e) {
    fail(abs, `not valid JSON (${(e as Error).message})`);
  }
  if (!Array.isArray(doc.images) || !Array.isArray(doc.annotations) || !Array.isArray(doc.categories))
    fail(abs, 'expected "images", "annotations" and "categories" arrays (COCO instances format)');
  const defaultImages = join(dirname(abs), 'images');
  const imagesDir = resolve(opts.imagesDir ?? (existsSync(defaultImages) ? defaultImages : dirname(abs)));
  const cats = [...doc.categories].sort((a, b) => a.id - b.id);
  const names = opts.names ?? cats.map((c) => String(c.name));
  const catToCls = new Map<number, { cls: number; name: string }>();
  for (const c of cats) {
    if (!Number.isInteger(c.id)) fail(abs, `category ${JSON.stringify(c)} has no integer id`);
    if (catToCls.has(c.id)) fail(abs, `category id ${c.id} occurs twice`);
    catToCls.set(c.id, { cls: names.indexOf(String(c.name)), name: String(c.name) });
  }
  const report = emptyReport('coco', abs);
  report.records = doc.images.length;
  const byImage = new Map<number, CocoAnnotation[]>();
  const imageIds = new Set<number>();
  for (const im of doc.images) {
    if (!Number.isInteger(im.id) || typeof im.file_name !== 'string')
      fail(abs, `image ${JSON.stringify(im).slice(0, 120)} needs an integer id and a file_name`);
    if (imageIds.has(im.id)) fail(abs, `image id ${im.id} occurs twice`);
    imageIds.add(im.id);
  }
  for (const a of doc.annotations) {
    if (!imageIds.has(a.image_id))
      throw labelError(
        'LABEL_BAD_COCO',
        { file: abs, record: `annotation id ${a.id}` },
        `refers to image id ${a.image_id}, which is not in "images"`,
      );
    if (a.iscrowd) {
      report.skippedCrowd++;
      continue;
    }
    byImage.set(a.image_id, [...(byImage.get(a.image_id) ?? []), a]);
  }
  const progress = new Progress('coco import', doc.images.length, opts.log);
  let done = 0;
  const images = await mapLimit(doc.images, 4, async (im): Promise<LabelledImage> => {
    const id = im.file_name.replace(/\\/g, '/').replace(/^\.\//, '');
    const src: LabelSource = { file: abs, record: `image id ${im.id} (${id})` };
    const imagePath = join(imagesDir, ...id.split('/'));
    const size = await readImageInfo(imagePath, src);
    if ((im.width !== undefined && im.width !== size.width) || (im.height !== undefined && im.height !== size.height)) {
      throw labelError(
        'LABEL_SIZE_MISMATCH',
        src,
        `width x height say ${im.width}x${im.height} but ${imagePath} is ${size.width}x${size.height}`,
      );
    }
    const boxes: Box[] = (byImage.get(im.id) ?? []).map((a) => {
      const asrc: LabelSource = { file: abs, record: `annotation id ${a.id} (${id})` };
      const cat = catToCls.get(a.category_id);
      const cls = checkClass(
        cat ? cat.cls : -1,
        names,
        asrc,
        cat ? `${a.category_id} (${JSON.stringify(cat.name)})` : `${a.category_id} (not in "categories")`,
      );
      if (!Array.isArray(a.bbox) || a.bbox.length !== 4)
        throw labelError('LABEL_BAD_BOX', asrc, `bbox ${JSON.stringify(a.bbox)} is not [x, y, width, height]`);
      return checkBox(cocoToBox(a.bbox, cls), size, asrc, () => report.clipped++);
    });
    progress.update(++done);
    return { id, imagePath, width: size.width, height: size.height, boxes: dropDuplicateBoxes(boxes, size, () => report.duplicates++) };
  });
  progress.finish();
  report.images = images.length;
  report.boxes = images.reduce((n, i) => n + i.boxes.length, 0);
  return { names, images, report };
}

/** COCO instances for labelled images: file_name = image id, category id = class index + 1 (COCO ids start at 1). */
export function cocoFromDataset(names: readonly string[], images: readonly LabelledImage[]): CocoJson {
  const sorted = [...images].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  const annotations: CocoAnnotation[] = [];
  const cocoImages = sorted.map((img, i) => {
    for (const b of img.boxes) {
      const bbox = boxToCoco(b);
      annotations.push({ id: annotations.length + 1, image_id: i + 1, category_id: b.cls + 1, bbox, area: bbox[2] * bbox[3], iscrowd: 0 });
    }
    return { id: i + 1, file_name: img.id, width: img.width, height: img.height };
  });
  return {
    info: { description: 'exported by loupe', version: datasetVersion(names, images), date_created: new Date().toISOString() },
    licenses: [],
    images: cocoImages,
    annotations,
    categories: names.map((n, i) => ({ id: i + 1, name: n, supercategory: 'defect' })),
  };
}

/**
 * Write a COCO folder: `annotations.json` plus `images/<id>` (hard-linked, or copied across file
 * systems), built in a temp folder and renamed into place.
 */
export async function writeCocoDataset(
  names: readonly string[],
  images: readonly LabelledImage[],
  outDir: string,
  opts: { overwrite?: boolean; log?: Logger } = {},
): Promise<{ jsonPath: string; root: string }> {
  const root = resolve(outDir);
  checkIds(images);
  assertOutputFree(root, Boolean(opts.overwrite));
  await mkdir(dirname(root), { recursive: true });
  const tmp = join(dirname(root), `.${basename(root)}.partial-${randomBytes(4).toString('hex')}`);
  try {
    const progress = new Progress('write coco', images.length, opts.log);
    let done = 0;
    await mapLimit(images, 8, async (img) => {
      const dst = join(tmp, 'images', ...img.id.split('/'));
      await mkdir(dirname(dst), { recursive: true });
      await link(img.imagePath, dst).catch(() => copyFile(img.imagePath, dst));
      progress.update(++done);
    });
    progress.finish();
    await writeFile(join(tmp, 'annotations.json'), JSON.stringify(cocoFromDataset(names, images)));
    await fsyncDir(tmp);
    await commitDir(tmp, root, Boolean(opts.overwrite));
  } catch (e) {
    await rm(tmp, { recursive: true, force: true });
    throw e;
  }
  return { jsonPath: join(root, 'annotations.json'), root };
}
