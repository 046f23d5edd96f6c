import { GetObjectCommand } from '@aws-sdk/client-s3';
import { copyFile, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ResultMessage } from '../../contracts/topics.js';
import { datasetDir } from '../../lib/paths.js';
import { startBroker } from '../../embedded/broker/broker.js';
import { startObjectStore, type ObjectStore } from '../../embedded/objectstore/index.js';
import { startEdgeStack, type EdgeStack } from '../../embedded/stack/edge.js';
import { dropping as dropEvery, ensureBuilt, until } from '../helpers/edge.js';
import { fixtureModel } from '../helpers/models.js';
import { frameHashes } from '../../components/uploader/dedup.js';
import { tempRoot } from '../helpers/nucleus.js';

/**
 * The loupe suite end to end on the local nucleus: real component processes, real IPC, the
 * embedded broker and object store. One stack; the camera watches a folder and each scenario
 * drops its own images into it.
 */
let root: string;
let watchDir: string;
let stack: EdgeStack;
let store: ObjectStore; // the object store currently serving (scenarios restart it)
let bad: string[];
let good: string[];
let counter = 0;
const OBSERVER = join(process.cwd(), 'test', 'fixtures', 'edge', 'observer.mjs');

/** Drop images into the watched folder; returns how many frames that makes. */
async function drop(files: string[]): Promise<number> {
  for (const f of files) {
    counter++;
    await copyFile(f, join(watchDir, `${String(counter).padStart(5, '0')}.jpg`));
  }
  return files.length;
}

/** Keep dropping images at `fps` (cycling through `files`) until stopAfter(n) has dropped n more. */
function dropping(files: string[], fps: number): { stopAfter(n: number): Promise<number> } {
  return dropEvery(fps, async (i) => {
    await drop([files[i % files.length]!]);
    return counter;
  });
}

/** Results (by frame id) for frames with seq in (from, to]. */
function resultsFor(from: number, to: number): Map<number, ResultMessage> {
  const m = new Map<number, ResultMessage>();
  for (const r of stack.results.values()) if (r.seq > from && r.seq <= to) m.set(r.seq, r);
  return m;
}

async function waitResults(from: number, to: number, ms = 90_000): Promise<ResultMessage[]> {
  await until(
    () => resultsFor(from, to).size === to - from,
    ms,
    `results for frames ${from + 1}..${to} (have ${resultsFor(from, to).size})`,
  );
  return [...resultsFor(from, to).values()].sort((a, b) => a.seq - b.seq);
}

async function observed(): Promise<{ topic: string; message: Record<string, unknown> }[]> {
  const text = await readFile(join(stack.nucleus.root, 'work', 'test.Observer', 'observed.jsonl'), 'utf8').catch(() => '');
  return text
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { topic: string; message: Record<string, unknown> });
}

async function pidOf(component: string): Promise<number> {
  const lines = (await stack.nucleus.readLog(component)).split('\n').filter((l) => l.startsWith('{'));
  return (JSON.parse(lines[lines.length - 1]!) as { pid: number }).pid;
}

const uploadedJpgs = async () => (await stack.listUploads()).filter((k) => k.endsWith('.jpg'));
const spoolPending = async () =>
  (await readdir(join(stack.nucleus.root, 'work', 'loupe.Uploader', 'spool')).catch(() => [] as string[])).filter((f) =>
    f.endsWith('.json'),
  ).length;
const states = () => Object.fromEntries(stack.nucleus.status().components.map((c) => [c.name, c.state]));

beforeAll(async () => {
  ensureBuilt();
  root = tempRoot('le2e-');
  watchDir = join(root, 'camera-in');
  await mkdir(watchDir, { recursive: true });
  const ds = datasetDir('metal-tags');
  bad = (await readdir(join(ds, 'bad'))).sort().map((f) => join(ds, 'bad', f));
  good = (await readdir(join(ds, 'good'))).sort().map((f) => join(ds, 'good', f));
  // Ports below the kernel's ephemeral range: the scenarios stop and restart the object store and
  // the broker on their ports, and a port-0 listener elsewhere (tests run in parallel) cannot take them meanwhile.
  const base = 10_000 + Math.floor(Math.random() * 4_000) * 2;
  stack = await startEdgeStack({
    root: join(root, 'stack'),
    objectStorePort: base,
    brokerPort: base + 1,
    source: { type: 'folder', path: watchDir, mode: 'watch', pollMs: 100 },
    fps: 8,
    config: {
      camera: { delivery: { redeliver: true, ackTimeoutMs: 2000, maxRedeliveries: 15, maxUnacked: 5000 } },
      inference: { queue: { max: 64, dropPolicy: 'drop-newest' } },
      uploader: {
        policies: [{ type: 'failed' }],
        dedup: { enabled: false },
        limits: { perMinute: 100000, perHour: 100000, perDay: 1000000 },
        upload: { concurrency: 2, baseDelayMs: 100, maxDelayMs: 1000, timeoutMs: 4000 },
      },
    },
  });
  store = stack.objectStore;
  // A plain component that records what arrives on IPC (results, telemetry).
  const recipes = join(root, 'observer-recipes');
  await mkdir(recipes, { recursive: true });
  await writeFile(
    join(recipes, 'test.Observer-1.0.0.json'),
    JSON.stringify({
      RecipeFormatVersion: '2020-01-25',
      ComponentName: 'test.Observer',
      ComponentVersion: '1.0.0',
      ComponentConfiguration: {
        DefaultConfiguration: {
          accessControl: {
            'aws.greengrass.ipc.pubsub': {
              'test.Observer:sub': {
                operations: ['aws.greengrass#SubscribeToTopic'],
                resources: ['loupe/results', 'loupe/telemetry/*', 'loupe/model/status'],
              },
            },
          },
        },
      },
      Manifests: [{ Platform: { os: 'linux' }, Lifecycle: { Run: `exec "${process.execPath}" ${OBSERVER}` } }],
    }),
  );
  const rec = await stack.nucleus.deploy({ recipeDir: recipes, merge: { 'test.Observer': '1.0.0' } });
  expect(rec.status).toBe('SUCCEEDED');
}, 300_000);

afterAll(async () => {
  await stack?.stop();
  if (store && store !== stack?.objectStore) await store.stop();
  await rm(root, { recursive: true, force: true });
});

describe('loupe suite on the local nucleus', () => {
  it('frames → results on IPC and MQTT → the failed frames in S3 with their sidecars', async () => {
    const n = await drop([...bad.slice(0, 6), ...good.slice(0, 4)]);
    const results = await waitResults(0, n);
    expect(results.map((r) => r.model.version)).toEqual(results.map(() => '1.0.0'));
    // loupe.result/2: the model's precision, and the hashes of the pixels the detector decoded
    // (the uploader de-duplicates with them instead of reading the frame again).
    for (const r of results) {
      expect(r).toMatchObject({ schema: 'loupe.result/2', model: { precision: 'fp32' } });
      expect(r.hashes).toEqual(await frameHashes(r.path)); // the frame store's copy of the frame
    }
    expect(stack.telemetry.uploader?.hashedHere ?? 0).toBe(0);
    const fails = results.filter((r) => r.verdict === 'fail');
    expect(fails.length).toBeGreaterThan(0);
    expect(results.some((r) => r.verdict === 'pass')).toBe(true);
    // The same results reached an ordinary IPC subscriber.
    // (IPC and IoT Core deliveries race each other, so give the IPC side a moment too.)
    await until(
      async () => {
        const ipcIds = new Set((await observed()).filter((o) => o.topic === 'loupe/results').map((o) => o.message.frameId));
        return results.every((r) => ipcIds.has(r.frameId));
      },
      30_000,
      'the same results on IPC',
    );
    // Exactly the failed frames are uploaded (policy "failed"), with a sidecar each.
    await until(
      async () => (await uploadedJpgs()).length === fails.length && (await spoolPending()) === 0,
      60_000,
      'uploads of the failed frames',
    );
    const keys = await stack.listUploads();
    for (const r of fails) {
      const d = new Date(r.time);
      const base = `incoming/${stack.thingName}/${d.getUTCFullYear()}/${String(d.getUTCMonth() + 1).padStart(2, '0')}/${String(d.getUTCDate()).padStart(2, '0')}/${r.frameId}`;
      expect(keys).toContain(`${base}.jpg`);
      const side = JSON.parse(
        await (await stack.s3.send(new GetObjectCommand({ Bucket: stack.bucket, Key: `${base}.json` }))).Body!.transformToString(),
      ) as Record<string, unknown>;
      expect(side).toMatchObject({
        device: stack.thingName,
        camera: 'cam1',
        frameId: r.frameId,
        reason: 'failed',
        verdict: 'fail',
        model: { version: '1.0.0' },
      });
      expect(side.detections).toEqual(r.detections);
      const img = Buffer.from(
        await (await stack.s3.send(new GetObjectCommand({ Bucket: stack.bucket, Key: `${base}.jpg` }))).Body!.transformToByteArray(),
      );
      expect(img.equals(await readFile(bad[r.seq - 1] ?? good[r.seq - 7]!))).toBe(true);
    }
    expect(states()).toMatchObject({
      'loupe.Camera': 'RUNNING',
      'loupe.Inference': 'RUNNING',
      'loupe.Uploader': 'RUNNING',
      'loupe.Model': 'FINISHED',
    });
  });

  it('applies a configuration change at runtime, without restarting inference', async () => {
    const pid = await pidOf('loupe.Inference');
    const rec = await stack.configure('loupe.Inference', {
      conf: 0.97,
      verdict: { rules: [{ name: 'sure-defect', minConf: 0, minCount: 1 }] },
    });
    expect(rec.status).toBe('SUCCEEDED');
    const from = counter;
    const n = await drop(bad.slice(6, 10));
    const results = await waitResults(from, from + n);
    for (const r of results) {
      for (const d of r.detections) expect(d.conf).toBeGreaterThan(0.97);
      expect(r.verdict === 'fail' ? r.reasons : []).toEqual(r.verdict === 'fail' ? ['sure-defect'] : []);
    }
    expect(await pidOf('loupe.Inference')).toBe(pid);
    expect(
      (await stack.configure('loupe.Inference', { conf: 0.25, verdict: { rules: [{ name: 'defect', minConf: 0, minCount: 1 }] } })).status,
    ).toBe('SUCCEEDED');
    // A run option (sessions) reloads the serving model with it, in the same process, and frames go on.
    const log0 = (await stack.nucleus.readLog('loupe.Inference')).length;
    expect((await stack.configure('loupe.Inference', { sessions: 2 })).status).toBe('SUCCEEDED');
    await until(
      async () => /"sessions":2,.*"msg":"model swapped"/.test((await stack.nucleus.readLog('loupe.Inference')).slice(log0)),
      60_000,
      'the model reloaded with 2 sessions',
    );
    const from2 = counter;
    const n2 = await drop(bad.slice(6, 10));
    expect((await waitResults(from2, from2 + n2)).every((r) => r.verdict !== 'error')).toBe(true);
    expect(await pidOf('loupe.Inference')).toBe(pid);
    expect((await stack.configure('loupe.Inference', { sessions: 1 })).status).toBe('SUCCEEDED');
  }, 300_000);

  it('counts and skips corrupt JPEGs and keeps serving', async () => {
    const from = counter;
    await writeFile(
      join(watchDir, `${String(++counter).padStart(5, '0')}.jpg`),
      Buffer.concat([Buffer.from([0xff, 0xd8, 0xff, 0xe0]), Buffer.alloc(2000, 7)]),
    );
    await writeFile(join(watchDir, `${String(++counter).padStart(5, '0')}.jpg`), Buffer.from('this is not an image at all'));
    await drop(bad.slice(10, 12));
    const results = await waitResults(from, counter);
    expect(results.slice(0, 2).map((r) => r.verdict)).toEqual(['error', 'error']);
    expect(results[0]!.error).toBeTruthy();
    expect(results.slice(2).every((r) => r.verdict !== 'error')).toBe(true);
    await until(() => Number(stack.telemetry.inference?.errors ?? 0) >= 2, 20_000, 'inference telemetry counting the corrupt frames');
    expect(states()['loupe.Inference']).toBe('RUNNING');
  });

  it('S3 down for a while, then back: the spool holds the selected images and drains', async () => {
    await until(async () => (await spoolPending()) === 0, 60_000, 'earlier uploads to finish');
    const before = new Set(await uploadedJpgs());
    await store.stop();
    const from = counter;
    const n = await drop(bad.slice(12, 18));
    const results = await waitResults(from, from + n);
    const fails = results.filter((r) => r.verdict === 'fail');
    expect(fails.length).toBeGreaterThan(0);
    const diag = async () =>
      `the spool to hold every selected image (spool ${await spoolPending()}, failed frames ${fails.length}, uploader ${JSON.stringify(stack.telemetry.uploader ?? {})})`;
    await until(async () => (await spoolPending()) === fails.length, 60_000, diag);
    await until(() => Number(stack.telemetry.uploader?.attemptsFailed ?? 0) > 0, 20_000, 'failed upload attempts in telemetry');
    store = await startObjectStore({ dir: store.dir, port: store.port });
    await until(async () => (await spoolPending()) === 0, 60_000, 'the spool to drain');
    const now = (await uploadedJpgs()).filter((k) => !before.has(k));
    expect(now.sort()).toEqual(fails.map((r) => now.find((k) => k.endsWith(`/${r.frameId}.jpg`))!).sort());
    expect(now).toHaveLength(fails.length);
  });

  it('kill -9 of the uploader mid-upload, then restart: every selected image lands exactly once', async () => {
    await until(async () => (await spoolPending()) === 0, 60_000, 'earlier uploads to finish');
    const before = new Set(await uploadedJpgs());
    // S3 that accepts connections and request bodies but never answers: uploads hang mid-request.
    await store.stop();
    let bodyBytes = 0;
    const sockets = new Set<Socket>();
    const hung: Server = createServer((s) => {
      sockets.add(s);
      s.on('data', (d) => (bodyBytes += d.length));
      s.on('error', () => {});
    });
    await new Promise<void>((r) => hung.listen(store.port, '127.0.0.1', () => r()));
    const from = counter;
    const n = await drop(bad.slice(18, 26));
    const results = await waitResults(from, from + n);
    const fails = results.filter((r) => r.verdict === 'fail');
    await until(async () => (await spoolPending()) === fails.length && bodyBytes > 10_000, 30_000, 'uploads in flight against the hung S3');
    const pid = await pidOf('loupe.Uploader');
    process.kill(pid, 'SIGKILL');
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => hung.close(() => r()));
    store = await startObjectStore({ dir: store.dir, port: store.port });
    await until(
      async () => (await pidOf('loupe.Uploader')) !== pid && states()['loupe.Uploader'] === 'RUNNING',
      60_000,
      'the nucleus to restart the uploader',
    );
    await until(async () => (await spoolPending()) === 0, 60_000, 'the spool to drain after the restart');
    const keys = await stack.listUploads();
    const newJpgs = keys.filter((k) => k.endsWith('.jpg') && !before.has(k));
    expect(newJpgs.map((k) => k.split('/').pop()).sort()).toEqual(fails.map((r) => `${r.frameId}.jpg`).sort());
    for (const k of newJpgs) expect(keys).toContain(k.replace(/\.jpg$/, '.json'));
  });

  it('broker down: nothing crashes, IPC keeps flowing, IoT Core messages arrive after it returns', async () => {
    const port = stack.broker.port;
    await stack.broker.stop();
    const from = counter;
    const n = await drop(good.slice(4, 8));
    await until(
      async () => {
        const ids = new Set(
          (await observed()).filter((o) => o.topic === 'loupe/results').map((o) => (o.message as unknown as ResultMessage).seq),
        );
        for (let s = from + 1; s <= from + n; s++) if (!ids.has(s)) return false;
        return true;
      },
      60_000,
      'results on IPC while the broker is down',
    );
    expect(Object.entries(states()).every(([n, s]) => s === (n === 'loupe.Model' ? 'FINISHED' : 'RUNNING'))).toBe(true);
    const again = await startBroker({ port });
    // Observed at the broker itself: a subscribing client reconnects on its own timer and could
    // miss what the nucleus flushes first (the old observer's race under load).
    const atBroker = new Set<number>();
    const off = again.onPublish((topic, payload) => {
      if (topic !== `loupe/${stack.thingName}/results`) return;
      try {
        atBroker.add((JSON.parse(payload.toString('utf8')) as ResultMessage).seq);
      } catch {
        /* not a result */
      }
    });
    try {
      await until(
        () => {
          for (let s = from + 1; s <= from + n; s++) if (!atBroker.has(s)) return false;
          return true;
        },
        60_000,
        'the results spooled by the nucleus to reach the broker after it returns',
      );
      expect(Object.entries(states()).every(([n, s]) => s === (n === 'loupe.Model' ? 'FINISHED' : 'RUNNING'))).toBe(true);
    } finally {
      off();
      Object.assign(stack, { broker: again });
    }
  });

  it('hot swap under load: a configured model is loaded beside and swapped in the same process, no frame lost', async () => {
    const pid = await pidOf('loupe.Inference');
    const fp16 = await fixtureModel('metal-tags-fp16');
    const from = counter;
    const feed = dropping(bad.slice(26), 8);
    await until(() => resultsFor(from, counter).size >= 3, 30_000, 'frames flowing before the swap');
    const rec = await stack.configure('loupe.Inference', { model: { path: fp16, version: '1.0.0-fp16', name: 'metal-tags' } });
    expect(rec.status).toBe('SUCCEEDED');
    await until(
      () => [...resultsFor(from, counter).values()].some((r) => r.model.version === '1.0.0-fp16'),
      30_000,
      'results from the swapped-in model',
    );
    const last = await feed.stopAfter(8);
    const results = await waitResults(from, last);
    expect(results.map((r) => r.seq)).toEqual(Array.from({ length: last - from }, (_, i) => from + i + 1));
    expect(results.some((r) => r.model.version === '1.0.0')).toBe(true);
    expect(results.slice(-8).every((r) => r.model.version === '1.0.0-fp16')).toBe(true);
    // Versions never go back and forth: one switch point.
    const firstNew = results.findIndex((r) => r.model.version === '1.0.0-fp16');
    expect(results.slice(firstNew).every((r) => r.model.version === '1.0.0-fp16')).toBe(true);
    expect(await pidOf('loupe.Inference')).toBe(pid);
  }, 300_000);

  it('a new loupe.Model version under load: every frame gets a result; a broken model rolls back', async () => {
    const fp16 = await fixtureModel('metal-tags-fp16');
    const dir = join(root, 'model-1.1.0');
    await mkdir(dir, { recursive: true });
    await copyFile(fp16, join(dir, 'model.onnx'));
    // Inference follows loupe.Model again (the previous test pinned a path in its configuration).
    expect((await stack.nucleus.deploy({ configurationUpdate: { 'loupe.Inference': { reset: ['/model'] } } })).status).toBe('SUCCEEDED');
    const from = counter;
    const feed = dropping(bad, 8);
    await until(() => resultsFor(from, counter).size >= 3, 30_000, 'frames flowing before the deployment');
    const rec = await stack.deployModel({ dir, version: '1.1.0' });
    expect(rec.status).toBe('SUCCEEDED');
    await until(
      () => [...resultsFor(from, counter).values()].some((r) => r.model.version === '1.1.0'),
      60_000,
      'results from loupe.Model 1.1.0',
    );
    const last = await feed.stopAfter(8);
    const results = await waitResults(from, last, 120_000);
    expect(results.map((r) => r.seq)).toEqual(Array.from({ length: last - from }, (_, i) => from + i + 1));
    expect(results.slice(-8).every((r) => r.model.version === '1.1.0')).toBe(true);

    const brokenDir = join(root, 'model-1.2.0');
    await mkdir(brokenDir, { recursive: true });
    await writeFile(join(brokenDir, 'model.onnx'), Buffer.alloc(4096, 3));
    const from2 = counter;
    const feed2 = dropping(good, 4);
    const bad2 = await stack.deployModel({ dir: brokenDir, version: '1.2.0' });
    expect(bad2.status).toBe('FAILED');
    expect(bad2.detailedStatus).toBe('FAILED_ROLLBACK_COMPLETE');
    const last2 = await feed2.stopAfter(4);
    const after = await waitResults(from2, last2, 180_000);
    expect(after.every((r) => r.model.version === '1.1.0')).toBe(true);
    expect(stack.nucleus.status().components.find((c) => c.name === 'loupe.Model')?.version).toBe('1.1.0');
  }, 480_000);

  it('an MQTT trigger (a PLC bridge) takes a frame carrying the part serial', async () => {
    const cam1Before = [...stack.results.values()].filter((r) => r.camera === 'cam1').length;
    // cam1 keeps its block (so it keeps running and does not read its folder again); plc is added.
    const rec = await stack.configure('loupe.Camera', {
      cameras: [
        { name: 'cam1', source: { type: 'folder', path: watchDir, mode: 'watch', pollMs: 100 }, trigger: { type: 'interval', fps: 8 } },
        { name: 'plc', source: { type: 'folder', path: join(datasetDir('metal-tags'), 'good'), mode: 'loop' }, trigger: { type: 'mqtt' } },
      ],
    });
    expect(rec.status).toBe('SUCCEEDED');
    const client = await mqtt.connectAsync(stack.broker.url);
    try {
      const topic = `loupe/${stack.thingName}/trigger`;
      const plc = () => [...stack.results.values()].filter((r) => r.camera === 'plc');
      // The camera subscribes once its new configuration is applied: trigger until the first frame shows.
      await until(
        async () => {
          await client.publishAsync(topic, JSON.stringify({ camera: 'plc', serial: 'SN-1' }), { qos: 1 });
          return plc().some((r) => r.serial === 'SN-1');
        },
        60_000,
        'a frame for trigger SN-1',
        1000,
      );
      await client.publishAsync(topic, 'SN-2', { qos: 1 });
      await client.publishAsync(topic, JSON.stringify({ camera: 'other-camera', serial: 'SN-X' }), { qos: 1 });
      await until(() => plc().some((r) => r.serial === 'SN-2'), 30_000, 'a frame for the bare-text trigger SN-2');
      await new Promise((r) => setTimeout(r, 1000));
      expect(plc().some((r) => r.serial === 'SN-X')).toBe(false);
      expect(plc().every((r) => r.trigger === 'mqtt')).toBe(true);
      expect([...stack.results.values()].filter((r) => r.camera === 'cam1').length).toBe(cam1Before);
    } finally {
      await client.endAsync(true);
    }
  }, 180_000);
});
