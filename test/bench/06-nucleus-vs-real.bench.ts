import { chmodSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { projectRoot } from '../../lib/paths.js';
import { realNucleusPrerequisites, startRealNucleus, type RunningNucleus } from '../helpers/real-nucleus.js';
import { startLoupeNucleus } from '../nucleus-diff/loupe-runner.js';
import { cpuSeconds, pct, procStatus, waitFile } from './proc.js';
import type { BenchEntry } from './run.js';

/**
 * loupe's nucleus against the REAL Greengrass nucleus, side by side in one run: the same
 * init-config file starts each in turn with the same two components (test/fixtures/nucleus/
 * bench-peer.mjs, the real greengrasscoreipc client, running as ggc_user on both): a publisher
 * sends 20,000 small JSON messages with 256 in flight to one subscriber, then 2,000 one at a
 * time. Measured at the subscriber: messages/s, latency p50/p99 (loaded and one at a time), CPU
 * per message of each nucleus process (from /proc), and each nucleus's RSS (idle with the two
 * components connected, and peak). Targets (issue 9 §5): loupe at least as fast, with at most
 * half the real nucleus's RSS. The machine is shared: the load average is reported.
 */
const N = 20_000;
const WINDOW = 256;
const M = 2_000;
const PEER = join(projectRoot, 'test', 'fixtures', 'nucleus', 'bench-peer.mjs');

function writeConfig(dir: string): string {
  const peer = (role: string, extra: Record<string, string> = {}) => ({
    version: '1.0.0',
    lifecycle: {
      // Relative: each nucleus has its own root, the file is the same for both.
      setenv: {
        BENCH_DIR: '../../bench',
        BENCH_RUN: 'x',
        BENCH_MODE: 'ipc',
        BENCH_ROLE: role,
        BENCH_PUBS: '1',
        BENCH_N: String(N),
        BENCH_WINDOW: String(WINDOW),
        BENCH_M: String(M),
        ...extra,
      },
      run: `exec node ${PEER}`,
    },
    configuration: {
      accessControl: {
        'aws.greengrass.ipc.pubsub': { [`bench.${role}:1`]: { policyDescription: 'bench', operations: ['*'], resources: ['bench/*'] } },
      },
    },
  });
  const config = {
    system: { thingName: 'bench-thing' },
    services: {
      'aws.greengrass.Nucleus': {
        componentType: 'NUCLEUS',
        version: '2.18.0',
        configuration: { awsRegion: 'us-east-1', runWithDefault: { posixUser: 'ggc_user:ggc_group' }, iotRoleAlias: 'BenchRoleAlias' },
      },
      main: { dependencies: ['bench.Sub', 'bench.Pub', 'aws.greengrass.TokenExchangeService'] },
      'bench.Sub': peer('sub'),
      'bench.Pub': peer('pub', { BENCH_INDEX: '0' }),
    },
  };
  const f = join(dir, 'config.yaml');
  writeFileSync(f, stringify(config));
  return f;
}

interface Measured {
  delivered: number;
  msgsPerS: number;
  loadedP50: number;
  loadedP99: number;
  singleP50: number;
  singleP99: number;
  nucleusCpuUsPerMsg: number;
  rssIdleMiB: number;
  rssPeakMiB: number;
  startSeconds: number;
}

async function measure(which: 'real' | 'loupe', initConfig: string, dir: string, run: string): Promise<Measured> {
  const root = join(dir, `${run}-root`);
  const bench = join(root, 'bench');
  mkdirSync(bench, { recursive: true });
  chmodSync(bench, 0o777);
  const t0 = Date.now();
  const n: RunningNucleus = which === 'real' ? await startRealNucleus({ initConfig, root }) : await startLoupeNucleus({ initConfig, root });
  try {
    await waitFile(join(bench, 'ready-x'), 120_000);
    // The publisher connects too; give both a moment, then take the idle footprint.
    await new Promise((r) => setTimeout(r, 2000));
    const startSeconds = (Date.now() - t0) / 1000;
    const idle = procStatus(n.pid);
    const cpu0 = cpuSeconds(n.pid);
    writeFileSync(join(bench, 'go-x'), '');
    await waitFile(join(bench, 'result-x-throughput.json'), 600_000);
    const cpu1 = cpuSeconds(n.pid);
    await waitFile(join(bench, 'result-x-latency.json'), 600_000);
    const after = procStatus(n.pid);
    const tp = JSON.parse(readFileSync(join(bench, 'result-x-throughput.json'), 'utf8')) as {
      received: number;
      lastAt: number;
      latencies: number[];
    };
    const pub = JSON.parse(readFileSync(join(bench, 'pub-x-0.json'), 'utf8')) as { startedAt: number };
    const lat = JSON.parse(readFileSync(join(bench, 'result-x-latency.json'), 'utf8')) as { latencies: number[] };
    return {
      delivered: tp.received,
      msgsPerS: Math.round(tp.received / ((tp.lastAt - pub.startedAt) / 1000)),
      loadedP50: pct(tp.latencies, 50),
      loadedP99: pct(tp.latencies, 99),
      singleP50: pct(lat.latencies, 50),
      singleP99: pct(lat.latencies, 99),
      nucleusCpuUsPerMsg: Math.round(((cpu1 - cpu0) * 1e6) / Math.max(1, tp.received)),
      rssIdleMiB: +idle.rss.toFixed(1),
      rssPeakMiB: +after.hwm.toFixed(1),
      startSeconds: +startSeconds.toFixed(1),
    };
  } finally {
    await n.stop();
  }
}

const entry: BenchEntry = {
  name: 'nucleus-vs-real',
  async run() {
    const problems = realNucleusPrerequisites();
    if (problems.length) throw new Error(`the real nucleus cannot run here: ${problems.join('; ')}`);
    const dir = mkdtempSync('/tmp/lbr-');
    chmodSync(dir, 0o755);
    const loadBefore = loadavg()[0];
    try {
      const initConfig = writeConfig(dir);
      // One after the other (at once they would compete for the two cores), in the order real,
      // loupe, loupe, real, so a load that drifts during the run weighs on both alike; each
      // figure is the mean of its two runs. LOUPE_BENCH_ONLY=loupe measures loupe's alone.
      if (process.env.LOUPE_BENCH_ONLY === 'loupe')
        return { entry: 'nucleus-vs-real', results: { loupe: await measure('loupe', initConfig, dir, 'l1') } };
      const r1 = await measure('real', initConfig, dir, 'r1');
      const l1 = await measure('loupe', initConfig, dir, 'l1');
      const l2 = await measure('loupe', initConfig, dir, 'l2');
      const r2 = await measure('real', initConfig, dir, 'r2');
      const mean = (a: Measured, b: Measured): Measured =>
        Object.fromEntries(
          Object.keys(a).map((k) => [k, +((a[k as keyof Measured] + b[k as keyof Measured]) / 2).toFixed(3)]),
        ) as unknown as Measured;
      const real = mean(r1, r2);
      const loupe = mean(l1, l2);
      return {
        entry: 'nucleus-vs-real',
        machine: { loadavg1Before: loadBefore, loadavg1After: loadavg()[0] },
        results: {
          messages: N,
          in_flight: WINDOW,
          one_at_a_time: M,
          real: { ...real },
          loupe: { ...loupe },
          runs: { real: [r1, r2], loupe: [l1, l2] },
          msgs_per_s_ratio_loupe_over_real: +(loupe.msgsPerS / real.msgsPerS).toFixed(3),
          rss_peak_ratio_loupe_over_real: +(loupe.rssPeakMiB / real.rssPeakMiB).toFixed(3),
          rss_idle_ratio_loupe_over_real: +(loupe.rssIdleMiB / real.rssIdleMiB).toFixed(3),
        },
        targets: [
          {
            name: 'msgs_per_s_ratio_loupe_over_real',
            value: +(loupe.msgsPerS / real.msgsPerS).toFixed(3),
            target: '>= 1 (loupe at least as fast)',
            met: loupe.msgsPerS >= real.msgsPerS,
          },
          {
            name: 'rss_peak_ratio_loupe_over_real',
            value: +(loupe.rssPeakMiB / real.rssPeakMiB).toFixed(3),
            target: '<= 0.5 (at most half the RSS)',
            met: loupe.rssPeakMiB <= real.rssPeakMiB / 2,
          },
          {
            name: 'delivered',
            value: real.delivered + loupe.delivered,
            target: `all ${2 * N} delivered`,
            met: real.delivered + loupe.delivered === 2 * N,
          },
        ],
      };
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  },
};

export default entry;
