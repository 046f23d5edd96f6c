import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { pathToFileURL } from 'node:url';
import { projectRoot } from '../../lib/paths.js';
import { startBroker } from '../../embedded/broker/broker.js';
import { NucleusCliClient } from '../../embedded/nucleus/cli-client.js';
import { cpuSeconds, pct, procStatus, waitFile } from './proc.js';
import type { BenchEntry } from './run.js';

/**
 * Local nucleus IPC speed between components (test/fixtures/nucleus/bench-peer.mjs, the real
 * greengrasscoreipc client) under a nucleus started with `loupe nucleus start`. A publisher sends
 * small JSON messages ({seq, t}) to a topic with 256 publishes in flight; a subscriber component
 * receives them. Measured at the subscriber, end to end:
 *  - ipc_msgs_per_s: one publisher component -> one subscriber, 20,000 messages;
 *  - ipc_2pub_msgs_per_s: two publisher components -> one subscriber (aggregate), which shows
 *    how much the nucleus itself carries when one client process is not the limit;
 *  - latency publish -> receipt, p50/p99, under that load and one message at a time;
 *  - CPU per message of the nucleus, the publisher and the subscriber processes;
 *  - RSS of the nucleus process (`loupe nucleus start`, which also loads every other loupe
 *    sub-command's modules) and of a bare process running only the Nucleus class.
 * Baseline, in the same run: the same two programs over MQTT (mqtt.js; publishes at QoS 1 so each
 * completes on the broker's PUBACK like an IPC publish on the nucleus's reply; the subscriber at
 * QoS 0) through the embedded aedes broker, loupe's other local messaging path. Target: >= 5,000 msgs/s on 2 cores. The
 * machine is shared with other work, so the load average is reported with the numbers.
 */
const N = 20_000;
const WINDOW = 256;
const M = 2_000;
const PEER = join(projectRoot, 'test', 'fixtures', 'nucleus', 'bench-peer.mjs');

interface SubResult {
  received: number;
  firstAt: number;
  lastAt: number;
  cpuMs: number;
  latencies: number[];
}
interface PubResult {
  startedAt: number;
  publishMs: number;
  cpuMs: number;
}

const readJson = <T>(p: string) => JSON.parse(readFileSync(p, 'utf8')) as T;

function spawnStarted(args: string[], env: NodeJS.ProcessEnv): Promise<ChildProcess> {
  const p = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'], env });
  return new Promise((resolve, reject) => {
    createInterface({ input: p.stdout! }).once('line', () => resolve(p));
    p.once('exit', (c) => reject(new Error(`${args.join(' ')} exited with ${c}`)));
  });
}

const entry: BenchEntry = {
  name: 'ipc',
  async run() {
    const tmp = mkdtempSync('/tmp/lb-');
    const dir = join(tmp, 'bench');
    mkdirSync(dir);
    const procs: ChildProcess[] = [];
    const loadBefore = loadavg()[0];
    try {
      // --- the nucleus as users run it ----------------------------------------------------
      const root = join(tmp, 'gg');
      const nucleus = await spawnStarted([join(projectRoot, 'bin', 'loupe.js'), 'nucleus', 'start', '--root', root, '--mqtt', 'none'], {
        ...process.env,
        LOUPE_LOG_LEVEL: 'warn',
      });
      procs.push(nucleus);
      const idle = procStatus(nucleus.pid!);
      const client = await NucleusCliClient.connect(root);

      const recipeDirFor = (run: string) => join(tmp, `recipes-${run}`);
      const deployRun = async (run: string, pubs: number, m: number) => {
        const rdir = recipeDirFor(run);
        mkdirSync(rdir);
        const names: Record<string, string> = {};
        const peers: { name: string; env: Record<string, string> }[] = [{ name: `bench.${run}.Sub`, env: { BENCH_ROLE: 'sub' } }];
        for (let i = 0; i < pubs; i++) peers.push({ name: `bench.${run}.Pub${i}`, env: { BENCH_ROLE: 'pub', BENCH_INDEX: String(i) } });
        for (const p of peers) {
          names[p.name] = '1.0.0';
          writeFileSync(
            join(rdir, `${p.name}.json`),
            JSON.stringify({
              RecipeFormatVersion: '2020-01-25',
              ComponentName: p.name,
              ComponentVersion: '1.0.0',
              ComponentConfiguration: {
                DefaultConfiguration: {
                  accessControl: { 'aws.greengrass.ipc.pubsub': { b: { operations: ['*'], resources: ['bench/*'] } } },
                },
              },
              Manifests: [
                {
                  Lifecycle: {
                    Setenv: {
                      BENCH_DIR: dir,
                      BENCH_RUN: run,
                      BENCH_MODE: 'ipc',
                      BENCH_PUBS: String(pubs),
                      BENCH_N: String(N),
                      BENCH_WINDOW: String(WINDOW),
                      BENCH_M: String(m),
                      ...p.env,
                    },
                    Run: `exec node ${PEER}`,
                  },
                },
              ],
            }),
          );
        }
        const id = await client.createLocalDeployment({ recipeDirectoryPath: rdir, rootComponentVersionsToAdd: names });
        const s = await client.waitForDeployment(id);
        if (s.status !== 'SUCCEEDED') throw new Error(`bench deployment failed: ${JSON.stringify(s)}`);
        return Object.keys(names);
      };
      const measure = async (run: string, pubs: number, withLatency: boolean, pid?: number) => {
        await waitFile(join(dir, `ready-${run}`), 60_000);
        const cpu0 = pid ? cpuSeconds(pid) : 0;
        writeFileSync(join(dir, `go-${run}`), '');
        await waitFile(join(dir, `result-${run}-throughput.json`), 300_000);
        const cpu1 = pid ? cpuSeconds(pid) : 0;
        if (withLatency) await waitFile(join(dir, `result-${run}-latency.json`), 300_000);
        const tp = readJson<SubResult>(join(dir, `result-${run}-throughput.json`));
        const pubResults = Array.from({ length: pubs }, (_, i) => readJson<PubResult>(join(dir, `pub-${run}-${i}.json`)));
        const start = Math.min(...pubResults.map((p) => p.startedAt));
        const lat = withLatency ? readJson<SubResult>(join(dir, `result-${run}-latency.json`)) : undefined;
        return {
          delivered: tp.received,
          msgsPerS: Math.round(tp.received / ((tp.lastAt - start) / 1000)),
          loadedP50: pct(tp.latencies, 50),
          loadedP99: pct(tp.latencies, 99),
          singleP50: lat ? pct(lat.latencies, 50) : NaN,
          singleP99: lat ? pct(lat.latencies, 99) : NaN,
          usPerMsgBroker: pid ? Math.round(((cpu1 - cpu0) * 1e6) / tp.received) : NaN,
          usPerMsgPub: Math.round((pubResults[0]!.cpuMs * 1000) / N),
          usPerMsgSub: Math.round((tp.cpuMs * 1000) / tp.received),
        };
      };

      const run1Names = await deployRun('ipc1', 1, M);
      const ipc1 = await measure('ipc1', 1, true, nucleus.pid);
      const removed = await client.waitForDeployment(await client.createLocalDeployment({ rootComponentsToRemove: run1Names }));
      if (removed.status !== 'SUCCEEDED') throw new Error('could not remove the first run');
      await deployRun('ipc2', 2, 0);
      const ipc2 = await measure('ipc2', 2, false, nucleus.pid);
      const after = procStatus(nucleus.pid!);
      await client.close();
      nucleus.kill('SIGTERM');
      await new Promise((r) => nucleus.once('exit', r));

      // --- a bare nucleus process (only the Nucleus class), for its own footprint -----------
      const bareRoot = join(tmp, 'bare');
      const nucleusModule = pathToFileURL(join(projectRoot, 'dist', 'embedded', 'nucleus', 'nucleus.js')).href;
      const bare = await spawnStarted(
        [
          '--input-type=module',
          '-e',
          `const { Nucleus } = await import(${JSON.stringify(nucleusModule)}); const n = new Nucleus({ root: ${JSON.stringify(bareRoot)}, mqttUrl: false }); await n.start(); console.log('up'); process.on('SIGTERM', () => n.stop().then(() => process.exit(0)));`,
        ],
        process.env,
      );
      procs.push(bare);
      await new Promise((r) => setTimeout(r, 500));
      const bareIdle = procStatus(bare.pid!);
      bare.kill('SIGTERM');
      await new Promise((r) => bare.once('exit', r));

      // --- baseline: the same programs over MQTT through the embedded broker ---------------
      const broker = await startBroker();
      let mq;
      try {
        for (const [role, extra] of [
          ['sub', {}],
          ['pub', { BENCH_INDEX: '0' }],
        ] as const) {
          procs.push(
            spawn(process.execPath, [PEER], {
              stdio: 'ignore',
              env: {
                ...process.env,
                ...extra,
                BENCH_DIR: dir,
                BENCH_ROLE: role,
                BENCH_RUN: 'mqtt1',
                BENCH_MODE: 'mqtt',
                MQTT_URL: broker.url,
                BENCH_PUBS: '1',
                BENCH_N: String(N),
                BENCH_WINDOW: String(WINDOW),
                BENCH_M: String(M),
              },
            }),
          );
          if (role === 'sub') await waitFile(join(dir, 'ready-mqtt1'), 60_000);
        }
        mq = await measure('mqtt1', 1, true, process.pid);
      } finally {
        for (const p of procs) if (p.exitCode === null) p.kill('SIGKILL');
        await broker.stop();
      }
      return {
        entry: 'ipc',
        machine: { loadavg1Before: loadBefore, loadavg1After: loadavg()[0] },
        results: {
          messages_per_publisher: N,
          in_flight_per_publisher: WINDOW,
          ipc_msgs_per_s: ipc1.msgsPerS,
          ipc_delivered: ipc1.delivered,
          ipc_latency_ms_p50_loaded: ipc1.loadedP50,
          ipc_latency_ms_p99_loaded: ipc1.loadedP99,
          ipc_latency_ms_p50_one_at_a_time: ipc1.singleP50,
          ipc_latency_ms_p99_one_at_a_time: ipc1.singleP99,
          ipc_cpu_us_per_msg_nucleus: ipc1.usPerMsgBroker,
          ipc_cpu_us_per_msg_publisher_client: ipc1.usPerMsgPub,
          ipc_cpu_us_per_msg_subscriber_client: ipc1.usPerMsgSub,
          ipc_2pub_msgs_per_s: ipc2.msgsPerS,
          ipc_2pub_delivered: ipc2.delivered,
          ipc_2pub_cpu_us_per_msg_nucleus: ipc2.usPerMsgBroker,
          nucleus_rss_mib_idle_via_cli: +idle.rss.toFixed(1),
          nucleus_rss_mib_after_runs_via_cli: +after.rss.toFixed(1),
          nucleus_rss_mib_peak_via_cli: +after.hwm.toFixed(1),
          nucleus_rss_mib_idle_bare: +bareIdle.rss.toFixed(1),
          baseline_mqtt_aedes_msgs_per_s: mq.msgsPerS,
          baseline_mqtt_aedes_delivered: mq.delivered,
          baseline_mqtt_latency_ms_p50_loaded: mq.loadedP50,
          baseline_mqtt_latency_ms_p99_loaded: mq.loadedP99,
          baseline_mqtt_latency_ms_p50_one_at_a_time: mq.singleP50,
          baseline_mqtt_latency_ms_p99_one_at_a_time: mq.singleP99,
          baseline_mqtt_cpu_us_per_msg_broker: mq.usPerMsgBroker,
          baseline_mqtt_cpu_us_per_msg_publisher_client: mq.usPerMsgPub,
        },
        targets: [
          {
            name: 'ipc_msgs_per_s',
            value: ipc1.msgsPerS,
            target: '>= 5000 small messages/s between two components on 2 cores',
            met: ipc1.msgsPerS >= 5000,
          },
          {
            name: 'ipc_delivered',
            value: ipc1.delivered + ipc2.delivered,
            target: `all ${3 * N} delivered`,
            met: ipc1.delivered + ipc2.delivered === 3 * N,
          },
        ],
      };
    } finally {
      for (const p of procs) if (p.exitCode === null) p.kill('SIGKILL');
      await rm(tmp, { recursive: true, force: true });
    }
  },
};

export default entry;
