import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir, hostname } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { projectRoot } from '../../lib/paths.js';
import { LoopStore, procStartTime } from '../../cloud/loop/store.js';
import { abandonRun } from '../../cloud/loop/runner.js';

const child = join(projectRoot, 'dist', 'test', 'helpers', 'loop-child.js');
const STEPS = ['ingest', 'label', 'train', 'register', 'deploy'];

function runChild(dir: string, env: Record<string, string> = {}, args: string[] = []) {
  const r = spawnSync(process.execPath, [child, dir, ...args], { env: { ...process.env, ...env }, encoding: 'utf8' });
  return { code: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}

function effects(dir: string) {
  const db = new Database(join(dir, 'effects.db'), { readonly: true });
  try {
    return db.prepare('SELECT run, step, value FROM effects ORDER BY rowid').all() as { run: number; step: string; value: string }[];
  } finally {
    db.close();
  }
}

async function invocations(dir: string) {
  return (await readFile(join(dir, 'invocations.log'), 'utf8')).trim().split('\n');
}

describe('loop runner: persisted, resumable, one at a time', () => {
  beforeAll(() => {
    if (!existsSync(child)) throw new Error(`${child} missing: run npx tsc -p . first`);
  });
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'loupe-loop-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('runs all steps once and writes a report', async () => {
    const r = runChild(dir);
    expect(r.code).toBe(0);
    const report = JSON.parse(r.stdout);
    expect(report.status).toBe('succeeded');
    expect(report.steps.map((s: { name: string; status: string }) => `${s.name}:${s.status}`)).toEqual(STEPS.map((s) => `${s}:done`));
    expect(effects(dir).map((e) => e.step)).toEqual(STEPS);
    expect(JSON.parse(await readFile(join(dir, 'runs', '1', 'report.json'), 'utf8')).status).toBe('succeeded');
  });

  for (const step of STEPS) {
    for (const when of ['before', 'after'] as const) {
      it(`killed ${when} committing "${step}" resumes and finishes without duplicates`, async () => {
        const crashed = runChild(dir, { LOUPE_LOOP_CRASH: `${step}:${when}` });
        expect(crashed.signal).toBe('SIGKILL');
        const resumed = runChild(dir);
        expect(resumed.code, resumed.stderr).toBe(0);
        const report = JSON.parse(resumed.stdout);
        expect(report.run).toBe(1);
        expect(report.resumed).toBe(true);
        expect(report.status).toBe('succeeded');
        // Each side effect exactly once, in order, each seeing all earlier steps' outputs.
        const eff = effects(dir);
        expect(eff.map((e) => e.step)).toEqual(STEPS);
        expect(eff.map((e) => e.value)).toEqual(STEPS.map((_, i) => STEPS.slice(0, i).join(',')));
        // Only the step in flight ran twice; the ones done before the crash were not repeated.
        const inv = await invocations(dir);
        const idx = STEPS.indexOf(step);
        const expected = STEPS.flatMap((s, i) => {
          if (i < idx) return [`1 ${s} 1`];
          if (i === idx) return when === 'after' ? [`1 ${s} 1`, `1 ${s} 2`] : [`1 ${s} 2`];
          return [`1 ${s} 1`];
        });
        expect(inv.sort()).toEqual(expected.sort());
        expect(report.steps.find((s: { name: string }) => s.name === step).attempts).toBe(2);
        // The lock is free again.
        const store = new LoopStore(join(dir, 'loop.db'));
        expect(store.lockOwner()).toBeNull();
        store.close();
      });
    }
  }

  it('a step may halt the run: the rest are skipped and the run ends as halted', () => {
    const r = runChild(dir, {}, ['train']);
    const report = JSON.parse(r.stdout);
    expect(report.status).toBe('halted');
    expect(report.halt).toBe('halted at train');
    expect(report.steps.map((s: { status: string }) => s.status)).toEqual(['done', 'done', 'done', 'skipped', 'skipped']);
    // The next run is a new one.
    const again = JSON.parse(runChild(dir).stdout);
    expect(again.run).toBe(2);
  });

  it('refuses a second concurrent run, naming the holder', async () => {
    const first = spawn(process.execPath, [child, dir, '', '400'], { stdio: ['ignore', 'pipe', 'pipe'] });
    const store = new LoopStore(join(dir, 'loop.db'));
    try {
      for (let i = 0; i < 100 && !store.lockOwner(); i++) await new Promise((r) => setTimeout(r, 50));
      expect(store.lockOwner()?.pid).toBe(first.pid);
      const second = runChild(dir);
      expect(second.code).toBe(3);
      expect(second.stderr).toMatch(new RegExp(`another loop run is in progress \\(pid ${first.pid} on ${hostname()}`));
      await new Promise((r) => first.on('close', r));
      expect(first.exitCode).toBe(0);
    } finally {
      store.close();
    }
  });

  it('takes over a lock whose owner died, or whose pid now belongs to another process', () => {
    const store = new LoopStore(join(dir, 'loop.db'));
    try {
      // A dead owner: a pid that has exited.
      const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
      store.acquireLock({ pid: Number(dead.stdout) });
      expect(store.acquireLock().tookOverFrom?.pid).toBe(Number(dead.stdout));
      store.releaseLock();
      // pid reuse: our own parent's pid is alive, but the recorded start time is not its start time.
      store.db
        .prepare('INSERT OR REPLACE INTO lock (id, pid, host, proc_start, acquired_at, heartbeat_at) VALUES (1, ?, ?, ?, ?, ?)')
        .run(process.ppid, hostname(), String(Number(procStartTime(process.ppid)) + 1), new Date().toISOString(), new Date().toISOString());
      expect(store.acquireLock().tookOverFrom?.pid).toBe(process.ppid);
      store.releaseLock();
      // A live owner with the right start time is respected.
      store.db
        .prepare('INSERT OR REPLACE INTO lock (id, pid, host, proc_start, acquired_at, heartbeat_at) VALUES (1, ?, ?, ?, ?, ?)')
        .run(process.ppid, hostname(), procStartTime(process.ppid), new Date().toISOString(), new Date().toISOString());
      expect(() => store.acquireLock()).toThrow(/another loop run is in progress/);
      // Another host: stale only after its heartbeat is old.
      store.db
        .prepare('INSERT OR REPLACE INTO lock (id, pid, host, proc_start, acquired_at, heartbeat_at) VALUES (1, 1, ?, NULL, ?, ?)')
        .run('other-host', new Date().toISOString(), new Date(Date.now() - 60_000).toISOString());
      expect(() => store.acquireLock({ staleAfterMs: 120_000 })).toThrow(/other-host/);
      expect(store.acquireLock({ staleAfterMs: 30_000 }).tookOverFrom?.host).toBe('other-host');
    } finally {
      store.close();
    }
  });

  it('a failed run is resumed by the next run, or abandoned on request', () => {
    const crashed = runChild(dir, { LOUPE_LOOP_CRASH: 'label:after' });
    expect(crashed.signal).toBe('SIGKILL');
    const store = new LoopStore(join(dir, 'loop.db'));
    try {
      expect(store.unfinishedRun()?.id).toBe(1);
      abandonRun(store, 1, 'operator decided');
      expect(store.getRun(1)?.status).toBe('abandoned');
      expect(() => abandonRun(store, 1, 'again')).toThrow(/run 1: run is abandoned/);
    } finally {
      store.close();
    }
    const next = JSON.parse(runChild(dir).stdout);
    expect(next.run).toBe(2);
    expect(next.resumed).toBe(false);
  });
});
