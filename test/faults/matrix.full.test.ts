import { S3Client } from '@aws-sdk/client-s3';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFile, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { closeSync, existsSync, mkdirSync, openSync, statfsSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ResultMessage } from '../../contracts/topics.js';
import { startBroker, type EmbeddedBroker } from '../../embedded/broker/broker.js';
import { NucleusCliClient } from '../../embedded/nucleus/cli-client.js';
import { startObjectStoreProcess, type ObjectStoreProcess } from '../../embedded/objectstore/process.js';
import { datasetDir, projectRoot } from '../../lib/paths.js';
import { ensureBuilt, until } from '../helpers/edge.js';
import { tempRoot } from '../helpers/nucleus.js';
import { uploadedImageDigests } from '../helpers/uploads.js';

/**
 * The fault matrix (issue 14's standing suite): a real edge stack (the local nucleus in a
 * process of its own with loupe.Camera on a watched folder, loupe.Inference, loupe.Uploader),
 * the embedded broker and the object store (its own process), and one fault at a time while
 * images arrive: kill -9 of each component, of the nucleus (its components die with it; the
 * stack is started again on the same root), of the whole stack at once; the object store and the
 * broker down for LOUPE_FAULT_DOWN_S seconds (default 60); the spool's filesystem full (a real
 * 2 MiB tmpfs, mounted with sudo).
 *
 * Every image the test drops is distinct and every frame is selected for upload (policies
 * failed + random share 1; exact de-duplication, so only a re-capture of the same image is a
 * duplicate). After each fault, with nothing done by hand, every image must reach the bucket
 * exactly once: lost = dropped images not in S3, duplicated = images under more than one frame
 * key. The table (fault, selected, uploaded, lost, duplicated, recovery seconds) is printed and
 * written to test-artifacts/faults/matrix.json.
 */
const DOWN_S = Number(process.env.LOUPE_FAULT_DOWN_S ?? 60);
const PER_CASE = 10;
const DROP_FPS = 4;
const BUCKET = 'loupe-incoming';
const THING = 'loupe-faults-1';
const COMPONENTS = ['loupe.Camera', 'loupe.Inference', 'loupe.Uploader'];

let dir: string;
let stackRoot: string;
let watchDir: string;
let spoolDir: string;
let tmpfsMounted = false;
let tmpfsProblem = '';
let storePort: number;
let brokerPort: number;
let store: ObjectStoreProcess | undefined;
let broker: EmbeddedBroker | undefined;
let host: ChildProcess | undefined;
let hostLog: string[] = [];
let s3: S3Client;
let images: string[] = [];
let nextImage = 0;
/** Results seen on IoT Core (the broker, observed server-side), by frame id. */
const results = new Map<string, ResultMessage>();
const rows: Row[] = [];
/** When the current fault ended: the kill itself, or the moment the service came back (set by the case). */
let faultOver = 0;

interface Row {
  fault: string;
  selected: number;
  uploaded: number;
  lost: number;
  duplicated: number;
  recoverySeconds: number;
  resultsSeen: number;
  note?: string;
}

async function startStore(): Promise<void> {
  store = await startObjectStoreProcess({ dir: join(dir, 'objectstore'), port: storePort, buckets: [BUCKET], restart: false });
  s3 ??= new S3Client({ ...store.clientConfig, maxAttempts: 2 });
}

async function startBrokerAt(): Promise<void> {
  broker = await startBroker({ port: brokerPort });
  broker.onPublish((topic, payload) => {
    if (topic !== `loupe/${THING}/results`) return;
    try {
      const r = JSON.parse(payload.toString('utf8')) as ResultMessage;
      results.set(r.frameId, r);
    } catch {
      /* not a result */
    }
  });
}

/** The nucleus and the suite in their own process (test/helpers/edge-host.ts), on `stackRoot`. */
async function startHost(): Promise<void> {
  const cfg = {
    root: stackRoot,
    brokerUrl: `mqtt://127.0.0.1:${brokerPort}`,
    store: { endpoint: store!.endpoint, port: store!.port, dir: store!.dir, region: store!.region },
    options: {
      thingName: THING,
      bucket: BUCKET,
      source: { type: 'folder', path: watchDir, mode: 'watch', pollMs: 100 },
      fps: 8,
      config: {
        camera: { delivery: { redeliver: true, ackTimeoutMs: 3000, maxRedeliveries: 40, maxUnacked: 5000 } },
        inference: { queue: { max: 64, dropPolicy: 'drop-newest' } },
        uploader: {
          policies: [{ type: 'failed' }, { type: 'random', share: 1 }],
          dedup: { enabled: true, hash: 'exact', maxDistance: 0, window: 1024 },
          limits: { perMinute: 100000, perHour: 100000, perDay: 1000000 },
          upload: { concurrency: 2, baseDelayMs: 100, maxDelayMs: 2000, timeoutMs: 5000 },
          spool: { dir: spoolDir, maxBytes: 1_500_000 },
        },
      },
    },
  };
  hostLog = [];
  const child = spawn(process.execPath, [join(projectRoot, 'dist', 'test', 'helpers', 'edge-host.js'), JSON.stringify(cfg)], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  host = child;
  let ready = false;
  createInterface({ input: child.stdout! }).on('line', (l) => {
    if (l.includes('"ready":true')) ready = true;
  });
  createInterface({ input: child.stderr! }).on('line', (l) => {
    hostLog.push(l);
    if (hostLog.length > 40) hostLog.shift();
  });
  await until(() => ready || child.exitCode !== null, 300_000, 'the edge host to start');
  if (!ready) throw new Error(`the edge host exited ${child.exitCode}:\n${hostLog.join('\n')}`);
}

async function stopHost(): Promise<void> {
  const c = host;
  host = undefined;
  if (!c || c.exitCode !== null || c.signalCode !== null) return;
  const exited = new Promise<void>((r) => c.once('exit', () => r()));
  c.kill('SIGTERM');
  const t = setTimeout(() => c.kill('SIGKILL'), 20_000);
  await exited;
  clearTimeout(t);
}

/** pid of a component: the latest line of its log (pino lines carry the pid). */
async function pidOf(component: string): Promise<number> {
  const lines = (await readFile(join(stackRoot, 'gg', 'logs', `${component}.log`), 'utf8')).split('\n').filter((l) => l.startsWith('{'));
  return (JSON.parse(lines[lines.length - 1]!) as { pid: number }).pid;
}

async function componentStates(): Promise<Record<string, string>> {
  const c = await NucleusCliClient.connect(join(stackRoot, 'gg'));
  try {
    return Object.fromEntries((await c.listComponents()).map((x) => [x.componentName, x.state]));
  } finally {
    await c.close();
  }
}

const spoolPending = async () =>
  (await readdir(spoolDir).catch(() => [] as string[])).filter((f) => f.endsWith('.json') && !f.startsWith('.')).length;

/** Every uploaded image by content: sha256 -> its keys. */
const shaOfKey = new Map<string, string>();
async function uploadsBySha(): Promise<Map<string, string[]>> {
  const by = new Map<string, string[]>();
  for (const [k, sha] of await uploadedImageDigests(s3, BUCKET, shaOfKey)) by.set(sha, [...(by.get(sha) ?? []), k]);
  return by;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * One row: drop PER_CASE new images at DROP_FPS; after the third, `inject` the fault (it returns
 * once the fault is over: at once for a kill, after the outage for a down case); then wait, doing
 * nothing, until every image is in S3, the spool is empty and the components run.
 */
async function runCase(fault: string, inject: () => Promise<string | void>): Promise<Row> {
  const mine = images.slice(nextImage, nextImage + PER_CASE);
  nextImage += PER_CASE;
  const shas = new Map<string, string>();
  for (const f of mine)
    shas.set(
      createHash('sha256')
        .update(await readFile(f))
        .digest('hex'),
      f,
    );
  const resultsBefore = results.size;
  let dropped = 0;
  const dropping = (async () => {
    for (const f of mine) {
      await copyFile(f, join(watchDir, `${fault.replace(/\W+/g, '-')}-${String(dropped).padStart(2, '0')}.jpg`));
      dropped++;
      await sleep(1000 / DROP_FPS);
    }
  })();
  await until(() => dropped >= 3, 30_000, 'the first images of the case');
  await sleep(400); // some frames in flight: captured, in inference, in the spool
  let note: string | undefined;
  try {
    note = (await inject()) ?? undefined;
  } catch (e) {
    // The fault could not be staged (or the stack did not come back): a row that fails.
    await dropping;
    const row: Row = {
      fault,
      selected: shas.size,
      uploaded: NaN,
      lost: NaN,
      duplicated: NaN,
      recoverySeconds: NaN,
      resultsSeen: results.size - resultsBefore,
      note: `FAILED: ${(e as Error).message}`,
    };
    rows.push(row);
    console.error(`fault matrix: ${JSON.stringify(row)}`);
    return row;
  }
  const over = faultOver || Date.now();
  faultOver = 0;
  await dropping;
  let recoverySeconds = NaN;
  try {
    await until(
      async () => {
        const by = await uploadsBySha();
        if (![...shas.keys()].every((s) => by.has(s))) return false;
        if ((await spoolPending()) !== 0) return false;
        const st = await componentStates();
        return COMPONENTS.every((c) => st[c] === 'RUNNING');
      },
      180_000,
      async () => `case "${fault}" to recover (spool ${await spoolPending()}; host log tail:\n${hostLog.slice(-8).join('\n')})`,
      500,
    );
    recoverySeconds = +((Date.now() - over) / 1000).toFixed(1);
  } catch (e) {
    console.error((e as Error).message);
  }
  // Let a late duplicate (a redelivery racing the restart) land before counting.
  await sleep(2000);
  const by = await uploadsBySha();
  let uploaded = 0;
  let lost = 0;
  let duplicated = 0;
  for (const s of shas.keys()) {
    const keys = by.get(s) ?? [];
    if (keys.length === 0) lost++;
    else uploaded++;
    if (keys.length > 1) duplicated += keys.length - 1;
  }
  // Tidy the watched folder: a camera started later need not show these again.
  for (const f of await readdir(watchDir)) if (f.startsWith(fault.replace(/\W+/g, '-') + '-')) await rm(join(watchDir, f), { force: true });
  const row: Row = {
    fault,
    selected: shas.size,
    uploaded,
    lost,
    duplicated,
    recoverySeconds,
    resultsSeen: results.size - resultsBefore,
    ...(note ? { note } : {}),
  };
  rows.push(row);
  console.log(`fault matrix: ${JSON.stringify(row)}`);
  return row;
}

async function killComponent(component: string): Promise<string> {
  const pid = await pidOf(component);
  process.kill(pid, 'SIGKILL');
  faultOver = Date.now();
  await until(async () => (await pidOf(component).catch(() => pid)) !== pid, 60_000, `the nucleus to restart ${component}`);
  return `pid ${pid} killed`;
}

function printTable(): string {
  // recovery s: from the end of the fault (the kill; the service back) until every image is in S3, the spool empty, all components running
  const head = ['fault', 'selected', 'uploaded', 'lost', 'duplicated', 'recovery s'];
  const lines = rows.map((r) => [
    r.fault,
    String(r.selected),
    String(r.uploaded),
    String(r.lost),
    String(r.duplicated),
    Number.isNaN(r.recoverySeconds) ? 'no recovery' : String(r.recoverySeconds),
  ]);
  const w = head.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
  const fmt = (cols: string[]) => '| ' + cols.map((c, i) => c.padEnd(w[i]!)).join(' | ') + ' |';
  return [fmt(head), '|' + w.map((n) => '-'.repeat(n + 2)).join('|') + '|', ...lines.map(fmt)].join('\n');
}

beforeAll(async () => {
  ensureBuilt();
  dir = tempRoot('lfm-');
  stackRoot = join(dir, 'stack');
  watchDir = join(dir, 'camera-in');
  spoolDir = join(dir, 'spool');
  mkdirSync(watchDir, { recursive: true });
  mkdirSync(spoolDir, { recursive: true });
  // The spool on a real 2 MiB filesystem, so "disk full" is the kernel's ENOSPC.
  try {
    execFileSync('sudo', ['-n', 'mount', '-t', 'tmpfs', '-o', 'size=2m,mode=0777', 'tmpfs', spoolDir], { stdio: 'pipe' });
    tmpfsMounted = true;
  } catch (e) {
    tmpfsProblem = `cannot mount a 2 MiB tmpfs for the spool (sudo -n mount -t tmpfs): ${((e as { stderr?: Buffer }).stderr ?? '').toString().trim() || (e as Error).message}`;
  }
  const ds = datasetDir('metal-tags');
  images = (await readdir(join(ds, 'bad'))).sort().map((f) => join(ds, 'bad', f));
  const base = 10_000 + Math.floor(Math.random() * 4_000) * 2;
  storePort = base;
  brokerPort = base + 1;
  await startStore();
  await startBrokerAt();
  await startHost();
}, 600_000);

afterAll(async () => {
  await stopHost().catch(() => {});
  await store?.stop().catch(() => {});
  await broker?.stop().catch(() => {});
  s3?.destroy();
  await sleep(500);
  if (tmpfsMounted) {
    try {
      execFileSync('sudo', ['-n', 'umount', '-l', spoolDir], { stdio: 'pipe' });
    } catch {
      /* reported by the leftover mount */
    }
  }
  if (dir) await rm(dir, { recursive: true, force: true });
}, 120_000);

describe('fault matrix: nothing selected is lost or duplicated, everything resumes on its own', () => {
  it('kill -9 of each component, the nucleus and the whole stack; object store and broker down; spool disk full', async () => {
    for (const c of COMPONENTS) await runCase(`kill -9 ${c}`, () => killComponent(c));

    await runCase('kill -9 nucleus', async () => {
      const pid = host!.pid!;
      const guarded = await Promise.all(COMPONENTS.map(pidOf));
      host!.kill('SIGKILL');
      faultOver = Date.now();
      host = undefined;
      // the components die with the nucleus (their guard sees it go)
      await until(() => guarded.every((p) => !existsSync(`/proc/${p}`)), 30_000, 'the components to die with the nucleus');
      await startHost();
      return `nucleus pid ${pid}; its ${guarded.length} components died with it; stack started again on the same root`;
    });

    await runCase('kill -9 whole stack', async () => {
      const storePid = store!.pid();
      host!.kill('SIGKILL');
      faultOver = Date.now();
      if (storePid) process.kill(storePid, 'SIGKILL');
      await broker!.stop(); // in this process: closed at once, its sessions gone
      host = undefined;
      await sleep(1000);
      await store!.stop().catch(() => {});
      await startStore();
      await startBrokerAt();
      await startHost();
      return 'nucleus, components and object store killed (-9), broker closed; all started again';
    });

    await runCase(`object store down ${DOWN_S} s`, async () => {
      await store!.stop();
      await sleep(DOWN_S * 1000);
      await startStore();
      faultOver = Date.now();
    });

    await runCase(`broker down ${DOWN_S} s`, async () => {
      await broker!.stop();
      await sleep(DOWN_S * 1000);
      await startBrokerAt();
      faultOver = Date.now();
    });

    await runCase('spool disk full', async () => {
      if (!tmpfsMounted) throw new Error(`spool disk full: ${tmpfsProblem}`);
      // Fill the spool's filesystem to the last byte; the uploader now meets ENOSPC.
      const filler = join(spoolDir, '.filler');
      const fd = openSync(filler, 'w');
      const block = Buffer.alloc(64 * 1024, 1);
      try {
        for (;;) {
          const free = Number(statfsSync(spoolDir).bavail) * Number(statfsSync(spoolDir).bsize);
          if (free <= 0) break;
          writeSync(fd, block, 0, Math.min(block.length, free));
        }
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOSPC') throw e;
      } finally {
        closeSync(fd);
      }
      await sleep(Math.min(DOWN_S, 20) * 1000);
      await rm(filler, { force: true });
      faultOver = Date.now();
      return 'tmpfs filled to ENOSPC for ' + Math.min(DOWN_S, 20) + ' s';
    });

    const table = printTable();
    console.log(`fault matrix (LOUPE_FAULT_DOWN_S=${DOWN_S}):\n${table}`);
    await mkdir(join(projectRoot, 'test-artifacts', 'faults'), { recursive: true });
    await writeFile(
      join(projectRoot, 'test-artifacts', 'faults', 'matrix.json'),
      JSON.stringify({ downSeconds: DOWN_S, perCase: PER_CASE, rows }, null, 2),
    );
    for (const r of rows) {
      expect({ fault: r.fault, lost: r.lost, duplicated: r.duplicated, recovered: !Number.isNaN(r.recoverySeconds) }).toEqual({
        fault: r.fault,
        lost: 0,
        duplicated: 0,
        recovered: true,
      });
    }
  }, 1_500_000);
});
