import { GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { readFile, mkdtemp, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { startObjectStore, type ObjectStore } from '../../embedded/objectstore/index.js';
import { startObjectStoreProcess } from '../../embedded/objectstore/process.js';
import type { BenchEntry } from './run.js';

/**
 * What running the object store in its own supervised process (as `edge up` and the demo do)
 * costs, next to the store inside the caller's process (the baseline):
 *  - start time to listening (ms), in-process vs child process;
 *  - the child's resident memory when idle and after the load (VmRSS, MiB);
 *  - PUT + GET round trips of 64 KiB objects through @aws-sdk/client-s3, 4 in flight, in
 *    alternating rounds against both stores (req/s, median of the rounds).
 * No target: the isolation is required (issue 14, item 2); this says what it costs. The machine
 * is shared: the load average is reported.
 */
const ROUNDS = 5;
const PER_ROUND = 100;

async function rssMiB(pid: number): Promise<number> {
  const t = await readFile(`/proc/${pid}/status`, 'utf8');
  return +(Number(/VmRSS:\s+(\d+)/.exec(t)?.[1] ?? 0) / 1024).toFixed(1);
}

async function round(store: ObjectStore, bucket: string, n: number): Promise<number> {
  const s3 = new S3Client({ ...store.clientConfig, maxAttempts: 1 });
  const body = Buffer.alloc(64 * 1024, 7);
  let next = 0;
  const t0 = performance.now();
  const worker = async () => {
    while (next < n) {
      const k = `o/${next++}`;
      await s3.send(new PutObjectCommand({ Bucket: bucket, Key: k, Body: body }));
      await (await s3.send(new GetObjectCommand({ Bucket: bucket, Key: k }))).Body!.transformToByteArray();
    }
  };
  await Promise.all([worker(), worker(), worker(), worker()]);
  const s = (performance.now() - t0) / 1000;
  s3.destroy();
  return (2 * n) / s;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const entry: BenchEntry = {
  name: '05-objectstore',
  async run() {
    const tmp = await mkdtemp(join(tmpdir(), 'loupe-bench-os-'));
    const load0 = loadavg();
    let t = performance.now();
    const inproc = await startObjectStore({ dir: join(tmp, 'in'), buckets: ['b'] });
    const startInMs = performance.now() - t;
    t = performance.now();
    const child = await startObjectStoreProcess({ dir: join(tmp, 'child'), buckets: ['b'] });
    const startChildMs = performance.now() - t;
    try {
      const idle = await rssMiB(child.pid()!);
      const a: number[] = [];
      const b: number[] = [];
      for (let i = 0; i < ROUNDS; i++) {
        a.push(await round(inproc, 'b', PER_ROUND));
        b.push(await round(child, 'b', PER_ROUND));
      }
      const after = await rssMiB(child.pid()!);
      return {
        entry: '05-objectstore',
        machine: { loadavg_before: load0, loadavg_after: loadavg() },
        results: {
          start_ms_in_process: +startInMs.toFixed(0),
          start_ms_child_process: +startChildMs.toFixed(0),
          child_rss_mib_idle: idle,
          child_rss_mib_after_load: after,
          req_per_s_in_process_median: +median(a).toFixed(1),
          req_per_s_child_process_median: +median(b).toFixed(1),
          req_per_s_in_process_rounds: a.map((x) => +x.toFixed(1)),
          req_per_s_child_process_rounds: b.map((x) => +x.toFixed(1)),
          child_vs_in_process: +(median(b) / median(a)).toFixed(3),
        },
      };
    } finally {
      await child.stop();
      await inproc.stop();
      await rm(tmp, { recursive: true, force: true });
    }
  },
};

export default entry;
