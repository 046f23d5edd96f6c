import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LoupeError } from '../../lib/errors.js';
import { datasetDir } from '../../lib/paths.js';
import { cameraConfigSchema } from '../../components/camera/config.js';
import { FrameStore } from '../../components/camera/frame-store.js';
import { JpegSplitter } from '../../components/camera/jpeg-splitter.js';
import { Trigger } from '../../components/camera/triggers.js';
import { inferenceConfigSchema } from '../../components/inference/config.js';
import { BoundedQueue } from '../../components/inference/queue.js';
import { InferenceStats, pct } from '../../components/inference/telemetry.js';
import { applyRoi, verdict } from '../../components/inference/verdict.js';
import { parseConfig } from '../../components/ipc/config.js';
import type { Detection, ResultMessage } from '../../contracts/topics.js';
import { uploaderConfigSchema } from '../../components/uploader/config.js';
import { Deduper, dhash, exactHash, hamming, phash } from '../../components/uploader/dedup.js';
import { prepareImage } from '../../components/uploader/image.js';
import { createPolicy, select } from '../../components/uploader/policies.js';
import { RateLimiter } from '../../components/uploader/rate-limit.js';
import { uploadKeys } from '../../components/uploader/selector.js';
import { Spool } from '../../components/uploader/spool.js';

let tmp: string;
let jpeg: Buffer;
let jpegPath: string;
beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'loupe-edge-u-'));
  const dir = join(datasetDir('metal-tags'), 'bad');
  jpegPath = join(dir, (await readdir(dir)).sort()[0]!);
  jpeg = await readFile(jpegPath);
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

const det = (name: string, conf: number, xyxy: [number, number, number, number] = [10, 10, 20, 20], cls = 0): Detection => ({
  xyxy,
  conf,
  cls,
  name,
});
const result = (over: Partial<ResultMessage>): ResultMessage => ({
  frameId: 'cam1-x-0000001',
  camera: 'cam1',
  seq: 1,
  time: '2024-03-05T10:00:00.000Z',
  trigger: 'interval',
  path: jpegPath,
  bytes: 1,
  width: 100,
  height: 100,
  verdict: 'pass',
  reasons: [],
  detections: [],
  model: { name: 'm', version: '1', sha256: 'x' },
  latencyMs: 1,
  inferMs: 1,
  ...over,
});

describe('JPEG stream splitting', () => {
  it('splits concatenated JPEGs, skipping garbage between them and an FFD9 inside an EXIF thumbnail', async () => {
    const a = await sharp({ create: { width: 32, height: 24, channels: 3, background: '#f00' } })
      .jpeg()
      .toBuffer();
    // APP1 segment holding bytes FF D9 (as an embedded thumbnail would): must not end the image.
    const app1Payload = Buffer.from([0x45, 0x78, 0x69, 0x66, 0, 0, 0xff, 0xd8, 0xff, 0xd9, 1, 2]);
    const app1 = Buffer.concat([Buffer.from([0xff, 0xe1]), Buffer.from([0, app1Payload.length + 2]), app1Payload]);
    const b = Buffer.concat([a.subarray(0, 2), app1, a.subarray(2)]);
    const stream = Buffer.concat([Buffer.from('garbage'), a, b, Buffer.from([0, 1, 2]), a]);
    const s = new JpegSplitter();
    const out: Buffer[] = [];
    for (let i = 0; i < stream.length; i += 7) out.push(...s.push(stream.subarray(i, i + 7)));
    expect(out.map((x) => x.length)).toEqual([a.length, b.length, a.length]);
    expect(out[1]!.equals(b)).toBe(true);
    expect(s.skippedBytes).toBe('garbage'.length + 3);
    await sharp(out[1]!).metadata(); // decodable
  });
});

describe('bounded queue', () => {
  it('drops the oldest or the newest by policy and counts drops', async () => {
    const dropped: number[] = [];
    const q = new BoundedQueue<number>(2, 'drop-oldest', (x) => dropped.push(x));
    for (const x of [1, 2, 3, 4]) q.push(x);
    expect([await q.pop(), await q.pop()]).toEqual([3, 4]);
    expect(dropped).toEqual([1, 2]);
    const n = new BoundedQueue<number>(2, 'drop-newest');
    for (const x of [1, 2, 3]) n.push(x);
    expect([await n.pop(), await n.pop(), n.dropped]).toEqual([1, 2, 1]);
    n.push(9);
    n.close();
    expect([await n.pop(), await n.pop()]).toEqual([9, null]);
  });
});

describe('verdict, ROI and telemetry', () => {
  it('applies rules by class, confidence and count; ROI by box centre', () => {
    const dets = [det('scratch', 0.9), det('dent', 0.3, [80, 80, 90, 90], 1)];
    expect(verdict(dets, [{ name: 'any', minConf: 0, minCount: 1 }])).toEqual({ verdict: 'fail', reasons: ['any'] });
    expect(verdict(dets, [{ name: 'dents', classes: ['dent'], minConf: 0.5, minCount: 1 }]).verdict).toBe('pass');
    expect(
      verdict(dets, [
        { name: 'two', minConf: 0, minCount: 3 },
        { name: 'by-id', classes: [1], minConf: 0, minCount: 1 },
      ]),
    ).toEqual({ verdict: 'fail', reasons: ['by-id'] });
    expect(applyRoi(dets, { x1: 0, y1: 0, x2: 0.5, y2: 0.5, units: 'fraction' }, 100, 100).map((d) => d.name)).toEqual(['scratch']);
    expect(applyRoi(dets, { x1: 50, y1: 50, x2: 100, y2: 100, units: 'px' }, 100, 100).map((d) => d.name)).toEqual(['dent']);
  });

  it('reports p50/p95 and per-class defect rates over the window', () => {
    const s = new InferenceStats();
    for (let i = 1; i <= 20; i++) s.record(i, i / 2, i % 4 === 0 ? ['scratch', 'scratch'] : [], i % 4 === 0);
    const snap = s.snapshot(10);
    expect(snap.latencyMs).toEqual({ p50: 10, p95: 19 });
    expect(snap.defectRate).toEqual({ scratch: 0.25 });
    expect(snap.failRate).toBe(0.25);
    expect(snap.fps).toBe(2);
    expect(pct([], 0.5)).toBeNull();
  });
});

describe('configuration validation names the key and value', () => {
  it('rejects bad configurations with LoupeError', () => {
    const bad = () => parseConfig(inferenceConfigSchema, { queue: { max: 0 }, conf: 2 }, 'loupe.Inference');
    expect(bad).toThrow(LoupeError);
    expect(bad).toThrow(/loupe\.Inference configuration: .*queue\.max: .*\(got 0\).*conf: .*\(got 2\)|conf: .*\(got 2\).*queue\.max/);
    expect(() => parseConfig(inferenceConfigSchema, { sessions: 2, sessionThread: 'main' }, 'loupe.Inference')).toThrow(
      /sessions: sessions above 1 need sessionThread 'worker'.*\(got 2\)/,
    );
    expect(() => parseConfig(inferenceConfigSchema, { sessions: 0 }, 'loupe.Inference')).toThrow(/sessions: .*\(got 0\)/);
    expect(parseConfig(inferenceConfigSchema, { sessions: 2 }, 'loupe.Inference')).toMatchObject({ sessions: 2, sessionThread: 'worker' });
    expect(() =>
      parseConfig(cameraConfigSchema, { cameras: [{ name: 'c 1', source: { type: 'folder', path: '/x' } }] }, 'loupe.Camera'),
    ).toThrow(/cameras\.0\.name: .*\(got "c 1"\)/);
    expect(() => parseConfig(cameraConfigSchema, { cameras: [{ name: 'c1', source: { type: 'webcam' } }] }, 'loupe.Camera')).toThrow(
      /cameras\.0\.source\.type/,
    );
    expect(() => parseConfig(uploaderConfigSchema, { bucket: 'Bad_Bucket' }, 'loupe.Uploader')).toThrow(
      /bucket: must be a valid S3 bucket name \(got "Bad_Bucket"\)/,
    );
    expect(() =>
      parseConfig(uploaderConfigSchema, { bucket: 'ok-bucket', policies: [{ type: 'uncertain', low: 0.6, high: 0.4 }] }, 'loupe.Uploader'),
    ).toThrow(/policies\.0/);
    const ok = parseConfig(uploaderConfigSchema, { bucket: 'ok-bucket' }, 'loupe.Uploader');
    expect(ok.spool.maxBytes).toBe(512 * 1024 * 1024);
  });
});

describe('upload policies', () => {
  it('selects failed, uncertain, chosen classes and a random share of passes, reporting the highest priority', () => {
    let rnd = 0.5;
    const policies = [
      createPolicy({ type: 'failed' }),
      createPolicy({ type: 'uncertain', low: 0.25, high: 0.5 }),
      createPolicy({ type: 'classes', classes: ['crack'], minConf: 0.1 }),
      createPolicy({ type: 'random', share: 0.1 }, () => rnd),
    ];
    expect(select(policies, result({ verdict: 'fail', detections: [det('x', 0.3)] }))).toEqual({
      reason: 'failed',
      reasons: ['failed', 'uncertain'],
      priority: 3,
    });
    expect(select(policies, result({ detections: [det('x', 0.3)] }))?.reason).toBe('uncertain');
    expect(select(policies, result({ detections: [det('crack', 0.2)] }))?.reason).toBe('classes:crack');
    expect(select(policies, result({}))).toBeUndefined();
    rnd = 0.05;
    expect(select(policies, result({}))?.reason).toBe('random');
    expect(select(policies, result({ verdict: 'error' }))).toBeUndefined();
  });

  it('derives idempotent keys from thing, capture date and frame id', () => {
    expect(uploadKeys('incoming', 'line-1', { frameId: 'cam1-abc-0000042', time: '2024-03-05T23:59:59.000Z' })).toEqual({
      imageKey: 'incoming/line-1/2024/03/05/cam1-abc-0000042.jpg',
      sidecarKey: 'incoming/line-1/2024/03/05/cam1-abc-0000042.json',
    });
  });
});

describe('rate limits', () => {
  it('enforces per-minute, per-hour and per-day windows and keeps the day across restarts', async () => {
    const file = join(tmp, 'limits.json');
    const rl = new RateLimiter({ perMinute: 2, perHour: 3, perDay: 4 }, file);
    const t = Date.parse('2024-01-01T00:00:00Z');
    expect(await rl.take(t)).toBeUndefined();
    expect(await rl.take(t + 1)).toBeUndefined();
    expect(await rl.take(t + 2)).toBe('perMinute');
    expect(await rl.take(t + 61_000)).toBeUndefined();
    expect(await rl.take(t + 122_000)).toBe('perHour');
    const again = new RateLimiter({ perMinute: 2, perHour: 3, perDay: 4 }, file);
    await again.load();
    expect(await again.take(t + 3_700_000)).toBeUndefined();
    expect(await again.take(t + 3_800_000)).toBe('perDay');
    expect(await again.take(t + 86_400_000 + 10)).toBeUndefined();
  });
});

describe('perceptual de-duplication', () => {
  it('finds near-identical frames close and different frames far (dHash and pHash)', async () => {
    const brighter = await sharp(jpeg).modulate({ brightness: 1.04 }).jpeg({ quality: 80 }).toBuffer();
    const dir = join(datasetDir('metal-tags'), 'good');
    const other = await readFile(join(dir, (await readdir(dir)).sort()[3]!));
    for (const h of [dhash, phash]) {
      const a = await h(jpeg);
      expect(hamming(a, await h(brighter))).toBeLessThanOrEqual(3);
      expect(hamming(a, await h(other))).toBeGreaterThan(8);
    }
  });
});

describe('exact de-duplication (dedup.hash "exact")', () => {
  it('matches byte-identical frames only, also where the parts look alike to dHash', async () => {
    const dir = join(datasetDir('metal-tags'), 'bad');
    const names = (await readdir(dir)).sort();
    // Two distinct metal-tags photos that dHash cannot tell apart at the default distance 3.
    const hashes = await Promise.all(names.slice(0, 60).map(async (n) => ({ n, d: await dhash(join(dir, n)) })));
    const pair = hashes.flatMap((a, i) =>
      hashes
        .slice(i + 1)
        .filter((b) => hamming(a.d, b.d) <= 3)
        .map((b) => [a.n, b.n] as const),
    )[0];
    expect(pair, 'a look-alike pair among the first 60 bad/ photos').toBeDefined();
    const [a, b] = pair!.map((n) => join(dir, n));
    const d = new Deduper({ hash: 'exact', maxDistance: 3, window: 8 });
    const ha = (await d.hash(a!)).hash;
    expect(ha).toBe(await exactHash(await readFile(a!))); // path and bytes agree
    await d.remember('cam1', ha);
    expect(d.isDuplicate('cam1', (await d.hash(a!)).hash)).toBe(true); // the same frame again
    expect(d.isDuplicate('cam1', (await d.hash(b!)).hash)).toBe(false); // the look-alike part is new
    const perceptual = new Deduper({ hash: 'dhash', maxDistance: 3, window: 8 });
    await perceptual.remember('cam1', (await perceptual.hash(a!)).hash);
    expect(perceptual.isDuplicate('cam1', (await perceptual.hash(b!)).hash)).toBe(true);
  });
});

describe('de-duplication from the hashes Inference sends (loupe.result/2)', () => {
  it('hashes the pixels the detector decodes; the uploader uses carried hashes and reads no frame for them', async () => {
    const { decodeImage } = await import('../../components/detector/decode.js');
    const { imageHashes } = await import('../../lib/image-hash.js');
    const { Deduper, frameHashes } = await import('../../components/uploader/dedup.js');
    // what Inference computes from its decoded frame is what the uploader computes from the file
    const carried = imageHashes(await decodeImage(jpegPath));
    expect(carried).toEqual(await frameHashes(jpegPath));
    expect(carried.dhash).toMatch(/^[0-9a-f]{16}$/);
    const d = new Deduper({ hash: 'dhash', maxDistance: 3, window: 8 });
    // a frame that no longer exists: carried hashes need no read
    const fromResult = await d.hash(join(tmp, 'gone.jpg'), carried);
    expect(fromResult).toEqual({ hash: BigInt(`0x${carried.dhash}`), decoded: false });
    await expect(d.hash(join(tmp, 'gone.jpg'))).rejects.toThrow(/gone\.jpg: image file not found/);
    expect(await d.hash(jpegPath)).toEqual({ hash: BigInt(`0x${carried.dhash}`), decoded: true });
    const p = new Deduper({ hash: 'phash', maxDistance: 3, window: 8 });
    expect((await p.hash(jpegPath, carried)).hash).toBe(BigInt(`0x${carried.phash}`));
  });

  it('keeps a fitting JPEG byte for byte from the sizes the detector reported, without opening it as an image', async () => {
    // not a decodable JPEG past its first bytes: only the fast path can take it as it is
    const fake = join(tmp, 'fake.jpg');
    const bytes = Buffer.concat([Buffer.from([0xff, 0xd8, 0xff, 0xe0]), Buffer.alloc(100, 7)]);
    await writeFile(fake, bytes);
    const kept = await prepareImage(
      fake,
      { width: 450, height: 300, detections: [] },
      { maxWidth: 4096, maxHeight: 4096, jpegQuality: 90, maxBytes: 1 << 20, reencode: false },
    );
    expect(kept).toMatchObject({ width: 450, height: 300 });
    expect(kept.data.equals(bytes)).toBe(true);
  });
});

describe('image limits', () => {
  it('keeps a JPEG that fits byte for byte, and resizes one that does not, scaling the boxes', async () => {
    const meta = await sharp(jpeg).metadata();
    const w = meta.width!;
    const h = meta.height!;
    const src = { width: w, height: h, detections: [det('x', 0.9, [0, 0, w, h])] };
    const same = await prepareImage(jpegPath, src, {
      maxWidth: 9999,
      maxHeight: 9999,
      jpegQuality: 90,
      maxBytes: 10_000_000,
      reencode: false,
    });
    expect(same.data.equals(jpeg)).toBe(true);
    const small = await prepareImage(jpegPath, src, {
      maxWidth: Math.floor(w / 4),
      maxHeight: 9999,
      jpegQuality: 80,
      maxBytes: 10_000_000,
      reencode: false,
    });
    const m2 = await sharp(small.data).metadata();
    expect(m2.width).toBe(Math.floor(w / 4));
    expect(small.detections[0]!.xyxy[2]).toBeCloseTo(m2.width!, 0);
    expect(small.detections[0]!.xyxy[3]).toBeCloseTo(m2.height!, 0);
    const tiny = await prepareImage(jpegPath, src, { maxWidth: 9999, maxHeight: 9999, jpegQuality: 90, maxBytes: 20_000, reencode: true });
    expect(tiny.data.length).toBeLessThanOrEqual(20_000);
  });
});

describe('durable spool', () => {
  const rec = (frameId: string, priority: number, createdAt: number) => ({
    frameId,
    camera: 'cam1',
    priority,
    reason: `p${priority}`,
    createdAt,
    imageKey: `incoming/t/${frameId}.jpg`,
    sidecarKey: `incoming/t/${frameId}.json`,
    sidecar: { frameId },
  });

  it('drops half-written items at open and keeps committed ones', async () => {
    const dir = join(tmp, 'spool1');
    const s = new Spool(dir, 10_000_000);
    await s.open();
    expect((await s.add(rec('a', 3, 1), jpeg)).added).toBe(true);
    // What a kill -9 between the image and its record leaves: an image without a record, and a temp file.
    await writeFile(join(dir, '1-b.jpg'), jpeg.subarray(0, 100));
    await writeFile(join(dir, '.1-c.jpg.abc.tmp'), 'x');
    const s2 = new Spool(dir, 10_000_000);
    expect(await s2.open()).toEqual({ loaded: 1, removed: 2 });
    expect((await readdir(dir)).sort()).toEqual([expect.stringMatching(/-a\.jpg$/), expect.stringMatching(/-a\.json$/)]);
    const it = s2.next()!;
    expect(it.frameId).toBe('a');
    expect((await readFile(s2.imagePath(it))).equals(jpeg)).toBe(true);
    await s2.remove(it.id);
    expect(await readdir(dir)).toEqual([]);
  });

  it('evicts random before uncertain before defects, oldest first, and refuses what is less important than all', async () => {
    const dir = join(tmp, 'spool2');
    const one = jpeg.length + 400;
    const s = new Spool(dir, one * 3);
    await s.open();
    await s.add(rec('defect1', 3, 1), jpeg);
    await s.add(rec('random1', 1, 2), jpeg);
    await s.add(rec('uncertain1', 2, 3), jpeg);
    const r1 = await s.add(rec('defect2', 3, 4), jpeg);
    expect(r1.added && r1.evicted.map((e) => e.frameId)).toEqual(['random1']);
    const r2 = await s.add(rec('defect3', 3, 5), jpeg);
    expect(r2.evicted.map((e) => e.frameId)).toEqual(['uncertain1']);
    const r3 = await s.add(rec('random2', 1, 6), jpeg);
    expect(r3).toEqual({ added: false, reason: 'no-room', evicted: [] });
    expect([s.next()!.frameId, s.pending]).toEqual(['defect1', 3]);
    expect((await s.add(rec('defect1', 3, 7), jpeg)).added).toBe(false);
  });
});

describe('camera pieces', () => {
  it('bounds the frame store by count and bytes, deleting the oldest', async () => {
    const fs = new FrameStore(join(tmp, 'frames'), 3, 1_000_000);
    await fs.init();
    const paths = [];
    for (let i = 0; i < 5; i++) paths.push(await fs.put('cam1', `f${i}.jpg`, Buffer.alloc(10)));
    expect((await readdir(join(tmp, 'frames', 'cam1'))).sort()).toEqual(['f2.jpg', 'f3.jpg', 'f4.jpg']);
    expect(fs.evicted).toBe(2);
    const byBytes = new FrameStore(join(tmp, 'frames2'), 100, 25);
    await byBytes.init();
    for (let i = 0; i < 4; i++) await byBytes.put('c', `f${i}.jpg`, Buffer.alloc(10));
    expect((await readdir(join(tmp, 'frames2', 'c'))).sort()).toEqual(['f2.jpg', 'f3.jpg']);
  });

  it('interval triggers keep their rate; external triggers queue with their serial', async () => {
    const t = new Trigger({ type: 'interval', fps: 20 });
    const t0 = Date.now();
    for (let i = 0; i < 6; i++) await t.wait();
    expect(Date.now() - t0).toBeGreaterThanOrEqual(240);
    const ext = new Trigger({ type: 'mqtt' });
    ext.fire('SN-1');
    expect(await ext.wait()).toEqual({ kind: 'mqtt', serial: 'SN-1' });
    const pending = ext.wait();
    ext.fire();
    expect(await pending).toEqual({ kind: 'mqtt' });
    ext.close();
    expect(await ext.wait()).toBeNull();
  });
});
