import { spawn, type ChildProcess } from 'node:child_process';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import type { Logger } from 'pino';
import { LoupeError } from '../../lib/errors.js';
import { silentLogger } from '../../lib/log.js';
import { projectRoot } from '../../lib/paths.js';
import { storeHandle, type ObjectStore } from './index.js';
import { loadOrCreateKeys } from './keys.js';

/**
 * The object store in its own process (`loupe objectstore serve`), supervised: `edge up` and the
 * demo run it this way so that a request that crashes or exhausts the store (or a bug in it)
 * cannot take the nucleus, the broker and the components down with it. If the child dies it is
 * started again on the same port and folder (its folder lock and durable writes make that safe),
 * with a growing pause between restarts; the child exits by itself when this process goes away
 * (its IPC channel closes), so a kill -9 of the stack leaves no store behind.
 */
export interface ObjectStoreProcessOptions {
  dir: string;
  port?: number;
  host?: string;
  region?: string;
  buckets?: string[];
  log?: Logger;
  /** restart the child when it dies (default true) */
  restart?: boolean;
  /** how long to wait for the child to listen, ms */
  startTimeoutMs?: number;
}

export interface ObjectStoreProcess extends ObjectStore {
  /** pid of the current child (undefined while it is being restarted) */
  pid(): number | undefined;
  /** how many times the child was restarted after dying */
  restarts(): number;
  /** resolves when the child is listening again after a restart */
  ready(): Promise<void>;
}

interface Ready {
  endpoint: string;
  port: number;
  region: string;
  pid: number;
}

const LEVELS: Record<number, 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal'> = {
  10: 'trace',
  20: 'debug',
  30: 'info',
  40: 'warn',
  50: 'error',
  60: 'fatal',
};

function spawnStore(
  o: { dir: string; port: number; host: string; region: string; buckets: string[] },
  log: Logger,
  timeoutMs: number,
): Promise<{ child: ChildProcess; ready: Ready }> {
  const args = [
    join(projectRoot, 'bin', 'loupe.js'),
    'objectstore',
    'serve',
    '--dir',
    o.dir,
    '--port',
    String(o.port),
    '--host',
    o.host,
    '--region',
    o.region,
  ];
  for (const b of o.buckets) args.push('--bucket', b);
  const child = spawn(process.execPath, args, {
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    env: { ...process.env, LOUPE_LOG_LEVEL: process.env.LOUPE_LOG_LEVEL ?? (log.isLevelEnabled('debug') ? 'debug' : 'info') },
  });
  // The channel only tells the child when this process is gone; it must not keep this one alive.
  (child.channel as { unref?: () => void } | undefined)?.unref?.();
  // The child's structured log lines, re-emitted on this process's logger.
  const errTail: string[] = [];
  createInterface({ input: child.stderr! }).on('line', (line) => {
    errTail.push(line);
    if (errTail.length > 20) errTail.shift();
    try {
      const {
        level,
        msg,
        time: _t,
        pid,
        name: _n,
        ...rest
      } = JSON.parse(line) as { level: number; msg?: string; time?: string; pid?: number; name?: string };
      log[LEVELS[level] ?? 'info']({ ...rest, childPid: pid }, msg ?? '');
    } catch {
      log.warn({ line }, 'object store process');
    }
  });
  return new Promise((res, rej) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      rej(
        new LoupeError(
          'objectstore.start',
          `the object store process did not start listening within ${timeoutMs} ms: ${errTail.join('\n')}`,
          { input: o.dir },
        ),
      );
    }, timeoutMs);
    const lines = createInterface({ input: child.stdout! });
    lines.once('line', (line) => {
      clearTimeout(timer);
      try {
        res({ child, ready: JSON.parse(line) as Ready });
      } catch {
        child.kill('SIGKILL');
        rej(
          new LoupeError('objectstore.start', `unexpected output from the object store process: ${line.slice(0, 200)}`, { input: o.dir }),
        );
      }
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      // after a successful start this rejection is ignored (the promise is settled)
      rej(
        new LoupeError(
          'objectstore.start',
          `the object store process exited (${signal ?? `code ${code}`}) before listening: ${errTail.slice(-5).join('\n')}`,
          { input: o.dir },
        ),
      );
    });
  });
}

export async function startObjectStoreProcess(opts: ObjectStoreProcessOptions): Promise<ObjectStoreProcess> {
  const dir = resolve(opts.dir);
  const log = opts.log ?? silentLogger;
  const host = opts.host ?? '127.0.0.1';
  const region = opts.region ?? 'us-east-1';
  const timeoutMs = opts.startTimeoutMs ?? 30_000;
  // The keys exist before the child starts, so this process (and the TES) can read them.
  const keys = await loadOrCreateKeys(dir);
  const first = await spawnStore({ dir, port: opts.port ?? 0, host, region, buckets: opts.buckets ?? [] }, log, timeoutMs);
  const port = first.ready.port;
  let child: ChildProcess | undefined = first.child;
  let stopping = false;
  let restarts = 0;
  let startedAt = Date.now();
  let readyNow: Promise<void> = Promise.resolve();
  let backoffMs = 500;

  const watch = (c: ChildProcess) => {
    c.once('exit', (code, signal) => {
      if (child === c) child = undefined;
      if (stopping || opts.restart === false) return;
      if (Date.now() - startedAt > 60_000) backoffMs = 500; // it ran a while: start again quickly
      log.error({ code, signal, restartInMs: backoffMs }, 'object store process died; restarting it');
      readyNow = (async () => {
        while (!stopping) {
          await new Promise((r) => setTimeout(r, backoffMs));
          backoffMs = Math.min(backoffMs * 2, 30_000);
          if (stopping) return;
          try {
            const next = await spawnStore({ dir, port, host, region, buckets: [] }, log, timeoutMs);
            if (stopping) {
              next.child.kill('SIGTERM');
              return;
            }
            child = next.child;
            restarts++;
            startedAt = Date.now();
            watch(next.child);
            log.info({ pid: next.child.pid, port, restarts }, 'object store process restarted');
            return;
          } catch (e) {
            log.error({ err: (e as Error).message }, 'object store process failed to restart; trying again');
          }
        }
      })();
    });
  };
  watch(first.child);

  const endpoint = first.ready.endpoint;
  let stopped: Promise<void> | undefined;
  return {
    ...storeHandle(endpoint, port, dir, region, keys),
    pid: () => child?.pid,
    restarts: () => restarts,
    ready: () => readyNow,
    stop() {
      stopping = true;
      stopped ??= (async () => {
        // a failed start was reported to whoever awaited ready; stopping only needs it settled
        await readyNow.catch(() => {});
        const c = child;
        if (!c || c.exitCode !== null || c.signalCode !== null) return;
        const exited = new Promise<void>((r) => c.once('exit', () => r()));
        c.kill('SIGTERM');
        const t = setTimeout(() => c.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(t);
      })();
      return stopped;
    },
  };
}
