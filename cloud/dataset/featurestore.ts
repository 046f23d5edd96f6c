import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, extname, join, relative, resolve, sep } from 'node:path';
import { parse as parseCsv } from 'csv-parse/sync';
import type { Logger } from 'pino';
import { LoupeError } from '../../lib/errors.js';
import { parsePyLiteral, type PyValue } from '../../lib/pyliteral.js';
import { Progress } from '../../lib/progress.js';
import { mapLimit, readImageInfo } from './image-info.js';
import { checkBox, checkClass, dropDuplicateBoxes, labelError, type LabelSource } from './label-check.js';
import { idFromSourceRef, localPathFor } from './source-ref.js';
import { emptyReport, type ImportedDataset, type LabelledImage } from './types.js';
import { gtToBox, type Box } from '../../contracts/box.js';
import { IMAGE_EXTENSIONS } from './yolo-read.js';

/** The reference solution's label layout has one class: 0 = scratch. */
export const FEATURE_STORE_DEFAULT_NAMES = ['scratch'];

export const FEATURE_STORE_COLUMNS = ['source_ref', 'image_width', 'image_height', 'image_depth', 'annotations', 'event_time', 'labeling_job', 'status'] as const;

export interface FeatureStoreImportOptions {
  /** Folder holding `<folder>/<name>.jpg` as named by each source_ref's last two parts; default: the CSV's folder. */
  imagesDir?: string;
  /** Class names by class_id; default FEATURE_STORE_DEFAULT_NAMES. */
  names?: string[];
  log?: Logger;
}

/** One feature-store label record (a CSV row), parsed. */
export interface FeatureStoreRecord {
  row: number;
  sourceRef: string;
  id: string;
  width: number;
  height: number;
  depth: number;
  annotations: { class_id: number; left: number; top: number; width: number; height: number }[];
  eventTime: number;
  labelingJob: string;
  status: string;
}

function num(v: string | undefined, src: LabelSource, column: string): number {
  const n = v === undefined || v.trim() === '' ? NaN : Number(v);
  if (!Number.isFinite(n)) throw labelError('LABEL_BAD_FIELD', src, `${column} is ${JSON.stringify(v ?? null)}, not a number`);
  return n;
}

function annotationsOf(raw: string, src: LabelSource): FeatureStoreRecord['annotations'] {
  let v: PyValue;
  try {
    v = parsePyLiteral(raw.trim() === '' ? '[]' : raw, { input: `${src.file}: ${src.record}` });
  } catch (e) {
    throw labelError('LABEL_BAD_ANNOTATIONS', src, `annotations are not a Python literal list (${(e as Error).message.replace(/^.*?: (?=not a Python)/, '')})`);
  }
  if (!Array.isArray(v)) throw labelError('LABEL_BAD_ANNOTATIONS', src, 'annotations must be a list of boxes');
  return v.map((a, i) => {
    const bsrc = { ...src, record: `${src.record} box ${i + 1}` };
    if (!a || typeof a !== 'object' || Array.isArray(a)) throw labelError('LABEL_BAD_ANNOTATIONS', bsrc, 'is not a dict');
    const out = {} as FeatureStoreRecord['annotations'][number];
    for (const k of ['class_id', 'left', 'top', 'width', 'height'] as const) {
      const x = a[k];
      if (typeof x !== 'number' || !Number.isFinite(x)) throw labelError('LABEL_BAD_BOX', bsrc, `${k} is ${JSON.stringify(x ?? null)}, not a number`);
      out[k] = x;
    }
    return out;
  });
}

/** Parse labels.csv rows (header required); errors name the file and the row (1-based, header = row 1). */
export function parseFeatureStoreCsv(csvPath: string, text: string = readFileSync(csvPath, 'utf8')): FeatureStoreRecord[] {
  let rows: string[][];
  try {
    rows = parseCsv(text, { relax_column_count: false, skip_empty_lines: true, bom: true }) as string[][];
  } catch (e) {
    throw new LoupeError('LABEL_BAD_CSV', `not valid CSV (${(e as Error).message})`, { input: csvPath });
  }
  const header = rows[0];
  if (!header) throw new LoupeError('LABEL_BAD_CSV', 'empty file (expected a header row)', { input: csvPath });
  const col = new Map(header.map((h, i) => [h.trim(), i]));
  const missing = FEATURE_STORE_COLUMNS.filter((c) => !col.has(c));
  if (missing.length) throw new LoupeError('LABEL_BAD_CSV', `header lacks column(s) ${missing.join(', ')} (expected ${FEATURE_STORE_COLUMNS.join(',')})`, { input: csvPath });
  const get = (r: string[], c: (typeof FEATURE_STORE_COLUMNS)[number]) => r[col.get(c) as number];
  return rows.slice(1).map((r, i) => {
    const sourceRef = (get(r, 'source_ref') ?? '').trim();
    const src: LabelSource = { file: csvPath, record: `row ${i + 2}${sourceRef ? ` (${idFromSourceRef(sourceRef)})` : ''}` };
    if (!sourceRef) throw labelError('LABEL_BAD_FIELD', src, 'source_ref is empty');
    return {
      row: i + 2,
      sourceRef,
      id: idFromSourceRef(sourceRef),
      width: num(get(r, 'image_width'), src, 'image_width'),
      height: num(get(r, 'image_height'), src, 'image_height'),
      depth: num(get(r, 'image_depth'), src, 'image_depth'),
      annotations: annotationsOf(get(r, 'annotations') ?? '', src),
      eventTime: num(get(r, 'event_time'), src, 'event_time'),
      labelingJob: (get(r, 'labeling_job') ?? '').trim(),
      status: (get(r, 'status') ?? '').trim(),
    };
  });
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
  const records = parseFeatureStoreCsv(abs);
  const report = emptyReport('featurestore', abs);
  report.records = records.length;
  const latest = new Map<string, FeatureStoreRecord>();
  for (const r of records) {
    if (r.status !== 'APPROVED') {
      report.rejected++;
      continue;
    }
    const prev = latest.get(r.id);
    // Ties on event_time: the later row wins (append order).
    if (!prev || r.eventTime >= prev.eventTime) latest.set(r.id, r);
    if (prev) report.superseded++;
  }
  const chosen = [...latest.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  const progress = new Progress('featurestore import', chosen.length, opts.log);
  let done = 0;
  const images = await mapLimit(chosen, 4, async (r): Promise<LabelledImage> => {
    const src: LabelSource = { file: abs, record: `row ${r.row} (${r.id})` };
    const imagePath = localPathFor(imagesDir, r.id);
    const size = await readImageInfo(imagePath, src);
    if (size.width !== r.width || size.height !== r.height) {
      throw labelError('LABEL_SIZE_MISMATCH', src, `image_width x image_height say ${r.width}x${r.height} but ${imagePath} is ${size.width}x${size.height}`);
    }
    const boxes: Box[] = r.annotations.map((a, i) => {
      const bsrc = { ...src, record: `${src.record} box ${i + 1}` };
      const cls = checkClass(a.class_id, names, bsrc);
      return checkBox({ ...gtToBox(a), cls }, size, bsrc, () => report.clipped++);
    });
    progress.update(++done);
    return { id: r.id, imagePath, width: size.width, height: size.height, boxes: dropDuplicateBoxes(boxes, size, () => report.duplicates++) };
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
