import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256 } from '../../lib/fsutil.js';
import { splitOf } from '../../cloud/dataset/split.js';
import type { SplitName } from '../../cloud/dataset/types.js';
import { readYoloDataset } from '../../cloud/dataset/yolo-read.js';
import { ImageSource } from '../../cloud/labeling/images.js';
import { openLabelStore, type SqliteLabelStore } from '../../cloud/labelstore/index.js';
import { makeRecord, type LabelStatus } from '../../contracts/label-record.js';
import { createSnapshot, snapshotId } from '../../cloud/snapshot/index.js';

/**
 * Hand-made stores: images under a mapped folder (`s3://b/<dir>/<name>` → `<root>/<dir>/<name>`,
 * id `<dir>/<name>`), some of them byte-identical copies under other names.
 */
describe('snapshots keep one record per image content', () => {
  let dir: string;
  let root: string;
  let images: ImageSource;
  let n = 0;

  /** A name under `folder` whose id falls in `split` (the split rule hashes the id). */
  const nameIn = (folder: string, split: SplitName): string => {
    for (;;) {
      const id = `${folder}/img-${n++}.jpg`;
      if (splitOf(id) === split) return id;
    }
  };
  const jpeg = (seed: number) =>
    sharp({
      create: { width: 64, height: 48, channels: 3, background: { r: (seed * 37) % 256, g: (seed * 91) % 256, b: (seed * 13) % 256 } },
    })
      .jpeg({ quality: 90 })
      .toBuffer();
  const put = (id: string, bytes: Buffer) => {
    mkdirSync(join(root, id.split('/')[0]!), { recursive: true });
    writeFileSync(join(root, id), bytes);
    return `s3://b/${id}`;
  };
  const rec = (ref: string, t: number, status: LabelStatus = 'APPROVED', box = 10) =>
    makeRecord({
      source_ref: ref,
      image_width: 64,
      image_height: 48,
      annotations: [{ class_id: 0, left: box, top: 5, width: 20, height: 20 }],
      event_time: t,
      labeling_job: 'labeling-job/j',
      status,
    });
  const newStore = (name: string) => openLabelStore(join(dir, `${name}.db`));
  const snap = (store: SqliteLabelStore, out = 'snaps') =>
    createSnapshot({ store, images, classes: ['scratch'], asOf: 1e10, outDir: join(dir, out) });
  /** Image bytes of every file in the written YOLO folder, by split. */
  const folderDigests = (dataYaml: string) => {
    const y = readYoloDataset(dataYaml);
    return Object.fromEntries(
      (['train', 'val', 'test'] as const).map((s) => [s, (y.splits[s] ?? []).map((i) => sha256(readFileSync(i.imagePath)))]),
    );
  };

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'snapdup-'));
    root = join(dir, 'img');
    images = new ImageSource({ mappings: [{ refPrefix: 's3://b/', dir: root, idParts: 2 }] });
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('leaves out a copy that would land in another split, keeping the first seen; the id is that of the kept records', async () => {
    const a = await jpeg(1);
    const refRef = put(nameIn('bad', 'train'), a);
    const upRef = put(nameIn('incoming', 'test'), a); // the camera's upload of the same photo
    const other = put(nameIn('incoming', 'val'), await jpeg(2));
    const store = newStore('two');
    // the reference record is old (imported history); the upload is ingested, then approved
    await store.append([rec(refRef, 100), rec(other, 200), rec(upRef, 300, 'PENDING')]);
    await store.append([rec(upRef, 400)]);
    const s = await snap(store);
    expect(s.created).toBe(true);
    expect(s.manifest.records.map((r) => r.source_ref)).toEqual([other, refRef].sort());
    expect(s.manifest.duplicates).toEqual([
      { sourceRef: upRef, id: upRef.slice(7), duplicateOf: refRef, duplicateOfId: refRef.slice(7), sha256: sha256(a) },
    ]);
    expect(s.manifest.counts).toMatchObject({ images: 2, train: 1, val: 1, test: 0, duplicates: 1 });
    expect(s.manifest.records.find((r) => r.source_ref === refRef)!.sha256).toBe(sha256(a));
    const d = folderDigests(s.dataYaml);
    expect(d.test).toEqual([]);
    expect(new Set([...d.train!, ...d.val!, ...d.test!]).size).toBe(2);
    // The id is a pure function of the kept records: the same as a store that never saw the copy.
    const only = newStore('two-only');
    await only.append([rec(refRef, 100), rec(other, 200)]);
    const s2 = await snap(only, 'snaps-only');
    expect(s2.id).toBe(s.id);
    expect(s.id).toBe(snapshotId(['scratch'], await only.latest()));
    expect(s2.manifest.duplicates).toEqual([]);
    expect(s2.manifest.counts.duplicates).toBe(0);
    // ... and a copy approved after that snapshot was written changes nothing: the folder is reused.
    await only.append([rec(upRef, 400)]);
    const s3 = await snap(only, 'snaps-only');
    expect(s3).toMatchObject({ id: s2.id, created: false, dir: s2.dir });
    await Promise.all([store.close(), only.close()]);
  });

  it('keeps one of three copies: the first seen, ties broken by source_ref; relabelling the kept one does not move it', async () => {
    const bytes = await jpeg(3);
    const [x, y, z] = [
      put(nameIn('incoming', 'train'), bytes),
      put(nameIn('incoming', 'val'), bytes),
      put(nameIn('incoming', 'test'), bytes),
    ];
    const refs = [x, y, z].sort();
    const store = newStore('three');
    // all three first seen at the same time (one ingest run) → the lowest source_ref is kept
    await store.append(refs.map((r) => rec(r, 1000, 'PENDING')));
    await store.append([rec(refs[2]!, 1100), rec(refs[1]!, 1200), rec(refs[0]!, 1300)]);
    const s = await snap(store);
    expect(s.manifest.records.map((r) => r.source_ref)).toEqual([refs[0]]);
    expect(s.manifest.duplicates.map((d) => [d.sourceRef, d.duplicateOf])).toEqual([
      [refs[1], refs[0]],
      [refs[2], refs[0]],
    ]);
    expect(s.manifest.counts).toMatchObject({ images: 1, duplicates: 2 });
    // The kept image relabelled later (its latest record is now the newest of the three): it stays.
    await store.append([rec(refs[0]!, 2000, 'APPROVED', 12)]);
    const again = await snap(store);
    expect(again.id).not.toBe(s.id); // other boxes → another snapshot
    expect(again.manifest.records.map((r) => r.source_ref)).toEqual([refs[0]]);
    expect(again.manifest.duplicates.map((d) => d.sourceRef)).toEqual([refs[1], refs[2]]);
    await store.close();
  });

  it('only approved records compete: a rejected copy leaves the approved original alone, and the reverse', async () => {
    const b1 = await jpeg(4);
    const orig = put(nameIn('bad', 'train'), b1);
    const copy = put(nameIn('incoming', 'test'), b1);
    const store = newStore('rejected');
    await store.append([rec(orig, 100), rec(copy, 300, 'REJECTED')]);
    const s = await snap(store);
    expect(s.manifest.records.map((r) => r.source_ref)).toEqual([orig]);
    expect(s.manifest.duplicates).toEqual([]);

    // original rejected, its copy approved: the copy is the one image of those bytes
    const b2 = await jpeg(5);
    const orig2 = put(nameIn('bad', 'train'), b2);
    const copy2 = put(nameIn('incoming', 'test'), b2);
    await store.append([rec(orig2, 100, 'REJECTED'), rec(copy2, 300)]);
    const t = await snap(store);
    expect(t.manifest.records.map((r) => r.source_ref)).toEqual([orig, copy2].sort());
    expect(t.manifest.duplicates).toEqual([]);
    expect(folderDigests(t.dataYaml).test).toEqual([sha256(b2)]);
    await store.close();
  });

  it('still refuses a bad label on a copy it leaves out', async () => {
    const b = await jpeg(6);
    const orig = put(nameIn('bad', 'train'), b);
    const copy = put(nameIn('incoming', 'val'), b);
    const store = newStore('badcopy');
    await store.append([rec(orig, 100), { ...rec(copy, 300), annotations: [{ class_id: 3, left: 1, top: 1, width: 5, height: 5 }] }]);
    await expect(snap(store)).rejects.toThrow(/box 0 has class 3, but the snapshot has 1 class/);
    await store.close();
  });
});
