import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import type { Logger } from 'pino';
import { LoupeError } from '../../../lib/errors.js';
import { groupAlive, processStartTime, signalGroup } from './process.js';
import type { ResolvedRunAs } from './runwith.js';

/**
 * The nucleus root on disk, laid out and protected as the real nucleus lays it out (checked by
 * test/nucleus-diff): the root, work/, packages/, packages/artifacts and
 * packages/artifacts-unarchived are 0755 (components reach their own folders through them);
 * logs/, config/, deployments/ and packages/recipes are 0700 (the nucleus's only).
 */
const LAYOUT: [string, number][] = [
  ['.', 0o755],
  ['work', 0o755],
  ['packages', 0o755],
  ['packages/artifacts', 0o755],
  ['packages/artifacts-unarchived', 0o755],
  ['packages/recipes', 0o700],
  ['logs', 0o700],
  ['config', 0o700],
  ['deployments', 0o700],
];

export async function prepareRootLayout(root: string): Promise<void> {
  for (const [rel, mode] of LAYOUT) {
    const p = join(root, rel);
    mkdirSync(p, { recursive: true });
    chmodSync(p, mode);
  }
}

/**
 * Components run as another user (ggc_user) must be able to reach their work folder, artefacts
 * and the IPC socket under the root, so every folder above it must let others through (x).
 * Temporary folders the tools themselves made (mkdtemp is 0700) get o+x here, said in the log;
 * any other folder in the way is an error naming it, rather than components failing later with
 * EACCES.
 */
export function ensureReachable(root: string, runAs: ResolvedRunAs, log: Logger): void {
  const tmp = resolve(tmpdir());
  let dir = dirname(resolve(root));
  for (;;) {
    const st = statSync(dir);
    const reachable =
      (st.mode & 0o001) !== 0 || (st.uid === runAs.uid && (st.mode & 0o100) !== 0) || (st.gid === runAs.gid && (st.mode & 0o010) !== 0);
    if (!reachable) {
      if (dir.startsWith(tmp + '/')) {
        chmodSync(dir, (st.mode & 0o7777) | 0o001);
        log.info(
          { dir, user: runAs.user },
          'made a temporary folder above the nucleus root passable (o+x) so components can reach the root',
        );
      } else {
        throw new LoupeError(
          'NUCLEUS_ROOT_ACCESS',
          `components run as ${runAs.user}, who cannot pass ${dir} (mode ${(st.mode & 0o777).toString(8)}) on the way to the root; choose a root under a folder others may pass, or chmod o+x ${dir}`,
          { input: root },
        );
      }
    }
    const up = dirname(dir);
    if (up === dir) return;
    dir = up;
  }
}

/**
 * The process groups of running lifecycle scripts, recorded under the root, so that a nucleus
 * that starts after one was killed can stop what it left behind (a component that somehow
 * outlived its guard would otherwise run twice on the same work folder). A group is killed
 * only while it still exists and its leader is the process that was recorded (or gone: a pid
 * cannot be reused while it names a live group).
 */
export class ProcessGroupRecord {
  private readonly groups = new Map<number, string | null>();

  constructor(
    private readonly file: string,
    private readonly log: Logger,
  ) {}

  record(pgid: number, startTime: string | undefined, alive: boolean): void {
    if (alive) this.groups.set(pgid, startTime ?? null);
    else if (!this.groups.delete(pgid)) return;
    this.save();
  }

  /** Kill the groups a previous nucleus recorded that are still there. */
  reap(): number {
    if (!existsSync(this.file)) return 0;
    let saved: Record<string, string | null> = {};
    try {
      saved = JSON.parse(readFileSync(this.file, 'utf8')) as Record<string, string | null>;
    } catch (e) {
      this.log.warn({ file: this.file, err: (e as Error).message }, 'unreadable record of process groups; nothing reaped');
    }
    let reaped = 0;
    for (const [key, start] of Object.entries(saved)) {
      const pgid = Number(key);
      if (!Number.isInteger(pgid) || pgid <= 1 || !groupAlive(pgid)) continue;
      const now = processStartTime(pgid);
      if (now !== undefined && start !== null && now !== start) continue; // the pid was reused
      signalGroup(pgid, 'SIGKILL');
      reaped++;
      this.log.warn({ pgid }, 'killed the processes of a component left running by a previous nucleus');
    }
    this.groups.clear();
    this.save();
    return reaped;
  }

  private save(): void {
    const tmp = `${this.file}.tmp`;
    try {
      mkdirSync(dirname(this.file), { recursive: true });
      writeFileSync(tmp, JSON.stringify(Object.fromEntries(this.groups)));
      renameSync(tmp, this.file);
    } catch (e) {
      this.log.warn({ file: this.file, err: (e as Error).message }, 'cannot record the process groups');
    }
  }
}
