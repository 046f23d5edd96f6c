import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createInterface } from 'node:readline';
import type { Logger } from 'pino';
import { LoupeError } from '../../lib/errors.js';

/**
 * What a fresh Debian machine lacks for loupe's tests and tools, and how to install it: Debian
 * packages through apt-get, and the Greengrass default user/group (ggc_user:ggc_group) that the
 * real nucleus runs components as. Root is needed for both: as root the commands run as they
 * are, otherwise through sudo; where neither works the exact commands are printed instead.
 */

/** Debian packages and why loupe needs each (the check is dpkg's own status). */
export const DEBIAN_PACKAGES: ReadonlyArray<{ name: string; why: string }> = [
  { name: 'chromium', why: "browser tests (playwright-core drives Debian's chromium)" },
  { name: 'ffmpeg', why: 'stream and video sources (camera, loupe detect on videos)' },
  { name: 'python3-venv', why: 'the trainer venv (loupe setup python)' },
  { name: 'openjdk-17-jre-headless', why: 'the real Greengrass nucleus (differential tests)' },
  { name: 'sudo', why: 'the real nucleus runs components as ggc_user' },
  { name: 'fonts-dejavu-core', why: 'labels on annotated images and plots' },
  { name: 'strace', why: 'the fresh-clone test checks that nothing outside the clone is read' },
];

export const GG_USER = 'ggc_user';
export const GG_GROUP = 'ggc_group';

export interface SystemStatus {
  debian: boolean;
  missingPackages: string[];
  missingUser: boolean;
  missingGroup: boolean;
}

function installed(pkg: string): boolean {
  const r = spawnSync('dpkg-query', ['-W', '-f=${Status}', pkg], { encoding: 'utf8' });
  return r.status === 0 && r.stdout.includes('install ok installed');
}

function getent(db: 'passwd' | 'group', name: string): boolean {
  return spawnSync('getent', [db, name], { stdio: 'ignore' }).status === 0;
}

export function systemStatus(): SystemStatus {
  const debian = existsSync('/etc/debian_version') && spawnSync('dpkg-query', ['--version'], { stdio: 'ignore' }).status === 0;
  return {
    debian,
    missingPackages: debian ? DEBIAN_PACKAGES.map((p) => p.name).filter((p) => !installed(p)) : DEBIAN_PACKAGES.map((p) => p.name),
    missingUser: !getent('passwd', GG_USER),
    missingGroup: !getent('group', GG_GROUP),
  };
}

export function systemReady(s: SystemStatus): boolean {
  return s.missingPackages.length === 0 && !s.missingUser && !s.missingGroup;
}

/** The commands that bring this machine to the wanted state, without sudo (as root would run them). */
export function systemCommands(s: SystemStatus): string[][] {
  const cmds: string[][] = [];
  if (s.missingPackages.length) {
    cmds.push(['apt-get', 'update', '-q']);
    cmds.push(['env', 'DEBIAN_FRONTEND=noninteractive', 'apt-get', 'install', '-y', '-q', '--no-install-recommends', ...s.missingPackages]);
  }
  // As the Greengrass installer documents it: a system user and a system group, the user in it.
  if (s.missingGroup) cmds.push(['groupadd', '--system', GG_GROUP]);
  if (s.missingUser) cmds.push(['useradd', '--system', '--create-home', '--gid', GG_GROUP, GG_USER]);
  else if (s.missingGroup) cmds.push(['usermod', '-a', '-G', GG_GROUP, GG_USER]);
  return cmds;
}

const shellQuote = (a: string) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`);
export const commandLine = (argv: string[], prefix: string[] = []) => [...prefix, ...argv].map(shellQuote).join(' ');

/** How to gain root here: [] as root, ['sudo'] (or ['sudo', '-n'] without a terminal), or null. */
export function rootPrefix(interactive: boolean): string[] | null {
  if (process.getuid?.() === 0) return [];
  if (spawnSync('sudo', ['-V'], { stdio: 'ignore' }).status !== 0) return null;
  return interactive ? ['sudo'] : ['sudo', '-n'];
}

function runLogged(argv: string[], log: Logger, interactive: boolean): Promise<void> {
  return new Promise((resolve, reject) => {
    // sudo may ask for a password: then it needs the terminal; apt's own output still comes as log lines.
    const child = spawn(argv[0]!, argv.slice(1), { stdio: [interactive ? 'inherit' : 'ignore', 'pipe', 'pipe'] });
    let tail = '';
    const relay = (stream: NodeJS.ReadableStream) =>
      createInterface({ input: stream }).on('line', (line) => {
        tail = `${tail}${line}\n`.slice(-3000);
        if (line.trim()) log.info({ cmd: argv.find((a) => !['sudo', '-n', 'env'].includes(a) && !a.includes('=')) }, line.trim());
      });
    relay(child.stdout!);
    relay(child.stderr!);
    child.on('error', (e) =>
      reject(new LoupeError('SETUP_COMMAND_FAILED', `cannot run ${argv[0]}: ${e.message}`, { input: commandLine(argv) })),
    );
    child.on('close', (code) =>
      code === 0
        ? resolve()
        : reject(new LoupeError('SETUP_COMMAND_FAILED', `exited with status ${code}:\n${tail.trim()}`, { input: commandLine(argv) })),
    );
  });
}

/** What ensureSystem asks of the machine; tests inject another machine (a missing package, no root). */
export interface SystemProbe {
  status(): SystemStatus;
  rootPrefix(interactive: boolean): string[] | null;
}
const thisMachine: SystemProbe = { status: systemStatus, rootPrefix };

/** Install what is missing (idempotent: nothing runs when all is there). */
export async function ensureSystem(
  log: Logger,
  opts: { interactive: boolean; dryRun?: boolean; probe?: SystemProbe },
): Promise<SystemStatus> {
  const probe = opts.probe ?? thisMachine;
  const before = probe.status();
  if (systemReady(before)) {
    log.info('system: Debian packages and the ggc_user:ggc_group user are in place');
    return before;
  }
  const cmds = systemCommands(before);
  if (!before.debian) {
    throw new LoupeError(
      'SETUP_NOT_DEBIAN',
      `this is not a Debian system (no dpkg): install ${before.missingPackages.join(', ')} with its package manager${before.missingUser || before.missingGroup ? `, and create the ${GG_USER}:${GG_GROUP} user` : ''} by hand`,
      { input: 'setup system' },
    );
  }
  log.info(
    { packages: before.missingPackages, user: before.missingUser ? GG_USER : undefined, group: before.missingGroup ? GG_GROUP : undefined },
    'system: installing what is missing',
  );
  const prefix = probe.rootPrefix(opts.interactive);
  if (opts.dryRun || prefix === null) {
    const text = cmds.map((c) => `  ${commandLine(c, prefix ?? ['sudo'])}`).join('\n');
    if (opts.dryRun) {
      log.info({ commands: cmds.map((c) => commandLine(c, prefix ?? ['sudo'])) }, 'system: dry run, would run');
      return before;
    }
    throw new LoupeError(
      'SETUP_NEEDS_ROOT',
      `root is needed to install system packages and users, and sudo is not available; run these as root:\n${text}`,
      { input: 'setup system', exitCode: 3 },
    );
  }
  for (const c of cmds) {
    log.info({ cmd: commandLine(c, prefix) }, 'system: running');
    try {
      await runLogged([...prefix, ...c], log, opts.interactive);
    } catch (e) {
      if (prefix[0] === 'sudo' && e instanceof LoupeError && /password|a terminal is required/i.test(e.message)) {
        throw new LoupeError(
          'SETUP_NEEDS_ROOT',
          `sudo needs a password and there is no terminal to ask for it; run these as root:\n${cmds.map((x) => `  ${commandLine(x, ['sudo'])}`).join('\n')}`,
          { input: 'setup system', exitCode: 3 },
        );
      }
      throw e;
    }
  }
  const after = probe.status();
  if (!systemReady(after)) {
    throw new LoupeError(
      'SETUP_INCOMPLETE',
      `still missing after installing: ${[...after.missingPackages, ...(after.missingUser ? [GG_USER] : []), ...(after.missingGroup ? [GG_GROUP] : [])].join(', ')}`,
      { input: 'setup system' },
    );
  }
  log.info('system: ready');
  return after;
}
