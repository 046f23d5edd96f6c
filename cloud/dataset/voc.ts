import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, extname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { XMLParser } from 'fast-xml-parser';
import type { Logger } from 'pino';
import { LoupeError } from '../../lib/errors.js';
import { Progress } from '../../lib/progress.js';
import { mapLimit, readImageInfo } from './image-info.js';
import { checkBox, checkClass, dropDuplicateBoxes, labelError, type LabelSource } from './label-check.js';
import { emptyReport, type ImportedDataset, type LabelledImage } from './types.js';
import type { Box } from '../../contracts/box.js';
import { IMAGE_EXTENSIONS } from './yolo-read.js';

export interface VocImportOptions {
  /** Class names in index order; objects of other classes are refused. Default: the sorted names found. */
  names?: string[];
  /** Keep `<difficult>1</difficult>` objects (skipped by default, as ultralytics' VOC converter does). */
  includeDifficult?: boolean;
  /** Folder holding the images, when it is not the annotations folder's sibling. */
  imagesDir?: string;
  log?: Logger;
}

interface VocObject {
  name: string;
  difficult: boolean;
  box: Box & { cls: -1 };
  index: number;
}

interface VocFile {
  xmlPath: string;
  imagePath: string;
  size?: { width: number; height: number };
  objects: VocObject[];
}

const parser = new XMLParser({ ignoreAttributes: true, parseTagValue: false, trimValues: true, isArray: (name) => name === 'object' });

/**
 * The images folder that belongs to an annotations folder: `ANNOTATIONS`→`IMAGES`,
 * `Validation_Annotations`→`Validation_Images` (neu-det), `Annotations`→`JPEGImages` (VOC2007/2012).
 */
function imageDirsFor(annDir: string): string[] {
  const b = basename(annDir);
  const swapped = b.replace(/annotations?/i, (m) => (m === m.toUpperCase() ? 'IMAGES' : m[0] === 'A' ? 'Images' : 'images'));
  return [join(dirname(annDir), swapped), join(dirname(annDir), 'JPEGImages'), annDir];
}

function listXmlDirs(root: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    const entries = readdirSync(d, { withFileTypes: true });
    if (entries.some((e) => e.isFile() && e.name.toLowerCase().endsWith('.xml'))) out.push(d);
    for (const e of entries) if (e.isDirectory() && !e.name.startsWith('.')) walk(join(d, e.name));
  };
  walk(root);
  return out.sort();
}

/** Map image stem → file, per folder (listing once instead of probing every extension). */
function imageIndex(dir: string): Map<string, string> {
  const m = new Map<string, string>();
  if (!existsSync(dir) || !statSync(dir).isDirectory()) return m;
  for (const f of readdirSync(dir).sort()) {
    if (IMAGE_EXTENSIONS.has(extname(f).toLowerCase())) m.set(f.slice(0, f.length - extname(f).length), join(dir, f));
  }
  return m;
}

function text(v: unknown): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'object') return undefined;
  return String(v).trim();
}

function parseVocXml(xmlPath: string): { size?: { width: number; height: number }; objects: VocObject[] } {
  let doc: { annotation?: Record<string, unknown> };
  try {
    doc = parser.parse(readFileSync(xmlPath, 'utf8'), true) as typeof doc;
  } catch (e) {
    throw new LoupeError('LABEL_BAD_XML', `not valid XML (${(e as Error).message.split('\n')[0]})`, { input: xmlPath });
  }
  const ann = doc.annotation;
  if (!ann || typeof ann !== 'object')
    throw new LoupeError('LABEL_BAD_XML', 'no <annotation> element (not a Pascal VOC file)', { input: xmlPath });
  const sizeEl = ann.size as Record<string, unknown> | undefined;
  const w = Number(text(sizeEl?.width));
  const h = Number(text(sizeEl?.height));
  const size = Number.isFinite(w) && Number.isFinite(h) && w > 0 && h > 0 ? { width: w, height: h } : undefined;
  const objects = ((ann.object as Record<string, unknown>[] | undefined) ?? []).map((o, i) => {
    const src: LabelSource = { file: xmlPath, record: `object ${i + 1}` };
    const name = text(o.name);
    if (!name) throw labelError('LABEL_BAD_OBJECT', src, 'has no <name>');
    const bb = o.bndbox as Record<string, unknown> | undefined;
    if (!bb || typeof bb !== 'object')
      throw labelError('LABEL_BAD_OBJECT', { ...src, record: `${src.record} (${name})` }, 'has no <bndbox>');
    const coord = (k: string) => {
      const raw = text(bb[k]);
      const v = raw === undefined || raw === '' ? NaN : Number(raw);
      if (!Number.isFinite(v))
        throw labelError(
          'LABEL_BAD_BOX',
          { ...src, record: `${src.record} (${name})` },
          `<${k}> is ${raw === undefined ? 'missing' : JSON.stringify(raw)}, not a number`,
        );
      return v;
    };
    // VOC corners are taken as written (no 1-based shift): the committed neu-det fixture model was
    // trained on this convention; ultralytics' VOC.yaml shifts centres by -1 px, a sub-pixel matter here.
    const box = { cls: -1 as const, x1: coord('xmin'), y1: coord('ymin'), x2: coord('xmax'), y2: coord('ymax') };
    return { name, difficult: text(o.difficult) === '1', box, index: i };
  });
  return { size, objects };
}

/**
 * An image's id: its path under the imported folder; an image outside it (`--from ANNOTATIONS
 * --images IMAGES`, or the sibling images folder of an annotations folder) is named by its folder
 * and file (`IMAGES/crazing_1.jpg`), which is the id the same image gets when the whole tree is
 * imported, so its split does not depend on how the import was spelled.
 */
function vocImageId(absRoot: string, imagePath: string): string {
  const rel = relative(absRoot, imagePath);
  const inside = rel && !rel.startsWith('..') && !isAbsolute(rel);
  return (inside ? rel : relative(dirname(dirname(imagePath)), imagePath)).split(sep).join('/');
}

/**
 * Import a Pascal VOC tree (e.g. ../shared/datasets/neu-det): every folder under `root` holding
 * .xml files is an annotations folder, paired with its images folder (see imageDirsFor). Ids are
 * image paths relative to `root` (`IMAGES/crazing_1.jpg`). Images without an annotation file are
 * reported as unlabelled and left out. `root` may also be one annotations folder, with its images
 * in `opts.imagesDir` (`dataset import --format voc --from ANNOTATIONS --images IMAGES`).
 */
export async function importVoc(root: string, opts: VocImportOptions = {}): Promise<ImportedDataset> {
  const absRoot = resolve(root);
  if (!existsSync(absRoot) || !statSync(absRoot).isDirectory())
    throw new LoupeError('DATA_MISSING', 'Pascal VOC folder not found', { input: absRoot });
  if (opts.imagesDir && !(existsSync(opts.imagesDir) && statSync(opts.imagesDir).isDirectory())) {
    throw new LoupeError('DATA_MISSING', 'images folder not found', { input: resolve(opts.imagesDir) });
  }
  const report = emptyReport('voc', absRoot);
  const files: VocFile[] = [];
  const labelled = new Set<string>();
  const allImages = new Set<string>();
  const xmlDirs = listXmlDirs(absRoot);
  if (xmlDirs.length === 0) throw new LoupeError('DATA_EMPTY', 'no Pascal VOC .xml annotation files under this folder', { input: absRoot });
  for (const annDir of xmlDirs) {
    const candidates = opts.imagesDir ? [resolve(opts.imagesDir)] : imageDirsFor(annDir);
    const indexes = candidates.map(imageIndex);
    const index = indexes.find((m) => m.size > 0) ?? new Map<string, string>();
    for (const p of index.values()) allImages.add(p);
    for (const f of readdirSync(annDir)
      .filter((n) => n.toLowerCase().endsWith('.xml'))
      .sort()) {
      const xmlPath = join(annDir, f);
      const stem = f.slice(0, -4);
      const parsed = parseVocXml(xmlPath);
      const imagePath = index.get(stem);
      if (!imagePath) {
        throw labelError('IMAGE_MISSING', { file: xmlPath, record: 'annotation' }, `no image named ${stem}.* in ${candidates[0]}`);
      }
      labelled.add(imagePath);
      files.push({ xmlPath, imagePath, ...parsed });
    }
  }
  report.records = files.length;
  const names = opts.names ?? [...new Set(files.flatMap((f) => f.objects.map((o) => o.name)))].sort();
  const progress = new Progress('voc import', files.length, opts.log);
  let done = 0;
  const images = await mapLimit(files, 4, async (f): Promise<LabelledImage> => {
    const size = await readImageInfo(f.imagePath, { file: f.xmlPath, record: 'annotation' });
    if (f.size && (f.size.width !== size.width || f.size.height !== size.height)) {
      throw labelError(
        'LABEL_SIZE_MISMATCH',
        { file: f.xmlPath, record: '<size>' },
        `says ${f.size.width}x${f.size.height} but ${f.imagePath} is ${size.width}x${size.height}`,
      );
    }
    const boxes: Box[] = [];
    for (const o of f.objects) {
      const src = { file: f.xmlPath, record: `object ${o.index + 1} (${o.name})` };
      const cls = checkClass(names.indexOf(o.name), names, src, JSON.stringify(o.name));
      if (o.difficult && !opts.includeDifficult) {
        report.skippedDifficult++;
        continue;
      }
      boxes.push(checkBox({ ...o.box, cls }, size, src, () => report.clipped++));
    }
    progress.update(++done);
    return {
      id: vocImageId(absRoot, f.imagePath),
      imagePath: f.imagePath,
      width: size.width,
      height: size.height,
      boxes: dropDuplicateBoxes(boxes, size, () => report.duplicates++),
    };
  });
  progress.finish();
  report.unlabelled = [...allImages]
    .filter((p) => !labelled.has(p))
    .map((p) => vocImageId(absRoot, p))
    .sort();
  report.images = images.length;
  report.boxes = images.reduce((n, i) => n + i.boxes.length, 0);
  return { names, images, report };
}
