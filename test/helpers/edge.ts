import { execFileSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { projectRoot } from '../../lib/paths.js';

/**
 * The edge components run as real processes under the local nucleus, from dist/. Compile when
 * any of their sources is newer than its output (tsc emits even when another helper's file has
 * a type error, so its exit code is not the judge: the emitted files are).
 */
export function ensureBuilt(): void {
  const dirs = ['components', 'embedded', 'test/helpers'];
  let stale = false;
  const walk = (rel: string) => {
    for (const e of readdirSync(join(projectRoot, rel), { withFileTypes: true })) {
      const r = join(rel, e.name);
      if (e.isDirectory()) walk(r);
      else if (e.name.endsWith('.ts') && !e.name.endsWith('.d.ts')) {
        const out = join(projectRoot, 'dist', r.replace(/\.ts$/, '.js'));
        let outM = 0;
        try {
          outM = statSync(out).mtimeMs;
        } catch {
          outM = 0;
        }
        if (statSync(join(projectRoot, r)).mtimeMs > outM) stale = true;
      }
    }
  };
  for (const d of dirs) walk(d);
  if (!stale) return;
  try {
    execFileSync(process.execPath, [join(projectRoot, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', projectRoot], {
      stdio: 'pipe',
      timeout: 300_000,
    });
  } catch {
    // type errors elsewhere still emit; a missing output is caught by the tests that need it
  }
}

export async function until<T>(
  fn: () => T | Promise<T>,
  timeoutMs: number,
  what: string | (() => string | Promise<string>),
  everyMs = 100,
): Promise<NonNullable<T>> {
  const t0 = Date.now();
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v as NonNullable<T>;
    } catch (e) {
      last = e;
    }
    if (Date.now() - t0 > timeoutMs)
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${typeof what === 'string' ? what : await what()}${last ? `: ${(last as Error).message}` : ''}`,
      );
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/**
 * Feed a watched camera folder at `fps`: `dropOne(i)` writes the i-th image and returns its frame
 * number; `stopAfter(n)` lets n more go, then resolves to the last frame number.
 */
export function dropping(fps: number, dropOne: (i: number) => Promise<number>): { stopAfter(n: number): Promise<number> } {
  let remaining = Infinity;
  let last = 0;
  const done = (async () => {
    for (let i = 0; remaining > 0; i++) {
      last = await dropOne(i);
      remaining--;
      await new Promise((r) => setTimeout(r, 1000 / fps));
    }
    return last;
  })();
  return {
    stopAfter(n: number) {
      remaining = n;
      return done;
    },
  };
}
