import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { datasetDir } from '../../lib/paths.js';
import { startObjectStore, type ObjectStore } from '../../embedded/objectstore/index.js';
import { ingestIncoming } from '../../cloud/ingest/index.js';
import { openLabelStore, type SqliteLabelStore } from '../../cloud/labelstore/index.js';
import { uploadSidecar } from '../../contracts/upload.js';

describe('ingest from the real embedded S3 store', () => {
  let dir: string;
  let os: ObjectStore;
  let s3: S3Client;
  let store: SqliteLabelStore;
  const bad = join(datasetDir('metal-tags'), 'bad');
  const files = readdirSync(bad).sort().slice(0, 7);

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ing-'));
    os = await startObjectStore({ dir: join(dir, 's3'), buckets: ['loupe'] });
    s3 = new S3Client(os.clientConfig);
    store = openLabelStore(join(dir, 'labels.db'));
  });
  afterAll(async () => {
    await store.close();
    s3.destroy();
    await os.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const put = (Key: string, Body: string | Buffer) => s3.send(new PutObjectCommand({ Bucket: 'loupe', Key, Body }));
  // What loupe.Uploader writes (contracts/upload.ts), for the metal-tags photo `files[i]` (450x300).
  const sidecar = (i: number, extra: Record<string, unknown> = {}) => {
    const jpg = readFileSync(join(bad, files[i]!));
    const s = uploadSidecar({
      device: 'line-1',
      camera: 'cam0',
      frameId: `f${i}`,
      seq: i,
      time: `2024-05-0${i + 1}T10:00:00.000Z`,
      trigger: 'interval',
      reason: 'failed',
      reasons: ['defect'],
      verdict: 'fail',
      model: { name: 'metal-tags', version: '1.0.0', sha256: 'a'.repeat(64) },
      image: {
        key: key(i, 'jpg'),
        width: 450,
        height: 300,
        originalWidth: 450,
        originalHeight: 300,
        bytes: jpg.length,
        sha256: createHash('sha256').update(jpg).digest('hex'),
        contentType: 'image/jpeg',
      },
      detections: [
        { xyxy: [10, 20, 110.4, 80], conf: 0.91, cls: 0, name: 'scratch' },
        { xyxy: [440, 290, 460, 310], conf: 0.3, cls: 0, name: 'scratch' },
      ],
    });
    return JSON.stringify({ ...s, ...extra });
  };
  const key = (i: number, ext: string) => `incoming/line-1/2024/05/0${i + 1}/f${i}.${ext}`;
  const opts = () => ({ s3, bucket: 'loupe', store, statePath: join(dir, 'state', 'ingest.json'), now: () => 1_700_000_000 });

  it('records new uploads once, with pre-annotations, waits for missing sidecars, survives a lost watermark', async () => {
    for (const i of [0, 1, 2]) {
      await put(key(i, 'jpg'), readFileSync(join(bad, files[i]!)));
      await put(key(i, 'json'), sidecar(i));
    }
    await put(key(3, 'jpg'), readFileSync(join(bad, files[3]!))); // sidecar not there yet
    await put('incoming/line-1/notes.txt', 'ignored');

    const first = await ingestIncoming(opts());
    expect(first).toMatchObject({ considered: 3, recorded: 3, alreadyKnown: 0, incomplete: 1, invalid: [] });
    const r0 = (await store.latest()).find((r) => r.source_ref === `s3://loupe/${key(0, 'jpg')}`)!;
    expect(r0).toMatchObject({
      image_width: 450,
      image_height: 300,
      status: 'PENDING',
      labeling_job: '',
      device: 'line-1',
      capture_time: Date.parse('2024-05-01T10:00:00.000Z') / 1000,
      model_version: '1.0.0',
      event_time: 1_700_000_000,
    });
    // second detection clipped to the 450x300 image: 440..450 x 290..300
    expect(r0.annotations).toEqual([
      { class_id: 0, left: 10, top: 20, width: 100.4, height: 60, confidence: 0.91 },
      { class_id: 0, left: 440, top: 290, width: 10, height: 10, confidence: 0.3 },
    ]);
    expect(r0.meta).toEqual({
      sidecar: `s3://loupe/${key(0, 'json')}`,
      camera: 'cam0',
      frame: 'f0',
      reason: 'failed',
      verdict: 'fail',
      names: { 0: 'scratch' },
    });

    const again = await ingestIncoming(opts());
    expect(again.recorded).toBe(0);
    expect(store.count()).toBe(3);

    await put(key(3, 'json'), sidecar(3));
    // One sidecar per way to be wrong: a bad field, a version this code does not read, no version at all.
    for (const i of [4, 5, 6]) await put(key(i, 'jpg'), readFileSync(join(bad, files[i]!)));
    await put(key(4, 'json'), sidecar(4, { detections: 'not a list' }));
    await put(key(5, 'json'), sidecar(5, { schema: 'loupe.upload/2' }));
    const { schema: _s, ...unversioned } = JSON.parse(sidecar(6)) as Record<string, unknown>;
    await put(key(6, 'json'), JSON.stringify(unversioned));
    const third = await ingestIncoming(opts());
    expect(third.recorded).toBe(1);
    expect(third.invalid.map((x) => x.key)).toEqual([key(4, 'jpg'), key(5, 'jpg'), key(6, 'jpg')]);
    expect(third.invalid[0]!.reason).toMatch(/f4\.json: detections: /);
    expect(third.invalid[1]!.reason).toBe(
      `s3://loupe/${key(5, 'json')}: schema "loupe.upload/2" is not one this loupe reads (loupe.upload/1); upgrade the cloud side first`,
    );
    expect(third.invalid[2]!.reason).toBe(`s3://loupe/${key(6, 'json')}: has no "schema" field (this loupe reads loupe.upload/1)`);
    expect(store.count()).toBe(4);

    // A crash after appending but before saving the watermark: nothing is recorded twice.
    rmSync(join(dir, 'state'), { recursive: true });
    const lost = await ingestIncoming(opts());
    expect(lost).toMatchObject({ recorded: 0, alreadyKnown: 4 });
    expect(store.count()).toBe(4);
    expect(JSON.parse(readFileSync(join(dir, 'state', 'ingest.json'), 'utf8')).watermark).toEqual(lost.watermark);
  });
});
