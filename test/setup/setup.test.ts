import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { SETUP_PARTS } from '../../cli/setup/parts.js';
import {
  DEBIAN_PACKAGES,
  ensureSystem,
  GG_GROUP,
  GG_USER,
  systemCommands,
  systemStatus,
  type SystemStatus,
} from '../../cli/setup/system.js';
import { runCli } from '../helpers/cli.js';

/** `loupe setup`: the parts, their --check/--dry-run plans on this machine, and what happens without root. */
function captureLog(): { log: pino.Logger; events: Record<string, unknown>[] } {
  const events: Record<string, unknown>[] = [];
  return { log: pino({ level: 'info' }, { write: (s: string) => events.push(JSON.parse(s) as Record<string, unknown>) }), events };
}

const missing: SystemStatus = { debian: true, missingPackages: ['chromium', 'ffmpeg'], missingUser: true, missingGroup: true };

describe('loupe setup on this machine', () => {
  it('`setup all --check` reports each part as one JSON line and exits 1 exactly when one is not ready', async () => {
    const r = await runCli(['setup', 'all', '--check'], { timeoutMs: 120_000 });
    const lines = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { part: string; ready: boolean });
    expect(lines.map((l) => l.part)).toEqual(SETUP_PARTS.map((p) => p.name));
    for (const l of lines) expect(typeof l.ready).toBe('boolean');
    expect(r.code).toBe(lines.every((l) => l.ready) ? 0 : 1);
    // the system part's report agrees with dpkg and getent here
    const sys = lines.find((l) => l.part === 'system') as unknown as SystemStatus & { ready: boolean };
    const here = systemStatus();
    expect(sys.missingPackages).toEqual(here.missingPackages);
    expect([sys.missingUser, sys.missingGroup]).toEqual([here.missingUser, here.missingGroup]);
  });

  it('`setup system --dry-run` changes nothing and prints the plan (or that all is in place)', async () => {
    const before = systemStatus();
    const r = await runCli(['setup', 'system', '--dry-run', '--log-format', 'json'], { timeoutMs: 60_000 });
    expect(JSON.parse(r.stdout.trim())).toMatchObject({
      part: 'system',
      ready: before.missingPackages.length === 0 && !before.missingUser && !before.missingGroup,
    });
    const events = r.stderr
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { msg: string; commands?: string[] });
    if (JSON.parse(r.stdout.trim()).ready)
      expect(events.map((e) => e.msg)).toContain('system: Debian packages and the ggc_user:ggc_group user are in place');
    else expect(events.find((e) => e.msg === 'system: dry run, would run')?.commands?.length).toBeGreaterThan(0);
    expect(systemStatus()).toEqual(before);
  });

  it('`setup list` names every part with its state', async () => {
    const r = await runCli(['setup', 'list'], { timeoutMs: 120_000 });
    expect(r.code).toBe(0);
    const rows = r.stdout.trim().split('\n');
    expect(rows.map((l) => l.split(/\s+/)[1])).toEqual(SETUP_PARTS.map((p) => p.name));
    for (const l of rows) expect(l).toMatch(/^(ready|missing) /);
  });
});

describe('the system part with another machine injected', () => {
  it('plans apt-get for the missing packages, then the group, then the user in it', () => {
    expect(systemCommands(missing)).toEqual([
      ['apt-get', 'update', '-q'],
      ['env', 'DEBIAN_FRONTEND=noninteractive', 'apt-get', 'install', '-y', '-q', '--no-install-recommends', 'chromium', 'ffmpeg'],
      ['groupadd', '--system', GG_GROUP],
      ['useradd', '--system', '--create-home', '--gid', GG_GROUP, GG_USER],
    ]);
    expect(systemCommands({ ...missing, missingPackages: [], missingUser: false })).toEqual([
      ['groupadd', '--system', GG_GROUP],
      ['usermod', '-a', '-G', GG_GROUP, GG_USER],
    ]);
    expect(DEBIAN_PACKAGES.map((p) => p.name)).toEqual(expect.arrayContaining(['chromium', 'ffmpeg', 'python3-venv']));
  });

  it('without root and without sudo: exit 3 and the exact commands to run as root; nothing run', async () => {
    const { log } = captureLog();
    let statusCalls = 0;
    const probe = { status: () => (statusCalls++, missing), rootPrefix: () => null };
    const err = await ensureSystem(log, { interactive: false, probe }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'SETUP_NEEDS_ROOT', exitCode: 3, input: 'setup system' });
    expect((err as Error).message).toContain('sudo is not available; run these as root:');
    expect((err as Error).message).toContain(
      '  sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium ffmpeg',
    );
    expect((err as Error).message).toContain(`  sudo useradd --system --create-home --gid ${GG_GROUP} ${GG_USER}`);
    expect(statusCalls).toBe(1); // nothing was installed, so nothing re-checked
  });

  it('--dry-run logs the plan with the prefix it would use (sudo -n without a terminal), runs nothing', async () => {
    const { log, events } = captureLog();
    const s = await ensureSystem(log, {
      interactive: false,
      dryRun: true,
      probe: { status: () => missing, rootPrefix: (i) => (i ? ['sudo'] : ['sudo', '-n']) },
    });
    expect(s).toEqual(missing);
    const plan = events.find((e) => e.msg === 'system: dry run, would run') as { commands: string[] };
    expect(plan.commands[0]).toBe('sudo -n apt-get update -q');
    expect(plan.commands).toHaveLength(4);
  });

  it('not Debian: says what to install by hand', async () => {
    const { log } = captureLog();
    const err = await ensureSystem(log, {
      interactive: false,
      probe: { status: () => ({ ...missing, debian: false }), rootPrefix: () => [] },
    }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'SETUP_NOT_DEBIAN' });
    expect((err as Error).message).toMatch(/install chromium, ffmpeg with its package manager, and create the ggc_user:ggc_group user/);
  });
});
