import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { delimiter, isAbsolute, join } from 'node:path';
import { createInterface } from 'node:readline';
import type { Writable } from 'node:stream';
import type { LogSink } from './rotating-log.js';

/**
 * One lifecycle script run as `sh -c <script>` in its own process group, so that stopping it
 * reaches the whole tree (sh, node, whatever it started): SIGTERM first, SIGKILL after a grace
 * period, as the real nucleus's Exec.close() does. As the real nucleus, a script that runs as
 * another user goes through `sudo -n -E -H -u USER -g GROUP -- sh -c <script>` (environment kept,
 * HOME and PATH from sudo), and a RequiresPrivilege step runs as the nucleus's own user.
 * stdout/stderr lines go to the component's log file unchanged (components log pino JSON;
 * keeping lines intact keeps them parseable).
 *
 * The group dies with the nucleus: a guard shell in the group holds one end of a pipe whose
 * other end only the nucleus holds; when the nucleus exits for any reason (kill -9 included)
 * the pipe closes and the guard kills its process group. The nucleus closes the pipe itself
 * once the script has exited, which sweeps up anything the script left behind in its group.
 * (Node cannot set PR_SET_PDEATHSIG, and the real nucleus leaves this to systemd's cgroup.)
 */
export interface RunningScript {
  readonly child: ChildProcess;
  readonly exited: Promise<number>;
  readonly running: boolean;
  /** The process group (the pid of the guard shell), for reaping after a crash. */
  readonly pgid: number | undefined;
  kill(graceMs: number): Promise<void>;
  /** Close the guard pipe: the guard kills whatever is left in the group. */
  release(): void;
}

/** Who a script runs as. */
export interface RunAs {
  user: string;
  group?: string;
}

// The guard: a background subshell waits on fd 3 (the nucleus's pipe) and kills the group when
// it reads end-of-file; the foreground shell closes its copy of fd 3 and becomes the script.
const GUARD = '( read _ <&3 || true; kill -KILL 0 ) & exec 3<&-; exec "$@"';

export interface ScriptOptions {
  script: string;
  cwd: string;
  env: NodeJS.ProcessEnv;
  log: LogSink;
  label: string;
  runAs?: RunAs;
  /**
   * Kill what the script leaves in its group as soon as it exits (install, run, shutdown,
   * recover). A Startup script's background processes are the component, so they stay.
   */
  sweepOnExit: boolean;
}

export function startScript(opts: ScriptOptions): RunningScript {
  const command = opts.runAs
    ? [
        'sudo',
        '-n',
        '-E',
        '-H',
        '-u',
        sudoName(opts.runAs.user),
        ...(opts.runAs.group ? ['-g', sudoName(opts.runAs.group)] : []),
        '--',
        'sh',
        '-c',
        opts.script,
      ]
    : ['sh', '-c', opts.script];
  const child = spawn('/bin/sh', ['-c', GUARD, 'loupe-guard', ...command], {
    cwd: opts.cwd,
    env: opts.env,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe', 'pipe'],
  });
  const guardPipe = child.stdio[3] as Writable | null;
  guardPipe?.on('error', () => {});
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
      // Whatever the script left in its group goes with it (the guard reads end-of-file).
      if (opts.sweepOnExit) guardPipe?.destroy();
      // A signal death reads as 128+n, as a shell would report it.
      resolve(code ?? (signal ? 128 + (signalNumbers[signal] ?? 1) : 1));
    });
  });
  return {
    child,
    exited,
    pgid: child.pid,
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
      guardPipe?.destroy();
    },
    release() {
      guardPipe?.destroy();
    },
  };
}

/** sudo takes numeric ids as #N. */
function sudoName(n: string): string {
  return /^\d+$/.test(n) ? `#${n}` : n;
}

const signalNumbers: Record<string, number> = { SIGHUP: 1, SIGINT: 2, SIGKILL: 9, SIGTERM: 15 };

export function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch (e) {
    // EPERM: the group exists but belongs to someone else.
    return (e as NodeJS.ErrnoException).code === 'EPERM';
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

export function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    /* group already gone */
  }
}

/** Start time of a process (clock ticks since boot, /proc/PID/stat field 22), to tell a reused pid apart. */
export function processStartTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces and parentheses: count from the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return fields[19];
  } catch {
    return undefined;
  }
}

/**
 * Greengrass SkipIf: "onpath <program>" or "exists <file>", optionally negated with "!".
 * Anything else is an error (the real nucleus errors the step).
 */
export function shouldSkip(skipIf: string | undefined, env: NodeJS.ProcessEnv, cwd: string): boolean {
  if (!skipIf) return false;
  let expr = skipIf.trim();
  let neg = false;
  if (expr.startsWith('!')) {
    neg = true;
    expr = expr.slice(1).trim();
  }
  const [kind, ...rest] = expr.split(/\s+/);
  const arg = rest.join(' ');
  let hit: boolean;
  if (kind === 'exists') hit = existsSync(isAbsolute(arg) ? arg : join(cwd, arg));
  else if (kind === 'onpath') hit = (env.PATH ?? '').split(delimiter).some((d) => d && existsSync(join(d, arg)));
  else throw new Error(`unknown SkipIf operator "${kind}"`);
  return hit !== neg;
}
