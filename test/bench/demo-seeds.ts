import { spawn } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { cpus, loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { DemoSummary } from '../../cli/demo.js';

/**
 * `npm run demo:seeds [-- --runs 3] [--seeds 1,2,3] [--fast]`: the full demo N times, each with
 * its own seed (simulated labelling noise and training), each as `loupe demo --json --seed S` in
 * its own process, one after another (they share the machine's cores). Prints every run's
 * summary line, then one line with the benchmark-set gain (challenger - champion, mAP50 and
 * mAP50-95): values, mean, sample standard deviation, min, max; the load average is reported
 * because training runs on a time budget and fits fewer epochs on a busy machine. The report is
 * also written to test-artifacts/bench/demo-seeds.json.
 */
const { values } = parseArgs({
  options: { runs: { type: 'string', default: '3' }, seeds: { type: 'string' }, fast: { type: 'boolean', default: false } },
});
const runs = Number(values.runs);
if (!Number.isInteger(runs) || runs < 1) throw new Error(`--runs must be a positive integer, got ${values.runs}`);
const seeds = values.seeds ? values.seeds.split(',').map((s) => Number(s.trim())) : Array.from({ length: runs }, (_, i) => i + 1);
if (seeds.some((s) => !Number.isInteger(s) || s < 0)) throw new Error(`--seeds must be non-negative integers, got ${values.seeds}`);

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const bin = join(root, 'bin', 'loupe.js');

function demo(seed: number): Promise<{ code: number | null; summary: DemoSummary | null; wallS: number }> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const args = [bin, 'demo', '--json', '--seed', String(seed), ...(values.fast ? ['--fast'] : [])];
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    let stdout = '';
    child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      const last = stdout.trim().split('\n').at(-1) ?? '';
      let summary: DemoSummary | null = null;
      try {
        summary = JSON.parse(last) as DemoSummary;
      } catch {
        summary = null;
      }
      resolve({ code, summary, wallS: (performance.now() - t0) / 1000 });
    });
  });
}

function stats(xs: number[]) {
  if (xs.length === 0) return null;
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  const sd = xs.length > 1 ? Math.sqrt(xs.reduce((a, b) => a + (b - mean) ** 2, 0) / (xs.length - 1)) : 0;
  const r = (x: number) => +x.toFixed(4);
  return { values: xs.map(r), mean: r(mean), sd: r(sd), min: r(Math.min(...xs)), max: r(Math.max(...xs)) };
}

const rows: {
  seed: number;
  ok: boolean;
  exit: number | null;
  wallS: number;
  loadavg1Before: number;
  loadavg1After: number;
  summary: DemoSummary | null;
}[] = [];
for (const seed of seeds) {
  process.stderr.write(`demo:seeds: run ${rows.length + 1}/${seeds.length}, seed ${seed} ...\n`);
  const load = loadavg()[0]!;
  const r = await demo(seed);
  rows.push({
    seed,
    ok: r.summary?.ok === true,
    exit: r.code,
    wallS: +r.wallS.toFixed(1),
    loadavg1Before: load,
    loadavg1After: loadavg()[0]!,
    summary: r.summary,
  });
  process.stdout.write(JSON.stringify({ seed, exit: r.code, summary: r.summary }) + '\n');
}
const gains = rows.map((r) => r.summary?.benchmark?.gain).filter((g): g is NonNullable<typeof g> => !!g);
const report = {
  entry: 'demo-seeds',
  machine: { cpus: cpus().length, cpu: cpus()[0]?.model, node: process.version },
  fast: values.fast,
  runs: rows.map((r) => ({
    seed: r.seed,
    ok: r.ok,
    exit: r.exit,
    seconds: r.summary?.seconds.total ?? null,
    trainSeconds: r.summary?.seconds.train ?? null,
    loadavg1Before: r.loadavg1Before,
    loadavg1After: r.loadavg1After,
    uploaded: r.summary?.imagesUploaded ?? null,
    approved: r.summary?.labelsApproved ?? null,
    gate: r.summary?.gate
      ? {
          passed: r.summary.gate.passed,
          split: r.summary.gate.split,
          images: r.summary.gate.images,
          champion: r.summary.gate.champion,
          challenger: r.summary.gate.challenger,
        }
      : null,
    benchmark: r.summary?.benchmark ?? null,
    error: r.summary?.error ?? (r.summary ? null : 'no summary'),
  })),
  gainMap50: stats(gains.map((g) => g.map50)),
  gainMap50_95: stats(gains.map((g) => g.map50_95)),
  target: 'challenger - champion >= 0.10 mAP50 on the benchmark set, demo within 900 s',
  met: rows.every((r) => r.ok && (r.summary?.benchmark?.gain?.map50 ?? -1) >= 0.1 && (r.summary?.seconds.total ?? Infinity) <= 900),
};
const out = join(process.cwd(), 'test-artifacts', 'bench');
await mkdir(out, { recursive: true });
await writeFile(join(out, 'demo-seeds.json'), JSON.stringify(report, null, 2) + '\n');
process.stdout.write(JSON.stringify({ gainMap50: report.gainMap50, gainMap50_95: report.gainMap50_95, met: report.met }) + '\n');
process.exitCode = rows.every((r) => r.ok) ? 0 : 1;
