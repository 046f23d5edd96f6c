import { copyFile, link, mkdir } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { readLabelsCsv } from '../../contracts/labels-csv.js';
import { projectRoot } from '../../lib/paths.js';
import { readImageIds } from '../dataset/id-list.js';
import { idFromSourceRef } from '../dataset/source-ref.js';

/**
 * The reference history split at a point in time, for demos and tests that replay it: the
 * label store gets the history up to `until` (loop config `history.until`), and a camera shows
 * the photos that were first labelled after it, so what the device uploads is data the label
 * store has not seen, as in a plant where new parts keep arriving.
 */

/**
 * Files under `imagesDir` (source_ref's last two path parts) whose first record is after `until`,
 * leaving out the image ids in `exclude` (a held-out benchmark set the camera must never show).
 */
export function imagesFirstLabelledAfter(labelsCsv: string, imagesDir: string, until: number, exclude: Iterable<string> = []): string[] {
  const skip = new Set(exclude);
  const first = new Map<string, number>();
  for (const r of readLabelsCsv(labelsCsv)) first.set(r.source_ref, Math.min(first.get(r.source_ref) ?? Infinity, r.event_time));
  return [...first]
    .filter(([ref, t]) => t > until && !skip.has(idFromSourceRef(ref)))
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

/**
 * The demo's held-out benchmark set: the shipped model's 35 test images, as its card lists them
 * (the test split of all 235 metal-tags images by loupe's split rule). The demo camera never
 * shows them, the demo's label history leaves them out, so no model in the demo trains on them.
 */
export const BENCHMARK_CARD = join(projectRoot, 'models', 'metal-tags', 'card.json');

/**
 * The demo's starting champion: trained only on the history as of DEMO_HISTORY_UNTIL minus the
 * benchmark images (37 images: 30 train, 7 val), see its card.json.
 */
export const DEMO_CHAMPION_DIR = join(projectRoot, 'models', 'metal-tags-early');

export function benchmarkImageIds(card: string = BENCHMARK_CARD): string[] {
  return readImageIds(card);
}

/**
 * The demo device's uploader: commissioning a line, every part goes to labelling once. Policies
 * failed + uncertain as by default, and passing parts too (`commissioning`, a random share of
 * 1); a budget that lets a pass of 163 photos through (600 a minute); de-duplication `exact`
 * (byte-identical frames: the looping folder camera's repeats), because the tags look alike to a
 * 64-bit perceptual hash (dHash at distance 3 calls 98 of the 163 distinct photos duplicates).
 */
export const DEMO_UPLOADER = {
  policies: [{ type: 'failed' }, { type: 'uncertain', low: 0.25, high: 0.5 }, { type: 'random', name: 'commissioning', share: 1 }],
  limits: { perMinute: 600, perHour: 5000, perDay: 20000 },
  dedup: { enabled: true, hash: 'exact', maxDistance: 0, window: 512 },
};
