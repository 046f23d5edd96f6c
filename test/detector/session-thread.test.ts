import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { datasetDir, projectRoot } from '../../lib/paths.js';
import { Detector } from '../../components/detector/detector.js';
import { ensureBuilt } from '../helpers/edge.js';
import { fixtureModel } from '../helpers/models.js';

// The session in a worker thread (sessionThread: 'worker', what loupe.Inference uses) must give
// exactly what the main-thread session gives, keep frames in order under concurrency, fail clearly
// when its thread dies, and never keep a process alive by itself.

const images: Record<'metal-tags' | 'neu-det', string[]> = { 'metal-tags': [], 'neu-det': [] };
const dets: Detector[] = [];

beforeAll(() => {
  const mt = join(datasetDir('metal-tags'), 'bad');
  images['metal-tags'] = readdirSync(mt)
    .sort()
    .slice(0, 6)
    .map((f) => join(mt, f));
  const neu = join(datasetDir('neu-det'), 'Validation_Images');
  images['neu-det'] = readdirSync(neu)
    .sort()
    .slice(0, 6)
    .map((f) => join(neu, f));
});

afterAll(async () => {
  for (const d of dets) await d.dispose();
});

const loaded = new Map<string, Promise<Detector>>();
/** One detector per model and placement for the whole file (loading is the slow part). */
const load = (name: 'metal-tags' | 'neu-det', sessionThread: 'main' | 'worker', own = false): Promise<Detector> => {
  const key = `${name}/${sessionThread}`;
  if (!own && loaded.has(key)) return loaded.get(key)!;
  const d = fixtureModel(name).then((m) => Detector.load(m, { sessionThread }));
  void d.then((x) => dets.push(x));
  if (!own) loaded.set(key, d);
  return d;
};

describe("sessionThread: 'worker'", () => {
  for (const name of ['metal-tags', 'neu-det'] as const) {
    it(`gives exactly the main thread's boxes, in predict and val mode (${name})`, async () => {
      const main = await load(name, 'main');
      const worker = await load(name, 'worker');
      for (const f of images[name]) {
        expect((await worker.detect(f)).detections).toEqual((await main.detect(f)).detections);
        const [a, b] = [await worker.detectRaw(f, { mode: 'val' }), await main.detectRaw(f, { mode: 'val' })];
        expect([a.xyxy, a.conf, a.cls]).toEqual([b.xyxy, b.conf, b.cls]);
        const [x, y] = [await worker.inputTensor(f), await main.inputTensor(f)];
        expect(x.dims).toEqual(y.dims);
        // byte comparison: a deep equal over 700k floats takes seconds
        expect(Buffer.from(x.data.buffer).equals(Buffer.from(y.data.buffer))).toBe(true);
      }
    }, 300_000);
  }

  it('keeps results per frame under concurrent calls (many frames in flight)', async () => {
    const main = await load('metal-tags', 'main');
    const worker = await load('metal-tags', 'worker');
    const serial: Awaited<ReturnType<Detector['detect']>>['detections'][] = [];
    for (const f of images['metal-tags']) serial.push((await main.detect(f)).detections);
    const all = [...images['metal-tags'], ...images['metal-tags'], ...images['metal-tags']];
    const mixed = await Promise.all(all.map((f) => worker.detect(f)));
    mixed.forEach((r, i) => expect(r.detections).toEqual(serial[i % serial.length]));
  }, 300_000);

  it('a dead inference thread fails the runs in flight and every later one with INFERENCE_FAILED naming the model', async () => {
    const worker = await load('metal-tags', 'worker', true);
    await worker.warmup();
    const inFlight = worker.detect(images['metal-tags'][0]!);
    // the thread dies (as a native crash in onnxruntime would end it)
    await (worker as unknown as { session: { worker: { terminate(): Promise<number> } } }).session.worker.terminate();
    await expect(inFlight).rejects.toMatchObject({ code: 'INFERENCE_FAILED', input: await fixtureModel('metal-tags') });
    await expect(worker.detect(images['metal-tags'][1]!)).rejects.toMatchObject({ code: 'INFERENCE_FAILED' });
    // what loupe.Inference checks to exit for a restart rather than fail every later frame
    expect(worker.broken?.message).toMatch(/inference thread exited/);
    await worker.dispose();
    expect(worker.broken).toBeUndefined();
    await expect(worker.detect(images['metal-tags'][1]!)).rejects.toThrow(/was disposed/);
  }, 300_000);

  it('an idle detector does not keep a process alive (a program that never calls dispose still exits)', async () => {
    ensureBuilt();
    const script = `
      const { Detector } = await import(${JSON.stringify(join(projectRoot, 'dist/components/detector/detector.js'))});
      const d = await Detector.load(${JSON.stringify(await fixtureModel('metal-tags'))}, { sessionThread: 'worker' });
      const r = await d.detect(${JSON.stringify(images['metal-tags'][0])});
      console.log('boxes', r.detections.length);
    `;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 120_000 });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^boxes \d+/);
  }, 300_000);
});

describe('sessions: several sessions of the model at once', () => {
  it('gives exactly the boxes of one main-thread session with the same threads, frame by frame under concurrency', async () => {
    const model = await fixtureModel('metal-tags');
    // one thread per session: the reference runs with one thread too (float sums split over threads may round differently)
    const one = await Detector.load(model, { threads: 1 });
    const pool = await Detector.load(model, { sessions: 2 });
    dets.push(one, pool);
    expect(pool.sessions).toBe(2);
    expect(one.sessions).toBe(1);
    const serial: Awaited<ReturnType<Detector['detect']>>['detections'][] = [];
    for (const f of images['metal-tags']) serial.push((await one.detect(f)).detections);
    const all = [...images['metal-tags'], ...images['metal-tags'], ...images['metal-tags']];
    const mixed = await Promise.all(all.map((f) => pool.detect(f)));
    mixed.forEach((r, i) => expect(r.detections).toEqual(serial[i % serial.length]));
    const [a, b] = [await pool.detectRaw(all[0]!, { mode: 'val' }), await one.detectRaw(all[0]!, { mode: 'val' })];
    expect([a.xyxy, a.conf, a.cls]).toEqual([b.xyxy, b.conf, b.cls]);
  }, 300_000);

  it('refuses a sessions count it cannot run, naming the option', async () => {
    const model = await fixtureModel('metal-tags');
    for (const sessions of [0, 1.5, 17])
      await expect(Detector.load(model, { sessions })).rejects.toMatchObject({ code: 'DETECT_BAD_OPTION', input: 'sessions' });
    await expect(Detector.load(model, { sessions: 2, sessionThread: 'main' })).rejects.toMatchObject({
      code: 'DETECT_BAD_OPTION',
      input: 'sessions',
      message: expect.stringMatching(/sessionThread 'worker'/),
    });
  });

  it('a dead session thread makes the detector broken; the others are released on dispose', async () => {
    const pool = await Detector.load(await fixtureModel('metal-tags'), { sessions: 2 });
    await pool.warmup();
    const members = (pool as unknown as { session: { members: { worker: { terminate(): Promise<number> } }[] } }).session.members;
    expect(members).toHaveLength(2);
    await members[0]!.worker.terminate();
    // what loupe.Inference checks to exit for a restart rather than run on with fewer sessions unnoticed
    await expect.poll(() => pool.broken?.message).toMatch(/inference thread exited/);
    await pool.dispose();
    expect(pool.broken).toBeUndefined();
    await expect(pool.detect(images['metal-tags'][0]!)).rejects.toThrow(/was disposed/);
  }, 300_000);
});
