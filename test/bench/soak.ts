/**
 * `npm run soak` (not in CI; issue 14's standing suite): the edge stack at full rate for
 * `--minutes` (default 30) with a new loupe.Model version every `--model-every` minutes (5) and
 * the object store and broker restarted every `--restart-every` minutes (7). Every
 * `--sample-every` seconds (30) it samples the RSS and open file descriptors (/proc/<pid>/fd) of
 * every process of the stack, summed per role (nucleus, each component, object store, broker).
 * At the end it reports frames lost (camera frames with no result), duplicate uploads, and the
 * growth of each role after `--warmup` minutes (default a sixth of the run, at most 5), and
 * writes test-artifacts/soak/soak.json.
 *
 *   npm run soak -- --minutes 6 --model-every 2 --restart-every 3
 *
 * `--fps` sets the camera's rate (default 5), `--sessions` loupe.Inference's model sessions (1).
 *
 * The nucleus runs in its own process (test/helpers/edge-host.ts), the object store in its own
 * (embedded/objectstore/process.ts), the broker in this one (its role's figures are this
 * process's: broker plus the driver).
 */
import { S3Client } from '@aws-sdk/client-s3';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import type { ResultMessage } from '../../contracts/topics.js';
import { startBroker, type EmbeddedBroker } from '../../embedded/broker/broker.js';
import { startObjectStoreProcess, type ObjectStoreProcess } from '../../embedded/objectstore/process.js';
import { datasetDir, projectRoot } from '../../lib/paths.js';
import { uploadedImageDigests } from '../helpers/uploads.js';

const { values: args } = parseArgs({
  options: {
    minutes: { type: 'string', default: '30' },
    'model-every': { type: 'string', default: '5' },
    'restart-every': { type: 'string', default: '7' },
    'sample-every': { type: 'string', default: '30' },
    warmup: { type: 'string' },
    fps: { type: 'string', default: '5' },
    sessions: { type: 'string', default: '1' },
    keep: { type: 'boolean', default: false },
  },
});
const num = (name: keyof typeof args): number => {
  const v = Number(args[name]);
  if (!(v > 0)) {
    process.stderr.write(`soak: --${name} must be a positive number, got ${String(args[name])}\n`);
    process.exit(2);
  }
  return v;
};
const MINUTES = num('minutes');
const MODEL_EVERY = num('model-every');
const RESTART_EVERY = num('restart-every');
const SAMPLE_EVERY = num('sample-every');
const FPS = num('fps');
/** loupe.Inference's `sessions` (model sessions running frames at once) */
const SESSIONS = num('sessions');
const WARMUP = args.warmup !== undefined ? num('warmup') : Math.min(5, MINUTES / 6);
const BUCKET = 'loupe-incoming';
const THING = 'loupe-soak-1';

const say = (msg: string) => process.stderr.write(`soak: ${msg}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// --- processes --------------------------------------------------------------------------------

interface ProcInfo {
  pid: number;
  ppid: number;
  cmd: string;
}
function processes(): ProcInfo[] {
  const out: ProcInfo[] = [];
  for (const f of readdirSync('/proc')) {
    if (!/^\d+$/.test(f)) continue;
    try {
      const stat = readFileSync(`/proc/${f}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      out.push({ pid: Number(f), ppid, cmd: readFileSync(`/proc/${f}/cmdline`, 'utf8').replaceAll('\0', ' ') });
    } catch {
      /* gone */
    }
  }
  return out;
}
/** This process and every descendant. */
function tree(): ProcInfo[] {
  const all = processes();
  const keep = new Set([process.pid]);
  for (let grew = true; grew;) {
    grew = false;
    for (const p of all) {
      if (keep.has(p.pid) || !keep.has(p.ppid)) continue;
      keep.add(p.pid);
      grew = true;
    }
  }
  return all.filter((p) => keep.has(p.pid));
}
function role(p: ProcInfo): string {
  if (p.pid === process.pid) return 'broker+driver';
  if (p.cmd.includes('edge-host.js')) return 'nucleus';
  if (p.cmd.includes('objectstore serve')) return 'objectstore';
  for (const c of ['camera', 'inference', 'uploader'])
    if (p.cmd.includes(`components/${c}/`)) return `loupe.${c[0]!.toUpperCase()}${c.slice(1)}`;
  return 'other';
}
function sample(): Record<string, { rssMiB: number; fds: number; procs: number }> {
  const by: Record<string, { rssMiB: number; fds: number; procs: number }> = {};
  for (const p of tree()) {
    try {
      const rss = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${p.pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;
      const fds = readdirSync(`/proc/${p.pid}/fd`).length;
      const r = (by[role(p)] ??= { rssMiB: 0, fds: 0, procs: 0 });
      r.rssMiB = +(r.rssMiB + rss).toFixed(1);
      r.fds += fds;
      r.procs++;
    } catch {
      /* exited between listing and reading */
    }
  }
  return by;
}

// --- the stack --------------------------------------------------------------------------------

const dir = mkdtempSync(join(tmpdir(), 'loupe-soak-'));
const base = 10_000 + Math.floor(Math.random() * 4_000) * 2;
const storePort = base;
const brokerPort = base + 1;
let store: ObjectStoreProcess | undefined;
let broker: EmbeddedBroker | undefined;
let host: ChildProcess | undefined;
// Only what the loss count needs (camera run -> seqs with a result): holding every result would
// grow this process by ~1 KB per frame and blur the broker's own memory figures.
const seqsByRun = new Map<string, Set<number>>();
let resultCount = 0;
const addResult = (r: Pick<ResultMessage, 'frameId' | 'seq'>) => {
  const run = String(r.frameId).slice(0, String(r.frameId).lastIndexOf('-'));
  const seqs = seqsByRun.get(run) ?? seqsByRun.set(run, new Set()).get(run)!;
  if (seqs.has(r.seq)) return;
  seqs.add(r.seq);
  resultCount++;
};
let health: { delivery?: { lost?: number; redelivered?: number }; cameras?: { frames: number }[] } = {};
let inferenceTelemetry: Record<string, unknown> = {};
const hostReplies: Record<string, unknown>[] = [];

async function startStore() {
  store = await startObjectStoreProcess({ dir: join(dir, 'objectstore'), port: storePort, buckets: [BUCKET], restart: false });
}
async function startBrokerAt() {
  broker = await startBroker({ port: brokerPort });
  broker.onPublish((topic, payload) => {
    try {
      const m = JSON.parse(payload.toString('utf8')) as Record<string, unknown>;
      if (topic === `loupe/${THING}/results`) addResult(m as unknown as ResultMessage);
      else if (topic === `loupe/${THING}/health`) health = m as typeof health;
      else if (topic === `loupe/${THING}/telemetry` && m.component === 'inference') inferenceTelemetry = m;
    } catch {
      /* not JSON */
    }
  });
}
async function startHost() {
  const cfg = {
    root: join(dir, 'stack'),
    brokerUrl: `mqtt://127.0.0.1:${brokerPort}`,
    store: { endpoint: store!.endpoint, port: store!.port, dir: store!.dir, region: store!.region },
    options: {
      thingName: THING,
      bucket: BUCKET,
      source: { type: 'folder', path: datasetDir('metal-tags'), mode: 'loop' },
      fps: FPS,
      ...(SESSIONS > 1 ? { config: { inference: { sessions: SESSIONS } } } : {}),
    },
  };
  const child = spawn(process.execPath, [join(projectRoot, 'dist', 'test', 'helpers', 'edge-host.js'), JSON.stringify(cfg)], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  host = child;
  let ready = false;
  const tail: string[] = [];
  createInterface({ input: child.stdout! }).on('line', (l) => {
    try {
      const m = JSON.parse(l) as Record<string, unknown>;
      if (m.ready) ready = true;
      else hostReplies.push(m);
    } catch {
      /* not ours */
    }
  });
  createInterface({ input: child.stderr! }).on('line', (l) => {
    tail.push(l);
    if (tail.length > 30) tail.shift();
  });
  const t0 = Date.now();
  while (!ready) {
    if (child.exitCode !== null) throw new Error(`the edge host exited ${child.exitCode}:\n${tail.join('\n')}`);
    if (Date.now() - t0 > 300_000) throw new Error('the edge host did not start in 5 minutes');
    await sleep(200);
  }
}
async function deployModel(version: string): Promise<Record<string, unknown>> {
  const n = hostReplies.length;
  host!.stdin!.write(JSON.stringify({ deployModel: { dir: join(projectRoot, 'models', 'metal-tags'), version } }) + '\n');
  const t0 = Date.now();
  while (hostReplies.length === n) {
    if (Date.now() - t0 > 300_000) return { deployed: version, status: 'NO ANSWER in 5 min' };
    await sleep(500);
  }
  return hostReplies[n]!;
}

// --- the run ----------------------------------------------------------------------------------

const samples: { t: number; load1: number; results: number; roles: ReturnType<typeof sample> }[] = [];
const events: { t: number; event: string; detail?: unknown }[] = [];
let t0 = 0;
const minutesNow = () => +((Date.now() - t0) / 60_000).toFixed(2);

async function main() {
  say(
    `starting: ${MINUTES} min at ${FPS} fps, ${SESSIONS} inference session(s); new loupe.Model every ${MODEL_EVERY} min; object store and broker restarted every ${RESTART_EVERY} min; samples every ${SAMPLE_EVERY} s; warm-up ${WARMUP} min; folder ${dir}`,
  );
  await startStore();
  await startBrokerAt();
  await startHost();
  t0 = Date.now();
  let nextModel = MODEL_EVERY;
  let nextRestart = RESTART_EVERY;
  let nextSample = 0;
  let modelMinor = 0;
  while (minutesNow() < MINUTES) {
    const m = minutesNow();
    if (m * 60 >= nextSample) {
      const roles = sample();
      samples.push({ t: m, load1: +loadavg()[0]!.toFixed(2), results: resultCount, roles });
      say(
        `${m.toFixed(1)} min: ${resultCount} results; ` +
          Object.entries(roles)
            .map(([r, v]) => `${r} ${v.rssMiB} MiB/${v.fds} fd`)
            .join(', ') +
          `; load ${loadavg()[0]!.toFixed(1)}`,
      );
      nextSample += SAMPLE_EVERY;
    }
    if (m >= nextModel) {
      nextModel += MODEL_EVERY;
      const version = `1.0.${++modelMinor}`;
      say(`${m.toFixed(1)} min: deploying loupe.Model ${version}`);
      const r = await deployModel(version);
      events.push({ t: minutesNow(), event: `loupe.Model ${version}`, detail: r });
      say(`  ${JSON.stringify(r)}`);
    }
    if (m >= nextRestart) {
      nextRestart += RESTART_EVERY;
      say(`${m.toFixed(1)} min: restarting the object store and the broker`);
      await store!.stop();
      await broker!.stop();
      await sleep(1000);
      await startStore();
      await startBrokerAt();
      events.push({ t: minutesNow(), event: 'object store and broker restarted' });
    }
    await sleep(1000);
  }

  // Frames captured up to now must all get a result: give those in flight a minute.
  const cut = new Map<string, number>(); // camera run -> highest seq seen by the end of the run
  // loops, not Math.max(...set): a long soak's sets outgrow a call's argument limit
  const extreme = (seqs: Set<number>, pick: (a: number, b: number) => number) => [...seqs].reduce((a, b) => pick(a, b));
  for (const [run, seqs] of seqsByRun) cut.set(run, extreme(seqs, Math.max));
  say('run over; waiting 60 s for frames in flight');
  await sleep(60_000);
  let framesLost = 0;
  let frames = 0;
  const lostFrames: string[] = [];
  for (const [run, max] of cut) {
    const s = seqsByRun.get(run)!;
    const first = extreme(s, Math.min);
    for (let q = first; q <= max; q++) {
      frames++;
      if (s.has(q)) continue;
      framesLost++;
      if (lostFrames.length < 100) lostFrames.push(`${run}-${String(q).padStart(7, '0')}`);
    }
  }

  // Uploads: the same image uploaded twice (under two frame keys) is a duplicate upload.
  const s3 = new S3Client({ ...store!.clientConfig, maxAttempts: 3 });
  const digests = await uploadedImageDigests(s3, BUCKET);
  const keys = [...digests.keys()];
  const bySha = new Map<string, number>();
  for (const h of digests.values()) bySha.set(h, (bySha.get(h) ?? 0) + 1);
  s3.destroy();
  const duplicateUploads = [...bySha.values()].reduce((a, n) => a + n - 1, 0);
  const frameIds = keys.map((k) => k.slice(k.lastIndexOf('/') + 1));
  const duplicateFrameKeys = frameIds.length - new Set(frameIds).size;

  // Growth per role: the first sample after the warm-up against the last one.
  const after = samples.filter((s) => s.t >= WARMUP);
  const growth: Record<
    string,
    { rssMiB: [number, number]; rssGrowthMiB: number; fds: [number, number]; fdGrowth: number; maxRssMiB: number }
  > = {};
  if (after.length >= 2) {
    const a = after[0]!;
    const z = after[after.length - 1]!;
    for (const r of Object.keys(z.roles)) {
      if (!a.roles[r]) continue;
      growth[r] = {
        rssMiB: [a.roles[r].rssMiB, z.roles[r]!.rssMiB],
        rssGrowthMiB: +(z.roles[r]!.rssMiB - a.roles[r].rssMiB).toFixed(1),
        fds: [a.roles[r].fds, z.roles[r]!.fds],
        fdGrowth: z.roles[r]!.fds - a.roles[r].fds,
        maxRssMiB: Math.max(...after.map((s) => s.roles[r]?.rssMiB ?? 0)),
      };
    }
  }
  const report = {
    minutes: MINUTES,
    fps: FPS,
    sessions: SESSIONS,
    modelEveryMin: MODEL_EVERY,
    restartEveryMin: RESTART_EVERY,
    sampleEveryS: SAMPLE_EVERY,
    warmupMin: WARMUP,
    load1AtEnd: +loadavg()[0]!.toFixed(2),
    frames,
    results: resultCount,
    framesLost,
    lostFrames,
    cameraDeliveryLost: health.delivery?.lost ?? null,
    cameraRedelivered: health.delivery?.redelivered ?? null,
    inferenceQueueDropped: inferenceTelemetry.dropped ?? null,
    uploads: keys.length,
    duplicateUploads,
    duplicateFrameKeys,
    growthAfterWarmup: growth,
    events,
    samples,
  };
  await mkdir(join(projectRoot, 'test-artifacts', 'soak'), { recursive: true });
  await writeFile(join(projectRoot, 'test-artifacts', 'soak', 'soak.json'), JSON.stringify(report, null, 2));
  say(
    `frames ${frames} (results ${resultCount}), lost ${framesLost}; uploads ${keys.length}, duplicate uploads ${duplicateUploads} (same image twice), ${duplicateFrameKeys} (same frame twice)`,
  );
  for (const [r, g] of Object.entries(growth))
    say(
      `  ${r}: RSS ${g.rssMiB[0]} -> ${g.rssMiB[1]} MiB (${g.rssGrowthMiB >= 0 ? '+' : ''}${g.rssGrowthMiB}; max ${g.maxRssMiB}), fds ${g.fds[0]} -> ${g.fds[1]} (${g.fdGrowth >= 0 ? '+' : ''}${g.fdGrowth})`,
    );
  say(`written to test-artifacts/soak/soak.json`);
  return framesLost === 0 && duplicateUploads === 0 && duplicateFrameKeys === 0;
}

let ok = false;
try {
  ok = await main();
} catch (e) {
  say(`failed: ${(e as Error).stack ?? String(e)}`);
} finally {
  if (host && host.exitCode === null) {
    const exited = new Promise((r) => host!.once('exit', r));
    host.kill('SIGTERM');
    await Promise.race([exited, sleep(30_000)]);
    if (host.exitCode === null) host.kill('SIGKILL');
  }
  await store?.stop().catch(() => {});
  await broker?.stop().catch(() => {});
  if (!args.keep) await rm(dir, { recursive: true, force: true });
}
process.exit(ok ? 0 : 1);
