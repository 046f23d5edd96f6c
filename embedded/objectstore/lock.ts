import { readFileSync } from 'node:fs';
import { mkdir, open, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { LoupeError } from '../../lib/errors.js';

/**
 * One object store per data folder: `<dir>/LOCK` names the process holding it (pid and that
 * process's start time, so a recycled pid is not mistaken for the holder). A second store on
 * the same folder is refused with the holder's pid; a lock whose process is gone (kill -9, power
 * cut) is taken over. Two stores writing one folder would each keep their own in-memory index
 * and overwrite each other's records.
 */
export interface FolderLock {
  path: string;
  release(): Promise<void>;
}

interface Holder {
  pid: number;
  /** the process's start time in clock ticks since boot (Linux /proc), when known */
  started?: string;
}

function startTicks(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

function alive(h: Holder): boolean {
  try {
    process.kill(h.pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  const now = startTicks(h.pid);
  return h.started === undefined || now === undefined || now === h.started;
}

export async function lockFolder(dir: string, log?: { warn(o: object, m: string): void }): Promise<FolderLock> {
  await mkdir(dir, { recursive: true });
  const path = join(dir, 'LOCK');
  const me: Holder = { pid: process.pid, started: startTicks(process.pid) };
  const text = JSON.stringify(me);
  for (let attempt = 0; ; attempt++) {
    try {
      const fh = await open(path, 'wx', 0o644);
      try {
        await fh.writeFile(text);
        await fh.sync();
      } finally {
        await fh.close();
      }
      return {
        path,
        async release() {
          // only our own lock: a store that took over a lock we lost must keep it
          if ((await readFile(path, 'utf8').catch(() => '')) === text) await rm(path, { force: true });
        },
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    let holder: Holder | undefined;
    try {
      holder = JSON.parse(await readFile(path, 'utf8')) as Holder;
    } catch {
      holder = undefined; // torn or empty: its writer died before the write finished
    }
    if (holder && typeof holder.pid === 'number' && alive(holder)) {
      const who = `process ${holder.pid}${holder.pid === process.pid ? ' (this one: another object store in it)' : ''}`;
      throw new LoupeError(
        'objectstore.locked',
        `the data folder is in use by ${who}; stop that store or use another folder (lock file ${path})`,
        { input: dir },
      );
    }
    if (attempt >= 2) throw new LoupeError('objectstore.locked', `cannot take over the stale lock ${path}`, { input: dir });
    log?.warn({ path, holder }, 'object store: taking over a stale lock (its process is gone)');
    await rm(path, { force: true });
  }
}
