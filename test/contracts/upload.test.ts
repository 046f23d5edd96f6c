import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../lib/log.js';
import { isLoupeError } from '../../lib/errors.js';
import type { ResultMessage } from '../../contracts/topics.js';
import { parseUploadSidecar, uploadSidecar, UPLOAD_SCHEMA_V1, type UploadSidecar } from '../../contracts/upload.js';
import { uploaderConfigSchema } from '../../components/uploader/config.js';
import { RateLimiter } from '../../components/uploader/rate-limit.js';
import { Selector } from '../../components/uploader/selector.js';
import { Spool } from '../../components/uploader/spool.js';

/** The upload sidecar is written by loupe.Uploader and read by ingest through one schema. */
describe('contracts/upload: loupe.upload/1, one codec for writer and reader', () => {
  let dir: string;
  let written: UploadSidecar;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'loupe-upload-'));
    const jpeg = join(dir, 'frame.jpg');
    await sharp({ create: { width: 120, height: 80, channels: 3, background: { r: 90, g: 90, b: 90 } } })
      .jpeg()
      .toFile(jpeg);
    // The real writer: the uploader's selector spools the image and its sidecar.
    const cfg = uploaderConfigSchema.parse({ bucket: 'loupe', dedup: { enabled: false } });
    const spool = new Spool(join(dir, 'spool'), 10_000_000);
    await spool.open();
    const selector = new Selector(cfg, 'line-1', spool, new RateLimiter({}, join(dir, 'rate.json')), silentLogger);
    const result: ResultMessage = {
      frameId: 'cam1-r1-0000007',
      camera: 'cam1',
      seq: 7,
      time: '2024-03-05T10:00:00.000Z',
      trigger: 'ipc',
      serial: 'SN-1',
      path: jpeg,
      bytes: 1,
      width: 120,
      height: 80,
      verdict: 'fail',
      reasons: ['defect'],
      detections: [{ xyxy: [10, 20, 60, 70], conf: 0.8, cls: 0, name: 'scratch' }],
      model: { name: 'metal-tags', version: '1.0.0', sha256: 'b'.repeat(64) },
      latencyMs: 3,
      inferMs: 2,
    };
    expect(await selector.handle(result)).toBe(true);
    const rec = (await readdir(join(dir, 'spool'))).find((n) => n.endsWith('.json'))!;
    written = (JSON.parse(await readFile(join(dir, 'spool', rec), 'utf8')) as { sidecar: UploadSidecar }).sidecar;
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('what the uploader writes is what ingest reads', () => {
    expect(written.schema).toBe(UPLOAD_SCHEMA_V1);
    const read = parseUploadSidecar(JSON.stringify(written, null, 1), 's3://loupe/x.json');
    expect(read).toEqual(written);
    expect(read).toMatchObject({
      device: 'line-1',
      camera: 'cam1',
      frameId: 'cam1-r1-0000007',
      serial: 'SN-1',
      reason: 'failed',
      verdict: 'fail',
      image: { width: 120, height: 80, contentType: 'image/jpeg' },
    });
    expect(read.detections).toEqual([{ xyxy: [10, 20, 60, 70], conf: 0.8, cls: 0, name: 'scratch' }]);
  });

  const refusal = (text: string) => {
    try {
      parseUploadSidecar(text, 's3://loupe/incoming/f.json');
    } catch (e) {
      if (isLoupeError(e)) return { code: e.code, message: e.message };
      throw e;
    }
    throw new Error('accepted');
  };

  it('refuses a version it does not read, or none, naming the file and the value', () => {
    expect(refusal(JSON.stringify({ ...written, schema: 'loupe.upload/2' }))).toEqual({
      code: 'SIDECAR_SCHEMA',
      message:
        's3://loupe/incoming/f.json: schema "loupe.upload/2" is not one this loupe reads (loupe.upload/1); upgrade the cloud side first',
    });
    const { schema: _s, ...none } = written;
    expect(refusal(JSON.stringify(none))).toEqual({
      code: 'SIDECAR_SCHEMA',
      message: 's3://loupe/incoming/f.json: has no "schema" field (this loupe reads loupe.upload/1)',
    });
    expect(refusal(JSON.stringify({ ...written, schema: 1 })).code).toBe('SIDECAR_SCHEMA');
  });

  it('refuses a v1 sidecar that breaks the schema, naming the field', () => {
    expect(refusal('{not json').code).toBe('SIDECAR_BAD');
    expect(refusal('[]').message).toMatch(/f\.json: is not a JSON object/);
    expect(refusal(JSON.stringify({ ...written, time: 'yesterday' })).message).toMatch(/f\.json: time: /);
    expect(refusal(JSON.stringify({ ...written, detections: [{ xyxy: [1, 2, 3], conf: 1, cls: 0, name: 'a' }] })).message).toMatch(
      /f\.json: detections\.0\.xyxy: /,
    );
    // a field v1 does not have is a different contract: refused, not silently dropped
    expect(refusal(JSON.stringify({ ...written, origin: '/cams/a.jpg' })).message).toMatch(/f\.json: sidecar: Unrecognized key.*origin/);
  });

  it('the writer refuses what the reader would refuse', () => {
    const { schema: _s, ...fields } = written;
    expect(() => uploadSidecar({ ...fields, image: { ...fields.image, sha256: 'not-a-digest' } })).toThrow(
      /upload sidecar of frame cam1-r1-0000007: image\.sha256: /,
    );
  });
});
