import { existsSync, readFileSync } from 'node:fs';
import { mkdir, rename, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { LoupeError } from '../../lib/errors.js';
import { fsyncDir, sha256, sha256File, writeFileAtomic } from '../../lib/fsutil.js';
import { silentLogger } from '../../lib/log.js';
import { SPLIT_RULE, splitOf } from '../dataset/split.js';
import type { LabelledImage, SplitName } from '../dataset/types.js';
import type { Box } from '../../contracts/box.js';
import { writeYoloDataset } from '../dataset/yolo-write.js';
import type { LabelStore, StoredLabelRecord } from '../labelstore/types.js';
import { clipBox, gtToBox } from '../../contracts/box.js';
import type { ImageSource } from '../labeling/images.js';
import { dedupeByContent } from './dedupe.js';

/**
 * A data set snapshot as of time T: the APPROVED labels only (latest record per image as of T),
 * split by loupe's rule (`splitOf(id)`, so an image keeps its split in every later snapshot and
 * the gate's test split stays comparable), written as a YOLO folder by the data set writer, with
 * `snapshot.json`: the manifest to keep with the model it trains.
 *
 *   await createSnapshot({ store, images, classes, asOf?, outDir })  → Snapshot
 *
 * One record per image content: images with the same bytes (sha256) under several refs, e.g. a
 * device's upload of a reference photo, would otherwise land in different splits (a test image
 * that is also a training image). The record first seen by the store is kept, the others are
 * left out and listed in `duplicates` (see dedupe.ts). This reads every image, also when the
 * snapshot turns out to exist already (the id depends on which records are kept).
 *
 * The snapshot id comes from the records it contains (the kept ones): sha256 over the class
 * names, the split rule and, per image (sorted by source_ref), its source_ref, event_time,
 * labeling_job and boxes; `snap-` + its first 16 hex digits. The same records give the same id,
 * whatever T was, so re-running a snapshot (a resumed loop) finds the folder `outDir/<id>` and
 * reuses it; a later copy of an image already in it changes nothing, so the folder is reused too
 * (its `duplicates` list what was left out when it was built).
 * The folder is built under a temp name and renamed into place: it is whole or absent.
 */
/**
 * Make `<folder>/data.yaml`'s absolute `path` name `at` (default: the folder itself). It is
 * absolute because ultralytics resolves a relative one against its own datasets folder or the
 * working directory, not the file's. So a folder that moved (a loop home moved or copied to
 * another machine, then resumed: the snapshot folder is found again and reused) is pointed at
 * where it is now; otherwise training would read the images of the old place.
 */
export async function pointDataYamlAt(folder: string, log: Logger, at: string = folder): Promise<void> {
  const file = join(folder, 'data.yaml');
  const yaml = readFileSync(file, 'utf8');
  const was = /^path: (.*)$/m.exec(yaml)?.[1];
  if (was === at) return;
  await writeFileAtomic(file, was === undefined ? `path: ${at}\n${yaml}` : yaml.replace(/^path: .*$/m, () => `path: ${at}`));
  if (folder === at && was !== undefined) log.info({ dir: at, was }, 'snapshot folder has moved: data.yaml points at where it is now');
}

export interface SnapshotOptions {
  store: LabelStore;
  images: ImageSource;
  classes: string[];
  /** Epoch seconds; default now. */
  asOf?: number;
  /** Parent folder; the snapshot is `outDir/<id>`. */
  outDir: string;
  /** Where images fetched from the bucket are kept (default `outDir/.images`). */
  cacheDir?: string;
  log?: Logger;
}

export interface SnapshotRecord {
  id: string;
  source_ref: string;
  event_time: number;
  labeling_job: string;
  split: SplitName;
  boxes: number;
  /** sha256 of the image bytes */
  sha256: string;
}

/** An approved record left out because an image with the same bytes is in the snapshot. */
export interface SnapshotDuplicate {
  sourceRef: string;
  id: string;
  /** source_ref of the record kept for these bytes */
  duplicateOf: string;
  duplicateOfId: string;
  sha256: string;
}

export interface SnapshotManifest {
  snapshot: string;
  asOf: number;
  asOfIso: string;
  classes: string[];
  splitRule: string;
  /** The YOLO writer's data set version (over ids, boxes and names). */
  datasetVersion: string;
  dataYaml: string;
  counts: { images: number; boxes: number; backgrounds: number; train: number; val: number; test: number; duplicates: number };
  records: SnapshotRecord[];
  /** Approved records left out as byte-identical copies of a kept one, by source_ref. */
  duplicates: SnapshotDuplicate[];
}

export interface Snapshot {
  id: string;
  dir: string;
  dataYaml: string;
  manifestPath: string;
  manifest: SnapshotManifest;
  /** false when an identical snapshot was already there and is reused */
  created: boolean;
}

export function snapshotId(classes: readonly string[], records: readonly StoredLabelRecord[]): string {
  const rows = [...records]
    .sort((a, b) => (a.source_ref < b.source_ref ? -1 : a.source_ref > b.source_ref ? 1 : 0))
    .map((r) => [r.source_ref, r.event_time, r.labeling_job, r.annotations.map((b) => [b.class_id, b.left, b.top, b.width, b.height])]);
  return 'snap-' + sha256(JSON.stringify({ classes, splitRule: SPLIT_RULE, rows })).slice(0, 16);
}

export function readSnapshotManifest(dir: string): SnapshotManifest {
  const p = join(dir, 'snapshot.json');
  if (!existsSync(p)) throw new LoupeError('SNAPSHOT_MISSING', 'no snapshot.json here', { input: dir });
  return JSON.parse(readFileSync(p, 'utf8')) as SnapshotManifest;
}

export async function createSnapshot(opts: SnapshotOptions): Promise<Snapshot> {
  const log = opts.log ?? silentLogger;
  const asOf = opts.asOf ?? Date.now() / 1000;
  if (!Number.isFinite(asOf)) throw new LoupeError('SNAPSHOT_BAD_TIME', `asOf must be epoch seconds, got ${asOf}`, { input: 'asOf' });
  if (!opts.classes.length) throw new LoupeError('SNAPSHOT_NO_CLASSES', 'a snapshot needs the class names', { input: 'classes' });
  const approved = await opts.store.latest({ asOf, status: 'APPROVED' });
  if (approved.length === 0)
    throw new LoupeError('SNAPSHOT_EMPTY', `no approved labels as of ${new Date(asOf * 1000).toISOString()}`, { input: 'asOf' });
  // Every approved record must be usable, kept or not (a copy does not hide a bad label).
  const boxesOf = new Map<StoredLabelRecord, Box[]>();
  for (const r of approved) {
    boxesOf.set(
      r,
      r.annotations.map((b, i) => {
        if (b.class_id >= opts.classes.length) {
          throw new LoupeError(
            'SNAPSHOT_BAD_CLASS',
            `box ${i} has class ${b.class_id}, but the snapshot has ${opts.classes.length} class(es)`,
            { input: r.source_ref },
          );
        }
        const c = clipBox(gtToBox(b), r.image_width, r.image_height);
        if (!c) throw new LoupeError('SNAPSHOT_BAD_BOX', `box ${i} has no area inside the image`, { input: r.source_ref });
        return c;
      }),
    );
  }
  const outDir = resolve(opts.outDir);
  const cacheDir = opts.cacheDir ?? join(outDir, '.images');
  const pathOf = new Map<StoredLabelRecord, string>();
  const items: { record: StoredLabelRecord; sha256: string }[] = [];
  for (const r of approved) {
    const p = await opts.images.localPath(r.source_ref, cacheDir);
    pathOf.set(r, p);
    items.push({ record: r, sha256: await sha256File(p) });
  }
  const { kept, duplicates: dups } = await dedupeByContent(items, async (ref) => {
    const h = await opts.store.history(ref);
    return Math.min(...h.map((x) => x.event_time));
  });
  const records = kept.map((k) => k.record);
  const digestOf = new Map(kept.map((k) => [k.record.source_ref, k.sha256]));
  const duplicates: SnapshotDuplicate[] = dups.map((d) => ({
    sourceRef: d.item.record.source_ref,
    id: opts.images.idOf(d.item.record.source_ref),
    duplicateOf: d.keeper.record.source_ref,
    duplicateOfId: opts.images.idOf(d.keeper.record.source_ref),
    sha256: d.item.sha256,
  }));
  if (duplicates.length) log.info({ duplicates: duplicates.length }, 'snapshot: leaving out byte-identical copies of images it holds');

  const id = snapshotId(opts.classes, records);
  const dir = join(outDir, id);
  if (existsSync(join(dir, 'snapshot.json'))) {
    const manifest = readSnapshotManifest(dir);
    // Written before snapshots left copies out: the same id means exactly these records, none left out.
    manifest.duplicates ??= [];
    manifest.counts.duplicates ??= 0;
    log.info({ snapshot: id, dir }, 'snapshot already exists; reusing it');
    await pointDataYamlAt(dir, log);
    return { id, dir, dataYaml: join(dir, 'data.yaml'), manifestPath: join(dir, 'snapshot.json'), manifest, created: false };
  }

  const images: LabelledImage[] = [];
  const seen = new Map<string, string>();
  for (const r of records) {
    const imgId = opts.images.idOf(r.source_ref);
    const dup = seen.get(imgId);
    if (dup)
      throw new LoupeError('SNAPSHOT_DUPLICATE_ID', `two images map to the id ${imgId}: ${dup} and ${r.source_ref}`, {
        input: r.source_ref,
      });
    seen.set(imgId, r.source_ref);
    images.push({ id: imgId, imagePath: pathOf.get(r)!, width: r.image_width, height: r.image_height, boxes: boxesOf.get(r)! });
  }

  await mkdir(outDir, { recursive: true });
  const tmp = join(outDir, `.${id}.building-${randomBytes(4).toString('hex')}`);
  try {
    const written = await writeYoloDataset(opts.classes, images, tmp, { log });
    const sorted = [...records].sort((a, b) => (a.source_ref < b.source_ref ? -1 : 1));
    const recs: SnapshotRecord[] = sorted.map((r) => {
      const imgId = opts.images.idOf(r.source_ref);
      return {
        id: imgId,
        source_ref: r.source_ref,
        event_time: r.event_time,
        labeling_job: r.labeling_job,
        split: splitOf(imgId),
        boxes: r.annotations.length,
        sha256: digestOf.get(r.source_ref)!,
      };
    });
    const counts = {
      images: recs.length,
      boxes: recs.reduce((n, r) => n + r.boxes, 0),
      backgrounds: recs.filter((r) => r.boxes === 0).length,
      ...written.manifest.counts,
      duplicates: duplicates.length,
    };
    const manifest: SnapshotManifest = {
      snapshot: id,
      asOf,
      asOfIso: new Date(asOf * 1000).toISOString(),
      classes: [...opts.classes],
      splitRule: SPLIT_RULE,
      datasetVersion: written.version,
      dataYaml: 'data.yaml',
      counts,
      records: recs,
      duplicates,
    };
    // data.yaml carries an absolute `path`: point it at the final folder before the rename.
    await pointDataYamlAt(tmp, log, dir);
    await writeFileAtomic(join(tmp, 'snapshot.json'), JSON.stringify(manifest, null, 1) + '\n');
    await fsyncDir(tmp);
    try {
      await rename(tmp, dir);
    } catch (e) {
      // Another run built the same snapshot meanwhile: same id, same content, keep theirs.
      if (existsSync(join(dir, 'snapshot.json'))) {
        await rm(tmp, { recursive: true, force: true });
        return {
          id,
          dir,
          dataYaml: join(dir, 'data.yaml'),
          manifestPath: join(dir, 'snapshot.json'),
          manifest: readSnapshotManifest(dir),
          created: false,
        };
      }
      throw e;
    }
    await fsyncDir(outDir);
    log.info({ snapshot: id, dir, ...counts }, 'snapshot written');
    return { id, dir, dataYaml: join(dir, 'data.yaml'), manifestPath: join(dir, 'snapshot.json'), manifest, created: true };
  } catch (e) {
    await rm(tmp, { recursive: true, force: true });
    throw e;
  }
}
