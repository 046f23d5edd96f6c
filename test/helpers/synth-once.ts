import { createHash } from 'node:crypto';
import { closeSync, existsSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { inject } from 'vitest';
import type { InfraConfig } from '../../cloud/infra/config.js';
import { summarizeAssembly, synthesize, type SynthSummary } from '../../cloud/infra/synth.js';
import { alive } from './nucleus.js';

/**
 * The CDK app synthesised once per configuration per vitest run, shared by every test file of the
 * run that asks for the same configuration (a synth costs ~8 CPU-s; five files of the unit tier
 * each ran one). The assembly lives in the run's folder (test/global-setup.ts: made for the run,
 * removed after it, emptied before a watch-mode rerun), so it is never older than the sources of
 * the run. Callers read the assembly and must not write into it.
 *
 * Files of one run asking at once: the first takes `<key>.lock` (O_EXCL) and synthesises; the
 * others wait for `<key>.done` (or `<key>.failed`, whose error they throw), or take over when the
 * lock's process has died. Outside a vitest run with the global setup, `fallbackDir` is used.
 */
const memo = new Map<string, Promise<SynthSummary>>();

export function synthesizedOnce(config: InfraConfig, fallbackDir: string): Promise<SynthSummary> {
  const runDir = inject('runDir');
  if (!runDir) return synthesize(config, fallbackDir);
  const key = createHash('sha256').update(JSON.stringify(config)).digest('hex').slice(0, 16);
  let p = memo.get(key);
  if (!p) {
    p = shared(config, join(runDir, `cdk-${key}`));
    memo.set(key, p);
    p.catch(() => memo.delete(key));
  }
  return p;
}

async function shared(config: InfraConfig, out: string): Promise<SynthSummary> {
  const lock = `${out}.lock`;
  const done = `${out}.done`;
  const failed = `${out}.failed`;
  for (;;) {
    if (existsSync(done)) return summarizeAssembly(out);
    if (existsSync(failed)) throw new Error(`the shared CDK synth failed in another test file: ${readFileSync(failed, 'utf8')}`);
    let fd: number | undefined;
    try {
      fd = openSync(lock, 'wx');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    if (fd !== undefined) {
      writeSync(fd, String(process.pid));
      closeSync(fd);
      try {
        rmSync(out, { recursive: true, force: true }); // what a dead holder left
        const summary = await synthesize(config, out);
        writeFileSync(done, '');
        return summary;
      } catch (e) {
        writeFileSync(failed, e instanceof Error ? (e.stack ?? e.message) : String(e));
        throw e;
      } finally {
        rmSync(lock, { force: true });
      }
    }
    // Another file holds the lock: wait, or take over when its process is gone.
    let holder = NaN;
    try {
      holder = Number(readFileSync(lock, 'utf8') || NaN);
    } catch {
      // Released between our two looks: the loop looks again.
    }
    if (Number.isInteger(holder) && holder > 0 && !alive(holder)) rmSync(lock, { force: true });
    await new Promise((r) => setTimeout(r, 200));
  }
}
