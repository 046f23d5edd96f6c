import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { delimiter, isAbsolute, join } from 'node:path';
import { createInterface } from 'node:readline';
import type { LogSink } from './rotating-log.js';

/**
 * One lifecycle script run as `sh -c <script>` in its own process group, so that stopping it
 * reaches the whole tree (sh, node, whatever it started): SIGTERM first, SIGKILL after a grace
 * period, as the real nucleus's Exec.close() does. stdout/stderr lines go to the component's own
 * log file unchanged (components log pino JSON; keeping lines intact keeps them parseable).
 */
export interface RunningScript {
  readonly child: ChildProcess;
  readonly exited: Promise<number>;
  readonly running: boolean;
  kill(graceMs: number): Promise<void>;
}

export function startScript(opts: { script: string; cwd: string; env: NodeJS.ProcessEnv; log: LogSink; label: string }): RunningScript {
  const child = spawn('/bin/sh', ['-c', opts.script], { cwd: opts.cwd, env: opts.env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let running = true;
  const pipe = (s: NodeJS.ReadableStream | null) => {
    if (!s) return;
    const rl = createInterface({ input: s, crlfDelay: Infinity });
    rl.on('line', (line) => {
      if (!opts.log.destroyed) opts.log.write(line + '\n');
    });
  };
  pipe(child.stdout);
  pipe(child.stderr);
  const exited = new Promise<number>((resolve) => {
    child.on('error', (e) => {
      if (!opts.log.destroyed) opts.log.write(`[nucleus] ${opts.label}: cannot start: ${e.message}\n`);
      running = false;
      resolve(127);
    });
    child.on('exit', (code, signal) => {
      running = false;
      // A signal death reads as 128+n, as a shell would report it.
      resolve(code ?? (signal ? 128 + (signalNumbers[signal] ?? 1) : 1));
    });
  });
  return {
    child,
    exited,
    get running() {
      return running;
    },
    async kill(graceMs: number) {
      if (!running || child.pid === undefined) return;
      signalGroup(child.pid, 'SIGTERM');
      const timer = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), graceMs).unref());
      if ((await Promise.race([exited, timer])) === 'timeout') {
        signalGroup(child.pid, 'SIGKILL');
        await exited;
      }
      // Children that outlived sh in the group (background jobs) get the same treatment.
      signalGroup(child.pid, 'SIGKILL');
    },
  };
}

const signalNumbers: Record<string, number> = { SIGHUP: 1, SIGINT: 2, SIGKILL: 9, SIGTERM: 15 };

function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Stop whatever is left of a script's process group after its shell has exited (a Startup
 * script that started a daemon, a background job of a Run script): SIGTERM, then SIGKILL after
 * the grace period.
 */
export async function killGroup(pgid: number, graceMs: number): Promise<void> {
  if (!groupAlive(pgid)) return;
  signalGroup(pgid, 'SIGTERM');
  const deadline = Date.now() + graceMs;
  while (groupAlive(pgid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  if (groupAlive(pgid)) signalGroup(pgid, 'SIGKILL');
}

function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    /* group already gone */
  }
}

/** Greengrass SkipIf: "onpath <program>" or "exists <file>". */
export function shouldSkip(skipIf: string | undefined, env: NodeJS.ProcessEnv, cwd: string): boolean {
  if (!skipIf) return false;
  const [kind, ...rest] = skipIf.trim().split(/\s+/);
  const arg = rest.join(' ');
  if (kind === 'exists') return existsSync(isAbsolute(arg) ? arg : join(cwd, arg));
  if (kind === 'onpath') return (env.PATH ?? '').split(delimiter).some((d) => d && existsSync(join(d, arg)));
  return false;
}
