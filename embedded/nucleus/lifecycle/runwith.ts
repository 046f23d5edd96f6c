import { execFileSync } from 'node:child_process';
import { LoupeError } from '../../../lib/errors.js';
import type { RunAs } from './process.js';

/**
 * Who components run as (Greengrass's runWithDefault.posixUser, "user" or "user:group",
 * default ggc_user:ggc_group). Only a nucleus running as root can switch users; the user and
 * group are looked up once with getent (so NSS users work), and a user that does not exist is a
 * clear error naming it. Running as root already (posixUser root) needs no switch, as in the
 * real nucleus's SudoDecorator.
 */
export const DEFAULT_POSIX_USER = 'ggc_user:ggc_group';

export type ResolvedRunAs = RunAs & { uid: number; gid: number; home: string };

function getent(db: 'passwd' | 'group', key: string): string[] | undefined {
  try {
    const line = execFileSync('getent', [db, key], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).split('\n')[0];
    return line ? line.split(':') : undefined;
  } catch {
    return undefined;
  }
}

export function isRoot(): boolean {
  return process.getuid?.() === 0;
}

/** Resolve "user[:group]"; undefined when no switch is needed (not root, or root itself). */
export function resolveRunAs(posixUser: string, where: string): ResolvedRunAs | undefined {
  if (!isRoot()) return undefined;
  const [user, group] = posixUser.split(':');
  if (!user) throw new LoupeError('RUN_WITH_USER', `must be "user" or "user:group", got "${posixUser}"`, { input: where });
  const pw = getent('passwd', user);
  if (!pw)
    throw new LoupeError(
      'RUN_WITH_USER',
      `user "${user}" does not exist on this machine (create it, e.g. useradd -r -M ${user}, or set runWithDefault.posixUser)`,
      { input: where },
    );
  const uid = Number(pw[2]);
  let gid = Number(pw[3]);
  if (group) {
    const gr = getent('group', group);
    if (!gr) throw new LoupeError('RUN_WITH_USER', `group "${group}" does not exist on this machine`, { input: where });
    gid = Number(gr[2]);
  }
  if (uid === 0 && gid === 0) return undefined;
  return { user, ...(group ? { group } : {}), uid, gid, home: pw[5] ?? '/' };
}
