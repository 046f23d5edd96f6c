import { writeFileAtomic } from '../../lib/fsutil.js';
import { formatLabelsCsv, readLabelsCsv } from '../../contracts/labels-csv.js';
import type { LabelRecord } from '../../contracts/label-record.js';
import type { LabelStore } from './types.js';
import { idFromSourceRef } from '../dataset/source-ref.js';

/**
 * labels.csv and the label store: import the reference's history into a store, export a store's
 * records. The file format itself (one parser, one writer) is contracts/labels-csv.ts.
 */

// Old names, re-exported while other branches still use them; new code imports contracts/labels-csv.ts.
export {
  readLabelsCsv as readFeatureStoreCsv,
  pyAnnotations,
  LABELS_CSV_COLUMNS as FEATURE_STORE_COLUMNS,
  LABELS_CSV_EXTENSION_COLUMNS as EXTENSION_COLUMNS,
} from '../../contracts/labels-csv.js';

function recordKey(r: LabelRecord): string {
  return JSON.stringify([r.source_ref, r.event_time, r.labeling_job, r.status, r.annotations]);
}

/**
 * Import a feature-store CSV into a store as history. Idempotent: a row whose record already
 * exists (same image, event time, job, status and boxes) is not appended again. `until` (epoch
 * seconds) imports the history as it stood then: rows with a later event_time are left out.
 * `exclude` (image ids, the source_ref's last two parts such as `bad/x.jpg`) leaves those images
 * out entirely, e.g. a held-out benchmark set that no model trained from this store may see.
 */
export async function importFeatureStoreCsv(
  store: LabelStore,
  path: string,
  opts: { until?: number; exclude?: Iterable<string> } = {},
): Promise<{ read: number; appended: number; images: number; later: number; excluded: number }> {
  const all = readLabelsCsv(path);
  // a held-out set (the demo's benchmark images) never enters the label history
  const skip = new Set(opts.exclude ?? []);
  const kept = skip.size ? all.filter((r) => !skip.has(idFromSourceRef(r.source_ref))) : all;
  const records = opts.until === undefined ? kept : kept.filter((r) => r.event_time <= opts.until!);
  const refs = new Set(records.map((r) => r.source_ref));
  const appended = await appendNew(store, records);
  return { read: all.length, appended, images: refs.size, later: kept.length - records.length, excluded: all.length - kept.length };
}

/**
 * Append the records the store does not hold yet (same image, event time, job, status and boxes
 * count as held), all or nothing; returns how many were appended. What makes every import idempotent.
 */
export async function appendNew(store: LabelStore, records: readonly LabelRecord[]): Promise<number> {
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
  return fresh.length;
}

/** Write records in the reference layout (+ loupe's extension columns), atomically. */
export async function writeFeatureStoreCsv(path: string, records: LabelRecord[]): Promise<void> {
  await writeFileAtomic(path, formatLabelsCsv(records));
}
