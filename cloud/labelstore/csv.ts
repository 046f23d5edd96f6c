import { parse } from 'csv-parse/sync';
import { readFileSync, existsSync } from 'node:fs';
import { LoupeError } from '../../lib/errors.js';
import { parsePyLiteral } from '../../lib/pyliteral.js';
import { writeFileAtomic } from '../../lib/fsutil.js';
import { type LabelStore } from './types.js';
import { LABEL_STATUSES, type LabelRecord, type LabelStatus } from '../../contracts/label-record.js';
import type { GtBox } from '../../contracts/box.js';
import { makeRecord, validateRecord } from '../../contracts/label-record.js';

/**
 * The reference solution's feature-store CSV (`labels.csv`): one row per label record,
 * `annotations` a Python-literal list of Ground Truth boxes. Reading keeps every row (the
 * history), unlike a data set importer that keeps only the latest approved label per image.
 */
export const FEATURE_STORE_COLUMNS = [
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
export const EXTENSION_COLUMNS = ['device', 'capture_time', 'model_version', 'meta'] as const;

export function readFeatureStoreCsv(path: string): LabelRecord[] {
  if (!existsSync(path)) throw new LoupeError('LABELS_CSV_MISSING', 'file not found', { input: path });
  let rows: Record<string, string>[];
  try {
    rows = parse(readFileSync(path, 'utf8'), { columns: true, skip_empty_lines: true }) as Record<string, string>[];
  } catch (e) {
    throw new LoupeError('LABELS_CSV_BAD', `not a valid CSV file (${(e as Error).message})`, { input: path });
  }
  const header = rows.length ? Object.keys(rows[0]!) : [];
  const missing = FEATURE_STORE_COLUMNS.filter((c) => rows.length && !header.includes(c));
  if (missing.length) throw new LoupeError('LABELS_CSV_BAD', `missing column(s) ${missing.join(', ')}`, { input: path });
  return rows.map((row, i) => {
    const input = `${path}: row ${i + 2} (${row.source_ref ?? '?'})`;
    const num = (col: string): number => {
      const v = Number(row[col]);
      if (row[col] === undefined || row[col] === '' || !Number.isFinite(v)) {
        throw new LoupeError('LABELS_CSV_BAD', `${col} must be a number, got ${JSON.stringify(row[col])}`, { input });
      }
      return v;
    };
    const status = row.status as LabelStatus;
    if (!LABEL_STATUSES.includes(status)) {
      throw new LoupeError('LABELS_CSV_BAD', `status must be one of ${LABEL_STATUSES.join('/')}, got ${JSON.stringify(row.status)}`, { input });
    }
    let annotations: GtBox[];
    try {
      const v = parsePyLiteral(row.annotations || '[]', { input });
      if (!Array.isArray(v)) throw new Error('not a list');
      annotations = v.map((b) => {
        const o = b as Record<string, unknown>;
        const box: GtBox = {
          class_id: Number(o.class_id),
          left: Number(o.left),
          top: Number(o.top),
          width: Number(o.width),
          height: Number(o.height),
        };
        if (o.confidence !== undefined && o.confidence !== null) box.confidence = Number(o.confidence);
        return box;
      });
    } catch (e) {
      if (e instanceof LoupeError) throw e;
      throw new LoupeError('LABELS_CSV_BAD', `annotations must be a list of boxes (${(e as Error).message})`, { input });
    }
    const rec = makeRecord({
      source_ref: row.source_ref!,
      image_width: num('image_width'),
      image_height: num('image_height'),
      image_depth: num('image_depth'),
      annotations,
      event_time: num('event_time'),
      labeling_job: row.labeling_job ?? '',
      status,
      device: row.device ?? '',
      capture_time: row.capture_time ? num('capture_time') : null,
      model_version: row.model_version ?? '',
      meta: row.meta ? (JSON.parse(row.meta) as Record<string, unknown>) : {},
    });
    try {
      return validateRecord(rec, i);
    } catch (e) {
      throw new LoupeError('LABELS_CSV_BAD', (e as Error).message.replace(/^label record #\d+( \([^)]*\))?: /, ''), { input });
    }
  });
}

function recordKey(r: LabelRecord): string {
  return JSON.stringify([r.source_ref, r.event_time, r.labeling_job, r.status, r.annotations]);
}

/**
 * Import a feature-store CSV into a store as history. Idempotent: a row whose record already
 * exists (same image, event time, job, status and boxes) is not appended again. `until` (epoch
 * seconds) imports the history as it stood then: rows with a later event_time are left out.
 */
export async function importFeatureStoreCsv(store: LabelStore, path: string, opts: { until?: number } = {}): Promise<{ read: number; appended: number; images: number; later: number }> {
  const all = readFeatureStoreCsv(path);
  const records = opts.until === undefined ? all : all.filter((r) => r.event_time <= opts.until!);
  const refs = [...new Set(records.map((r) => r.source_ref))];
  const known = await store.known(refs);
  const existing = new Set<string>();
  for (const ref of known) for (const r of await store.history(ref)) existing.add(recordKey(r));
  const fresh: LabelRecord[] = [];
  for (const r of records) {
    const k = recordKey(r);
    if (existing.has(k)) continue;
    existing.add(k);
    fresh.push(r);
  }
  await store.append(fresh);
  return { read: all.length, appended: fresh.length, images: refs.length, later: all.length - records.length };
}

/** Python `str()` of a list of dicts, the way the reference wrote `annotations`. */
export function pyAnnotations(boxes: GtBox[]): string {
  return `[${boxes.map((b) => `{${Object.entries(b).map(([k, v]) => `'${k}': ${v}`).join(', ')}}`).join(', ')}]`;
}

function csvField(v: string): string {
  return /[",\n\r]/.test(v) ? `"${v.replace(/"/g, '""')}"` : v;
}

/** Write records in the reference layout (+ loupe's extension columns), atomically. */
export async function writeFeatureStoreCsv(path: string, records: LabelRecord[]): Promise<void> {
  const cols = [...FEATURE_STORE_COLUMNS, ...EXTENSION_COLUMNS];
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
  await writeFileAtomic(path, lines.join('\n') + '\n');
}
