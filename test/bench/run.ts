import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { writeFile, mkdir } from 'node:fs/promises';
import { cpus, totalmem } from 'node:os';

/**
 * `npm run bench`: runs every `*.bench.js` entry in this folder (or those named on the command
 * line), in file-name order, and prints each entry's report: what it measured on this machine,
 * side by side with its baseline, with the target it checks. Reports also land in
 * test-artifacts/bench/<entry>.json.
 */
export interface BenchReport {
  entry: string;
  machine?: Record<string, unknown>;
  results: Record<string, unknown>;
  targets?: { name: string; value: number; target: string; met: boolean }[];
}

export interface BenchEntry {
  name: string;
  run(): Promise<BenchReport>;
}

const here = dirname(fileURLToPath(import.meta.url));
const only = process.argv.slice(2);
const files = readdirSync(here)
  .filter((f) => f.endsWith('.bench.js'))
  .filter((f) => only.length === 0 || only.some((o) => f.includes(o)))
  .sort();
const machine = { cpus: cpus().length, cpu: cpus()[0]?.model, memGiB: +(totalmem() / 2 ** 30).toFixed(1), node: process.version };
const outDir = join(process.cwd(), 'test-artifacts', 'bench');
await mkdir(outDir, { recursive: true });
let failed = 0;
for (const f of files) {
  const mod = (await import(pathToFileURL(join(here, f)).href)) as { default: BenchEntry };
  process.stderr.write(`bench: ${mod.default.name} ...\n`);
  try {
    const report = await mod.default.run();
    report.machine = { ...machine, ...report.machine };
    await writeFile(join(outDir, `${mod.default.name}.json`), JSON.stringify(report, null, 2));
    process.stdout.write(JSON.stringify(report) + '\n');
  } catch (e) {
    failed++;
    process.stderr.write(`bench: ${mod.default.name} failed: ${(e as Error).stack ?? e}\n`);
  }
}
process.exitCode = failed ? 1 : 0;
