import { copyFile, link, mkdir } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { readLabelsCsv } from '../../contracts/labels-csv.js';

/**
 * The reference history split at a point in time, for demos and tests that replay it: the
 * label store gets the history up to `until` (loop config `history.until`), and a camera shows
 * the photos that were first labelled after it, so what the device uploads is data the label
 * store has not seen, as in a plant where new parts keep arriving.
 */

/** Files under `imagesDir` (source_ref's last two path parts) whose first record is after `until`. */
export function imagesFirstLabelledAfter(labelsCsv: string, imagesDir: string, until: number): string[] {
  const first = new Map<string, number>();
  for (const r of readLabelsCsv(labelsCsv)) first.set(r.source_ref, Math.min(first.get(r.source_ref) ?? Infinity, r.event_time));
  return [...first]
    .filter(([, t]) => t > until)
    .map(([ref]) => join(imagesDir, ...ref.split('/').slice(-2)))
    .filter((f) => existsSync(f))
    .sort();
}

/** A camera folder holding `files` (hard links, copies across file systems), keeping their parent folder names. */
export async function cameraFolder(files: string[], dir: string): Promise<string> {
  for (const f of files) {
    const to = join(dir, basename(dirname(f)), basename(f));
    if (existsSync(to)) continue;
    await mkdir(dirname(to), { recursive: true });
    await link(f, to).catch(() => copyFile(f, to));
  }
  return dir;
}

/** The demo's point in time: after the reference's first two labelling jobs (44 of its 235 records). */
export const DEMO_HISTORY_UNTIL = '2022-07-07T12:25:00Z';
