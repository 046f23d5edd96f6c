import { existsSync, readFileSync } from 'node:fs';
import { parse } from 'csv-parse/sync';
import { LoupeError } from '../lib/errors.js';
import { parsePyLiteral } from '../lib/pyliteral.js';
import type { GtBox } from './box.js';
import { LABEL_STATUSES, validateRecord, type LabelRecord, type LabelStatus } from './label-record.js';

/**
 * `labels.csv`, the reference solution's feature-store export: one row per label record,
 * `annotations` a Python-literal list of Ground Truth boxes. loupe reads it in two places (the
 * label store's history import and the data set importer) and writes it in one (`loupe labels
 * export`), all through this file.
 *
 * `parseLabelsCsv` checks the layout (header, numbers, statuses, the annotations literal) and
 * returns every row with its row number; what a row must mean is the caller's: the label store
 * applies the label record schema (`readLabelsCsv`), the data set importer checks boxes against
 * the images the ultralytics way. Errors name the file and the row (header = row 1).
 */
export const LABELS_CSV_COLUMNS = [
  'source_ref',
  'image_width',
  'image_height',
  'image_depth',
  'annotations',
  'event_time',
  'labeling_job',
  'status',
] as const;

/** Extension columns loupe writes after the reference's eight (optional when reading). */
export const LABELS_CSV_EXTENSION_COLUMNS = ['device', 'capture_time', 'model_version', 'meta'] as const;

export interface LabelsCsvRow {
  /** 1-based row number in the file (the header is row 1). */
  row: number;
  /** The row as a label record; `status` as written (Ground Truth exports carry others than the store's three). */
  record: Omit<LabelRecord, 'status'> & { status: string };
}

function bad(path: string, why: string): LoupeError {
  return new LoupeError('LABELS_CSV_BAD', why, { input: path });
}

function annotationsOf(raw: string, at: string, path: string): GtBox[] {
  let v: unknown;
  try {
    v = parsePyLiteral(raw.trim() === '' ? '[]' : raw, { input: `${path}: ${at}` });
  } catch (e) {
    throw bad(path, `${at}: annotations are not a Python literal list (${(e as Error).message.replace(/^.*?: (?=not a Python)/, '')})`);
  }
  if (!Array.isArray(v)) throw bad(path, `${at}: annotations must be a list of boxes`);
  return v.map((a, i) => {
    if (!a || typeof a !== 'object' || Array.isArray(a)) throw bad(path, `${at}: annotations box ${i + 1} is not a dict`);
    const o = a as Record<string, unknown>;
    const box = {} as GtBox;
    for (const k of ['class_id', 'left', 'top', 'width', 'height'] as const) {
      const x = o[k];
      if (typeof x !== 'number' || !Number.isFinite(x))
        throw bad(path, `${at}: annotations box ${i + 1}: ${k} is ${JSON.stringify(x ?? null)}, not a number`);
      box[k] = x;
    }
    if (o.confidence !== undefined && o.confidence !== null) {
      if (typeof o.confidence !== 'number' || !Number.isFinite(o.confidence))
        throw bad(path, `${at}: annotations box ${i + 1}: confidence is ${JSON.stringify(o.confidence)}, not a number`);
      box.confidence = o.confidence;
    }
    return box;
  });
}

/** Every row of a labels.csv as a label record (layout checked, meaning not: see `readLabelsCsv`). */
export function parseLabelsCsv(path: string, text?: string): LabelsCsvRow[] {
  if (text === undefined) {
    if (!existsSync(path)) throw new LoupeError('LABELS_CSV_MISSING', 'file not found', { input: path });
    text = readFileSync(path, 'utf8');
  }
  let rows: string[][];
  try {
    rows = parse(text, { skip_empty_lines: true, bom: true }) as string[][];
  } catch (e) {
    throw bad(path, `not a valid CSV file (${(e as Error).message})`);
  }
  const header = rows[0];
  if (!header) throw bad(path, 'empty file (expected a header row)');
  const col = new Map(header.map((h, i) => [h.trim(), i]));
  const missing = LABELS_CSV_COLUMNS.filter((c) => !col.has(c));
  if (missing.length) throw bad(path, `header lacks column(s) ${missing.join(', ')} (expected ${LABELS_CSV_COLUMNS.join(',')})`);
  return rows.slice(1).map((r, i) => {
    const get = (c: string): string | undefined => (col.has(c) ? r[col.get(c)!] : undefined);
    const sourceRef = (get('source_ref') ?? '').trim();
    const at = `row ${i + 2} (${sourceRef || '?'})`;
    if (!sourceRef) throw bad(path, `${at}: source_ref is empty`);
    const num = (c: string): number => {
      const v = get(c);
      const n = v === undefined || v.trim() === '' ? NaN : Number(v);
      if (!Number.isFinite(n)) throw bad(path, `${at}: ${c} must be a number, got ${JSON.stringify(v ?? null)}`);
      return n;
    };
    const status = (get('status') ?? '').trim();
    let meta: Record<string, unknown> = {};
    const metaText = get('meta');
    if (metaText) {
      try {
        meta = JSON.parse(metaText) as Record<string, unknown>;
      } catch (e) {
        throw bad(path, `${at}: meta is not JSON (${(e as Error).message})`);
      }
      if (!meta || typeof meta !== 'object' || Array.isArray(meta)) throw bad(path, `${at}: meta must be a JSON object`);
    }
    const record: LabelsCsvRow['record'] = {
      source_ref: sourceRef,
      image_width: num('image_width'),
      image_height: num('image_height'),
      image_depth: num('image_depth'),
      annotations: annotationsOf(get('annotations') ?? '', at, path),
      event_time: num('event_time'),
      labeling_job: (get('labeling_job') ?? '').trim(),
      status,
      device: get('device') ?? '',
      capture_time: get('capture_time') ? num('capture_time') : null,
      model_version: get('model_version') ?? '',
      meta,
    };
    return { row: i + 2, record };
  });
}

/** Every row of a labels.csv as a valid label record (the label record schema applied to each). */
export function readLabelsCsv(path: string): LabelRecord[] {
  return parseLabelsCsv(path).map(({ row, record }) => {
    if (!LABEL_STATUSES.includes(record.status as LabelStatus))
      throw bad(
        path,
        `row ${row} (${record.source_ref}): status must be one of ${LABEL_STATUSES.join('/')}, got ${JSON.stringify(record.status)}`,
      );
    try {
      return validateRecord(record, row);
    } catch (e) {
      throw bad(path, `row ${row} (${record.source_ref}): ${(e as Error).message.replace(/^label record #\d+( \([^)]*\))?: /, '')}`);
    }
  });
}

/** Python `str()` of a list of dicts, the way the reference wrote `annotations`. */
export function pyAnnotations(boxes: GtBox[]): string {
  return `[${boxes
    .map(
      (b) =>
        `{${Object.entries(b)
          .map(([k, v]) => `'${k}': ${v}`)
          .join(', ')}}`,
    )
    .join(', ')}]`;
}

function csvField(v: string): string {
  return /[",\n\r]/.test(v) ? `"${v.replace(/"/g, '""')}"` : v;
}

/** labels.csv text in the reference layout plus loupe's extension columns. */
export function formatLabelsCsv(records: readonly LabelRecord[]): string {
  const cols = [...LABELS_CSV_COLUMNS, ...LABELS_CSV_EXTENSION_COLUMNS];
  const lines = [cols.join(',')];
  for (const r of records) {
    const vals: Record<string, string> = {
      source_ref: r.source_ref,
      image_width: String(r.image_width),
      image_height: String(r.image_height),
      image_depth: String(r.image_depth),
      annotations: pyAnnotations(r.annotations),
      event_time: String(r.event_time),
      labeling_job: r.labeling_job,
      status: r.status,
      device: r.device,
      capture_time: r.capture_time === null ? '' : String(r.capture_time),
      model_version: r.model_version,
      meta: Object.keys(r.meta).length ? JSON.stringify(r.meta) : '',
    };
    lines.push(cols.map((c) => csvField(vals[c]!)).join(','));
  }
  return lines.join('\n') + '\n';
}
