import { afterEach, describe, expect, it } from 'vitest';
import { existsSync, lstatSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Nucleus, type NucleusOptions } from '../../embedded/nucleus/nucleus.js';
import { RotatingLog } from '../../embedded/nucleus/lifecycle/rotating-log.js';
import { alive, removeRoot, sharedDir, tempRoot, until, waitForRecord, writeAgentRecipe, writeRecipe } from '../helpers/nucleus.js';

/**
 * Component lifecycles with real processes: steps, timeouts, Setenv, SkipIf, the BROKEN rule
 * (three errors in one state within the reset window) and per-component log files.
 */
const roots: string[] = [];
const nuclei: Nucleus[] = [];

afterEach(async () => {
  for (const n of nuclei.splice(0)) await n.stop();
  for (const r of roots.splice(0)) await removeRoot(r);
});

async function setup(opts: Partial<NucleusOptions> = {}): Promise<{ n: Nucleus; root: string; rdir: string; states: string[] }> {
  const root = tempRoot('lnl-');
  roots.push(root);
  const n = new Nucleus({ root, mqttUrl: false, killGraceMs: 1000, ...opts });
  nuclei.push(n);
  await n.start();
  const states: string[] = [];
  n.on('state', (name: string, s: string) => states.push(`${name}:${s}`));
  return { n, root, rdir: join(root, 'in'), states };
}

const recipe = (name: string, lifecycle: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({
  RecipeFormatVersion: '2020-01-25',
  ComponentName: name,
  ComponentVersion: '1.0.0',
  Manifests: [{ Platform: { os: 'linux' }, Lifecycle: lifecycle }],
  ...extra,
});

describe('component lifecycle', () => {
  it("rotates a chatty component's log by size and keeps the total bounded (logging.fileSizeKB / totalLogsSizeKB)", async () => {
    const { n, root, rdir } = await setup({ logging: { fileSizeKB: 4, totalLogsSizeKB: 12 } });
    // 2000 numbered lines of ~40 bytes (~80 KB) from a component that then exits 0.
    writeRecipe(
      rdir,
      recipe('lc.Chatty', { Run: 'i=0; while [ $i -lt 2000 ]; do echo "line $i ........................"; i=$((i+1)); done' }),
    );
    const rec = await n.deploy({ recipeDir: rdir, merge: { 'lc.Chatty': '1.0.0' } });
    expect(rec.status, rec.failureCause).toBe('SUCCEEDED');
    await n.waitForState('lc.Chatty', 'FINISHED', 20_000);
    const logs = join(root, 'logs');
    const files = readdirSync(logs)
      .filter((f) => f.startsWith('lc.Chatty.log'))
      .sort();
    // 12 KB in all at 4 KB per file: the live file and two rotated ones.
    expect(files).toEqual(['lc.Chatty.log', 'lc.Chatty.log.1', 'lc.Chatty.log.2']);
    for (const f of files) expect(statSync(join(logs, f)).size, f).toBeLessThanOrEqual(4096);
    // Whole lines only, consecutive across the rotation boundary, the newest last.
    const text = ['lc.Chatty.log.2', 'lc.Chatty.log.1', 'lc.Chatty.log'].map((f) => readFileSync(join(logs, f), 'utf8')).join('');
    const nums = text
      .split('\n')
      .filter((l) => l.startsWith('line '))
      .map((l) => Number(l.split(' ')[1]));
    expect(nums.at(-1)).toBe(1999);
    expect(nums.every((v, i) => i === 0 || v === nums[i - 1]! + 1)).toBe(true);
  });

  it('a full disk drops log lines (counted) instead of throwing', () => {
    const log = new RotatingLog('/dev/full', { fileSizeKB: 1, totalLogsSizeKB: 2 });
    expect(() => {
      for (let i = 0; i < 100; i++) log.write(`line ${i}\n`);
    }).not.toThrow();
    expect(log.dropped).toBe(100);
    log.end();
    expect(log.destroyed).toBe(true);
  });

  it('runs Install, Startup and Shutdown with Setenv and SkipIf, and logs stdout and stderr per component', async () => {
    const { n, root, rdir, states } = await setup();
    writeFileSync(join(root, 'marker'), '');
    writeRecipe(
      rdir,
      recipe(
        'lc.Startup',
        {
          Setenv: { TOP: 'top-level' },
          Install: { Script: 'echo "install $TOP $STEP_VAR"; echo to-stderr >&2', Setenv: { STEP_VAR: 'step-level' } },
          Startup: `echo started; sleep 600 & echo $! > ${join(sharedDir(root), 'daemon.pid')}; exit 0`,
          Shutdown: `echo "shutting down $TOP" > ${join(sharedDir(root), 'shutdown.txt')}`,
          Recover: { Script: 'echo never', SkipIf: `exists ${join(root, 'marker')}` },
        },
        { ComponentConfiguration: { DefaultConfiguration: {} } },
      ),
    );
    writeRecipe(rdir, recipe('lc.Skip', { Install: { Script: 'exit 1', SkipIf: 'onpath sh' }, Run: 'echo ran-anyway' }));
    const rec = await n.deploy({ recipeDir: rdir, merge: { 'lc.Startup': '1.0.0', 'lc.Skip': '1.0.0' } });
    expect(rec.status, rec.failureCause).toBe('SUCCEEDED');
    expect(states.filter((s) => s.startsWith('lc.Startup:'))).toEqual([
      'lc.Startup:INSTALLED',
      'lc.Startup:STARTING',
      'lc.Startup:RUNNING',
    ]);
    // A Run that exits 0 finishes the component.
    await n.waitForState('lc.Skip', 'FINISHED', 10_000);
    const log = await n.readLog('lc.Startup');
    expect(log).toContain('install top-level step-level');
    expect(log).toContain('to-stderr');
    expect(log).toContain('started');
    expect(log).toContain('state STARTING -> RUNNING (startup script exited 0)');
    expect(await n.readLog('lc.Skip')).toContain('install: skipped (onpath sh)');
    expect(n.logFile('lc.Startup')).toBe(join(root, 'logs', 'lc.Startup.log'));
    const daemon = Number(readFileSync(join(sharedDir(root), 'daemon.pid'), 'utf8'));
    expect(() => process.kill(daemon, 0)).not.toThrow();
    await n.deploy({ remove: ['lc.Startup'] });
    expect(readFileSync(join(sharedDir(root), 'shutdown.txt'), 'utf8')).toBe('shutting down top-level\n');
    // What the Startup script left running is stopped with the component.
    await until(
      () => {
        try {
          process.kill(daemon, 0);
          return false;
        } catch {
          return true;
        }
      },
      5000,
      'the daemon to be stopped',
    );
  });

  it('goes BROKEN after three install failures, counting as Greengrass does', async () => {
    const { n, rdir, states } = await setup();
    writeRecipe(rdir, recipe('lc.BadInstall', { Install: 'echo failing; exit 2', Run: 'sleep 600' }));
    const rec = await n.deploy({ recipeDir: rdir, merge: { 'lc.BadInstall': '1.0.0' }, failureHandlingPolicy: 'DO_NOTHING' });
    expect(rec.detailedStatus).toBe('FAILED_ROLLBACK_NOT_REQUESTED');
    expect(states).toEqual([
      'lc.BadInstall:ERRORED',
      'lc.BadInstall:NEW',
      'lc.BadInstall:ERRORED',
      'lc.BadInstall:NEW',
      'lc.BadInstall:BROKEN',
    ]);
    expect((await n.readLog('lc.BadInstall')).match(/install: script exited with 2/g)).toHaveLength(3);
  });

  it('times out a hanging install and a hanging startup', async () => {
    const { n, rdir, states } = await setup();
    writeRecipe(rdir, recipe('lc.Hang', { Install: { Script: 'sleep 30', Timeout: 0.5 }, Run: 'sleep 600' }));
    const rec = await n.deploy({ recipeDir: rdir, merge: { 'lc.Hang': '1.0.0' }, failureHandlingPolicy: 'DO_NOTHING' });
    expect(rec.failureCause).toMatch(/lc\.Hang is BROKEN/);
    expect(states.filter((s) => s.endsWith('BROKEN'))).toEqual(['lc.Hang:BROKEN']);
    expect(await n.readLog('lc.Hang')).toContain('install: timed out after 0.5 s');

    writeRecipe(rdir, recipe('lc.SlowStart', { Startup: { Script: 'sleep 30', Timeout: 0.5 } }));
    const r2 = await n.deploy({
      recipeDir: rdir,
      merge: { 'lc.SlowStart': '1.0.0' },
      remove: ['lc.Hang'],
      failureHandlingPolicy: 'DO_NOTHING',
    });
    expect(r2.failureCause).toMatch(/lc\.SlowStart is BROKEN: startup timeout/);
  });

  it('does not count errors spaced wider than the reset window toward BROKEN', async () => {
    const { n, rdir, states } = await setup({ errorResetTimeSeconds: 0.3 });
    writeRecipe(rdir, recipe('lc.Flaky', { Run: 'sleep 0.5; exit 1' }));
    // It never stays up for the deployment's stability window, nor goes BROKEN: the deployment times out.
    const { done } = n.submitDeployment({
      recipeDir: rdir,
      merge: { 'lc.Flaky': '1.0.0' },
      failureHandlingPolicy: 'DO_NOTHING',
      healthTimeoutSeconds: 5,
    });
    await until(() => states.filter((s) => s === 'lc.Flaky:ERRORED').length >= 4, 20_000, 'four crashes');
    expect(states).not.toContain('lc.Flaky:BROKEN');
    expect((await done).failureCause).toMatch(/not RUNNING within 5 s/);
  });

  it('restarts HARD dependents when their dependency goes down, but not SOFT ones', async () => {
    const { n, rdir, states } = await setup();
    writeRecipe(rdir, recipe('lc.Db', { Run: 'exec sleep 600' }));
    writeRecipe(rdir, { ...recipe('lc.Hard', { Run: 'exec sleep 600' }), ComponentDependencies: { 'lc.Db': { DependencyType: 'HARD' } } });
    writeRecipe(rdir, { ...recipe('lc.Soft', { Run: 'exec sleep 600' }), ComponentDependencies: { 'lc.Db': { DependencyType: 'SOFT' } } });
    expect((await n.deploy({ recipeDir: rdir, merge: { 'lc.Hard': '1.0.0', 'lc.Soft': '1.0.0' } })).status).toBe('SUCCEEDED');
    states.length = 0;
    n.restartComponent('lc.Db');
    await until(
      () => states.filter((s) => s === 'lc.Hard:RUNNING').length === 1 && states.includes('lc.Db:RUNNING'),
      15_000,
      'lc.Hard to come back',
    );
    const hard = states.filter((s) => s.startsWith('lc.Hard:'));
    expect(hard).toEqual(['lc.Hard:STOPPING', 'lc.Hard:INSTALLED', 'lc.Hard:STARTING', 'lc.Hard:RUNNING']);
    // lc.Hard started again only once lc.Db was RUNNING
    expect(states.indexOf('lc.Hard:STARTING')).toBeGreaterThan(states.indexOf('lc.Db:RUNNING'));
    expect(states.filter((s) => s.startsWith('lc.Soft:'))).toEqual([]);
  });

  it('works from a root too deep for a Unix socket path, binding a short one and linking it', async () => {
    const base = tempRoot('lnl-');
    roots.push(base);
    const root = join(base, 'a-rather-long-directory-name-for-the-nucleus-root', 'and-another-level-to-pass-the-limit', 'gg');
    const n = new Nucleus({ root, mqttUrl: false });
    nuclei.push(n);
    await n.start();
    expect(Buffer.byteLength(join(root, 'ipc.socket'))).toBeGreaterThan(108);
    expect(Buffer.byteLength(n.socketPath)).toBeLessThan(108);
    expect(lstatSync(join(root, 'ipc.socket')).isSymbolicLink()).toBe(true);
    const rdir = join(base, 'in');
    writeAgentRecipe(rdir, { name: 'lc.Deep', steps: [{ op: 'getConfig', keyPath: [] }] });
    expect((await n.deploy({ recipeDir: rdir, merge: { 'lc.Deep': '1.0.0' } })).status).toBe('SUCCEEDED');
    const r = await waitForRecord(root, 'lc.Deep', (x) => x.op === 'getConfig');
    expect(r.ok).toBe(true);
    await n.stop();
    nuclei.splice(nuclei.indexOf(n), 1);
    expect(existsSync(n.socketPath)).toBe(false);
  });

  it('stops the whole process tree, escalating to SIGKILL after the grace period', async () => {
    const { n, root, rdir } = await setup({ killGraceMs: 300 });
    const pidFile = join(sharedDir(root), 'child.pid');
    writeRecipe(rdir, recipe('lc.Stubborn', { Run: `trap '' TERM; sleep 600 & echo $! > ${pidFile}; while true; do sleep 1; done` }));
    expect((await n.deploy({ recipeDir: rdir, merge: { 'lc.Stubborn': '1.0.0' } })).status).toBe('SUCCEEDED');
    await until(() => existsSync(pidFile) && readFileSync(pidFile, 'utf8').trim() !== '', 5000, 'the child pid');
    const child = Number(readFileSync(pidFile, 'utf8'));
    expect(alive(child)).toBe(true);
    const t0 = Date.now();
    await n.deploy({ remove: ['lc.Stubborn'] });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(300);
    await until(() => !alive(child), 5000, 'the background child to die');
  });
});
