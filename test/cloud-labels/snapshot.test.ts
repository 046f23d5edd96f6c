import { S3Client } from '@aws-sdk/client-s3';
import sharp from 'sharp';
import { existsSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256 } from '../../lib/fsutil.js';
import { datasetDir } from '../../lib/paths.js';
import { startObjectStore, type ObjectStore } from '../../embedded/objectstore/index.js';
import { splitOf } from '../../cloud/dataset/split.js';
import { readYoloDataset } from '../../cloud/dataset/yolo-read.js';
import { ingestIncoming } from '../../cloud/ingest/index.js';
import { ImageSource, metalTagsMapping } from '../../cloud/labeling/images.js';
import { Labeling } from '../../cloud/labeling/jobs.js';
import { runSimulatedVerifier, runSimulatedWorkforce, truthFromStore, type TruthSource } from '../../cloud/labeling/workforce.js';
import { putUpload } from '../helpers/uploads.js';
import { importFeatureStoreCsv, openLabelStore, type SqliteLabelStore } from '../../cloud/labelstore/index.js';
import { createSnapshot, readSnapshotManifest } from '../../cloud/snapshot/index.js';

describe('uploads → ingest → simulated labelling with verification → snapshot as of T', () => {
  let dir: string;
  let os: ObjectStore;
  let s3: S3Client;
  let store: SqliteLabelStore;
  let images: ImageSource;
  const metal = datasetDir('metal-tags');
  const HISTORY_END = 1657269941; // an event_time from labels.csv; the newest is at least this

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'snap-'));
    os = await startObjectStore({ dir: join(dir, 's3'), buckets: ['loupe'] });
    s3 = new S3Client(os.clientConfig);
    store = openLabelStore(join(dir, 'labels.db'));
    images = new ImageSource({ s3, mappings: [metalTagsMapping(metal)] });
    await importFeatureStoreCsv(store, join(metal, 'labels.csv'));
  });
  afterAll(async () => {
    await store.close();
    s3.destroy();
    await os.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('snapshots the reference history with the shipped model splits, reproducibly', async () => {
    const newest = Math.max(...(await store.latest()).map((r) => r.event_time));
    expect(newest).toBeGreaterThanOrEqual(HISTORY_END);
    const out = join(dir, 'snapshots');
    const s1 = await createSnapshot({ store, images, classes: ['scratch'], asOf: newest, outDir: out });
    expect(s1.created).toBe(true);
    // 5 of the 7 good/ images have no boxes in labels.csv (2 carry boxes in the reference labels)
    expect(s1.manifest.counts).toEqual({ images: 235, boxes: 482, backgrounds: 5, train: 163, val: 37, test: 35, duplicates: 0 });
    expect(s1.id).toMatch(/^snap-[0-9a-f]{16}$/);
    const yolo = readYoloDataset(s1.dataYaml);
    expect(yolo.root).toBe(s1.dir);
    expect(yolo.splits.test!.length).toBe(35);
    expect(
      yolo.splits.train!.reduce((n, i) => n + i.labels.length, 0) +
        yolo.splits.val!.reduce((n, i) => n + i.labels.length, 0) +
        yolo.splits.test!.reduce((n, i) => n + i.labels.length, 0),
    ).toBe(482);
    expect(s1.manifest.records.every((r) => r.split === splitOf(r.id) && /^(bad|good)\//.test(r.id))).toBe(true);
    // Same records (a later T with nothing new) → same id, reused, nothing rebuilt.
    const s2 = await createSnapshot({ store, images, classes: ['scratch'], asOf: newest + 1000, outDir: out });
    expect(s2).toMatchObject({ id: s1.id, created: false, dir: s1.dir });
    expect(readSnapshotManifest(s1.dir).snapshot).toBe(s1.id);
    // Earlier T: fewer records, another id.
    const early = await createSnapshot({ store, images, classes: ['scratch'], asOf: 1657199072, outDir: out });
    expect(early.id).not.toBe(s1.id);
    expect(early.manifest.counts.images).toBeLessThan(235);
    await expect(createSnapshot({ store, images, classes: ['scratch'], asOf: 1, outDir: out })).rejects.toThrow(
      /asOf: no approved labels as of 1970/,
    );
    expect(readdirSync(out).filter((f) => f.startsWith('.') && f !== '.images')).toEqual([]); // no half-built folders
  });

  it('a snapshot folder that moved (a moved loop home) is reused with data.yaml pointing at where it is now', async () => {
    const asOf = 1657199072;
    const home1 = join(dir, 'home-before');
    const s1 = await createSnapshot({ store, images, classes: ['scratch'], asOf, outDir: join(home1, 'snapshots') });
    expect(readFileSync(s1.dataYaml, 'utf8').match(/^path: (.*)$/m)?.[1]).toBe(s1.dir);
    // The home moves (the old place is gone, so nothing can be read from it by accident).
    const home2 = join(dir, 'home-after');
    renameSync(home1, home2);
    const out2 = join(home2, 'snapshots');
    const s2 = await createSnapshot({ store, images, classes: ['scratch'], asOf, outDir: out2 });
    expect(s2).toMatchObject({ id: s1.id, created: false, dir: join(out2, s1.id) });
    expect(readFileSync(s2.dataYaml, 'utf8').match(/^path: (.*)$/m)?.[1]).toBe(s2.dir);
    const yolo = readYoloDataset(s2.dataYaml);
    expect(yolo.root).toBe(s2.dir);
    const all = [...yolo.splits.train!, ...yolo.splits.val!, ...yolo.splits.test!];
    expect(all.length).toBe(s1.manifest.counts.images);
    expect(all.every((i) => i.imagePath.startsWith(s2.dir + '/') && existsSync(i.imagePath))).toBe(true);
    // Reused again where it is: nothing to rewrite, the file is left as it is.
    const before = statSync(s2.dataYaml).mtimeMs;
    await createSnapshot({ store, images, classes: ['scratch'], asOf, outDir: out2 });
    expect(statSync(s2.dataYaml).mtimeMs).toBe(before);
  });

  it('takes newly approved uploads into the next snapshot, never pending or rejected ones, nor copies of images it holds', async () => {
    const bad = readdirSync(join(metal, 'bad')).sort();
    const picked = bad.filter((f) => f.includes('cropped')).slice(0, 6);
    for (const [i, f] of picked.entries()) {
      const key = `incoming/line-1/2024/06/01/frame-${i}`;
      // frame-0 is the reference photo byte for byte; the others are new photos of the same parts (re-encoded)
      const raw = readFileSync(join(metal, 'bad', f));
      const body = i === 0 ? raw : await sharp(raw).jpeg({ quality: 92 }).toBuffer();
      await putUpload(s3, 'loupe', key, body, { device: 'line-1', camera: 'cam0', seq: i });
    }
    let now = 1_800_000_000;
    const ing = await ingestIncoming({ s3, bucket: 'loupe', store, statePath: join(dir, 'ingest.json'), now: () => now });
    expect(ing.recorded).toBe(6);
    const lab = new Labeling(store, { now: () => ++now });
    await lab.createJob({ name: 'sim-1', classes: ['scratch'], workersPerImage: 3, cap: 5 });
    // The simulated workers know which reference photo each frame shows (the sidecar does not carry the camera's file name).
    const byName = await truthFromStore(store, { refPrefix: 's3://${bucket}/' });
    const truth: TruthSource = (task) =>
      byName({ ...task, meta: { ...task.meta, origin: picked[Number(/frame-(\d+)\.jpg$/.exec(task.sourceRef)![1])] } });
    const work = await runSimulatedWorkforce(lab, 'sim-1', {
      workers: [
        { id: 'sim-a', seed: 11, noise: 0.03, missRate: 0.05 },
        { id: 'sim-b', seed: 12, noise: 0.03, missRate: 0.05 },
        { id: 'sim-c', seed: 13, noise: 0.03, missRate: 0.05, falsePositiveRate: 0.2 },
      ],
      truth,
    });
    expect(work.submitted).toBe(15);
    const verdicts = await runSimulatedVerifier(lab, 'sim-1', { id: 'sim-verifier', truth });
    expect(verdicts.approved + verdicts.rejected).toBe(5);
    expect(verdicts.approved).toBeGreaterThan(0);
    const snap = await createSnapshot({ store, images, classes: ['scratch'], asOf: now, outDir: join(dir, 'snapshots') });
    // frame-0 (approved with these seeds) is the reference image bad/<picked[0]>: left out, listed as its duplicate
    const copyRef = 's3://loupe/incoming/line-1/2024/06/01/frame-0.jpg';
    expect((await store.latest({ sourceRefs: [copyRef] }))[0]!.status).toBe('APPROVED');
    const original = (await store.latest()).find((r) => r.source_ref.endsWith(`/bad/${picked[0]}`))!.source_ref;
    expect(snap.manifest.duplicates).toEqual([
      {
        sourceRef: copyRef,
        id: 'incoming/line-1/2024/06/01/frame-0.jpg',
        duplicateOf: original,
        duplicateOfId: `bad/${picked[0]}`,
        sha256: sha256(readFileSync(join(metal, 'bad', picked[0]!))),
      },
    ]);
    expect(snap.manifest.counts.images).toBe(235 + verdicts.approved - 1);
    expect(snap.manifest.counts.duplicates).toBe(1);
    const incoming = snap.manifest.records.filter((r) => r.id.startsWith('incoming/'));
    expect(incoming).toHaveLength(verdicts.approved - 1);
    expect(new Set(snap.manifest.records.map((r) => r.sha256)).size).toBe(snap.manifest.records.length);
    expect(incoming.every((r) => r.labeling_job === 'labeling-job/sim-1' && r.split === splitOf(r.id))).toBe(true);
    // the sixth upload (beyond the cap) is still PENDING: not in the snapshot
    expect(snap.manifest.records.some((r) => r.id.endsWith('frame-5.jpg'))).toBe(false);
    // the images fetched from the bucket are in the YOLO folder
    const yolo = readYoloDataset(snap.dataYaml);
    const all = [...yolo.splits.train!, ...yolo.splits.val!, ...yolo.splits.test!];
    expect(all.filter((i) => i.imagePath.includes('incoming__line-1')).every((i) => existsSync(i.imagePath))).toBe(true);
    expect(all.length).toBe(235 + verdicts.approved - 1);
  });
});
