import type Database from 'better-sqlite3';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { LoupeError } from '../../lib/errors.js';
import { openSqlite } from '../../lib/sqlite.js';
import { addColumnIfMissing, type SqliteSchema } from '../../lib/migrate.js';

/**
 * The loop's persisted state, one SQLite file: runs, their steps with each step's output, a
 * key/value table for watermarks and schedules, and the one-run-at-a-time lock.
 *
 * Why SQLite for the lock rather than a pid file: taking over a stale pid file needs a
 * read-check-replace that two processes can interleave (both see the dead owner, both take
 * over). Here the check and the take-over happen in one IMMEDIATE transaction, which SQLite
 * serialises across processes, and a process killed mid-transaction leaves no trace (the
 * journal rolls it back). A lock is stale when its owner is gone: same host and the pid is not
 * running, or the pid now belongs to another process (its start time in /proc differs); from
 * another host (a shared volume) only when its heartbeat is older than `staleAfterMs`.
 */
/** `waiting`: a step waits for someone outside loupe (Ground Truth workers); the next run resumes it. */
export type RunStatus = 'running' | 'succeeded' | 'failed' | 'halted' | 'waiting' | 'abandoned';
export type StepStatus = 'running' | 'done' | 'failed' | 'skipped' | 'waiting';

export interface RunRow {
  id: number;
  trigger: string;
  status: RunStatus;
  createdAt: string;
  finishedAt: string | null;
  config: Record<string, unknown>;
  report: Record<string, unknown> | null;
  error: string | null;
  halt: string | null;
}

export interface StepRow {
  runId: number;
  name: string;
  seq: number;
  status: StepStatus;
  attempts: number;
  startedAt: string | null;
  finishedAt: string | null;
  seconds: number | null;
  output: Record<string, unknown> | null;
  error: string | null;
  /** A done step that ended the run early: why (the runner's `halted` outcome). */
  halt: string | null;
}

export interface LockOwner {
  pid: number;
  host: string;
  procStart: string | null;
  acquiredAt: string;
  heartbeatAt: string;
  runId: number | null;
}

/** The loop store's schema, versioned (lib/migrate.ts): append a migration for every change, never edit one. */
export const LOOP_STORE_SCHEMA: SqliteSchema = {
  name: 'loop store',
  migrations: [
    {
      version: 1,
      description: 'runs, steps, kv, lock (as release 53fa33d created them)',
      up: `
CREATE TABLE IF NOT EXISTS runs (
  id INTEGER PRIMARY KEY,
  trigger TEXT NOT NULL,
  status TEXT NOT NULL,
  created_at TEXT NOT NULL,
  finished_at TEXT,
  config TEXT NOT NULL,
  report TEXT,
  error TEXT,
  halt TEXT
);
CREATE TABLE IF NOT EXISTS steps (
  run_id INTEGER NOT NULL REFERENCES runs(id),
  name TEXT NOT NULL,
  seq INTEGER NOT NULL,
  status TEXT NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  started_at TEXT,
  finished_at TEXT,
  seconds REAL,
  output TEXT,
  error TEXT,
  PRIMARY KEY (run_id, name)
);
CREATE TABLE IF NOT EXISTS kv (k TEXT PRIMARY KEY, v TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS lock (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  pid INTEGER NOT NULL,
  host TEXT NOT NULL,
  proc_start TEXT,
  acquired_at TEXT NOT NULL,
  heartbeat_at TEXT NOT NULL,
  run_id INTEGER
);
`,
    },
    {
      version: 2,
      description: "steps.halt: a halting step's reason in its own column (earlier releases kept it as `__halt` inside the output)",
      up: (db) => {
        addColumnIfMissing(db, 'steps', 'halt', 'TEXT');
        db.exec(`UPDATE steps SET halt = json_extract(output, '$.__halt'), output = json_remove(output, '$.__halt')
               WHERE output IS NOT NULL AND json_valid(output) AND json_type(output, '$.__halt') = 'text'`);
      },
    },
  ],
};

/** Field 22 of /proc/<pid>/stat (start time in clock ticks since boot); null where /proc is absent. */
export function procStartTime(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return rest[19] ?? null; // fields after "pid (comm)" start at 3: starttime is field 22
  } catch {
    return null;
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export function lockIsStale(owner: LockOwner, staleAfterMs: number, now = Date.now()): boolean {
  if (owner.host === hostname()) {
    if (!pidAlive(owner.pid)) return true;
    const start = procStartTime(owner.pid);
    return owner.procStart !== null && start !== null && start !== owner.procStart;
  }
  return now - Date.parse(owner.heartbeatAt) > staleAfterMs;
}

type Raw = Record<string, unknown>;
const json = <T>(s: unknown): T | null => (typeof s === 'string' ? (JSON.parse(s) as T) : null);

export class LoopStore {
  readonly db: Database.Database;

  constructor(readonly path: string) {
    this.db = openSqlite(path, LOOP_STORE_SCHEMA, { durable: true });
  }

  close(): void {
    if (this.db.open) this.db.close();
  }

  // ---- lock -------------------------------------------------------------------------------

  /** Take the lock or throw LOOP_BUSY naming the holder. Returns the previous (stale) owner, if any. */
  acquireLock(opts: { staleAfterMs?: number; pid?: number } = {}): { tookOverFrom: LockOwner | null } {
    const pid = opts.pid ?? process.pid;
    const staleAfterMs = opts.staleAfterMs ?? 10 * 60_000;
    const tx = this.db.transaction(() => {
      const cur = this.lockOwner();
      if (cur && cur.pid === pid && cur.host === hostname()) return { tookOverFrom: null };
      if (cur && !lockIsStale(cur, staleAfterMs)) {
        throw new LoupeError(
          'LOOP_BUSY',
          `another loop run is in progress (pid ${cur.pid} on ${cur.host} since ${cur.acquiredAt}${cur.runId ? `, run ${cur.runId}` : ''}); one run at a time`,
          { input: this.path },
        );
      }
      const now = new Date().toISOString();
      this.db
        .prepare(
          'INSERT OR REPLACE INTO lock (id, pid, host, proc_start, acquired_at, heartbeat_at, run_id) VALUES (1, ?, ?, ?, ?, ?, NULL)',
        )
        .run(pid, hostname(), procStartTime(pid), now, now);
      return { tookOverFrom: cur };
    });
    return tx.immediate();
  }

  lockOwner(): LockOwner | null {
    const r = this.db.prepare('SELECT * FROM lock WHERE id = 1').get() as Raw | undefined;
    if (!r) return null;
    return {
      pid: r.pid as number,
      host: r.host as string,
      procStart: (r.proc_start as string | null) ?? null,
      acquiredAt: r.acquired_at as string,
      heartbeatAt: r.heartbeat_at as string,
      runId: (r.run_id as number | null) ?? null,
    };
  }

  heartbeat(runId: number | null): void {
    this.db
      .prepare('UPDATE lock SET heartbeat_at = ?, run_id = ? WHERE id = 1 AND pid = ? AND host = ?')
      .run(new Date().toISOString(), runId, process.pid, hostname());
  }

  releaseLock(pid = process.pid): void {
    this.db.prepare('DELETE FROM lock WHERE id = 1 AND pid = ? AND host = ?').run(pid, hostname());
  }

  // ---- runs and steps -----------------------------------------------------------------------

  createRun(trigger: string, config: Record<string, unknown>): RunRow {
    const info = this.db
      .prepare("INSERT INTO runs (trigger, status, created_at, config) VALUES (?, 'running', ?, ?)")
      .run(trigger, new Date().toISOString(), JSON.stringify(config));
    return this.getRun(Number(info.lastInsertRowid))!;
  }

  getRun(id: number): RunRow | undefined {
    const r = this.db.prepare('SELECT * FROM runs WHERE id = ?').get(id) as Raw | undefined;
    return r ? this.toRun(r) : undefined;
  }

  latestRun(): RunRow | undefined {
    const r = this.db.prepare('SELECT * FROM runs ORDER BY id DESC LIMIT 1').get() as Raw | undefined;
    return r ? this.toRun(r) : undefined;
  }

  /** The run to resume: the newest one not finished (crashed while running, failed, or waiting). */
  unfinishedRun(): RunRow | undefined {
    const r = this.db.prepare("SELECT * FROM runs WHERE status IN ('running','failed','waiting') ORDER BY id DESC LIMIT 1").get() as
      Raw | undefined;
    return r ? this.toRun(r) : undefined;
  }

  listRuns(limit = 20): RunRow[] {
    return (this.db.prepare('SELECT * FROM runs ORDER BY id DESC LIMIT ?').all(limit) as Raw[]).map((r) => this.toRun(r));
  }

  private toRun(r: Raw): RunRow {
    return {
      id: r.id as number,
      trigger: r.trigger as string,
      status: r.status as RunStatus,
      createdAt: r.created_at as string,
      finishedAt: (r.finished_at as string | null) ?? null,
      config: json<Record<string, unknown>>(r.config) ?? {},
      report: json<Record<string, unknown>>(r.report),
      error: (r.error as string | null) ?? null,
      halt: (r.halt as string | null) ?? null,
    };
  }

  setRunStatus(id: number, status: RunStatus, extra: { error?: string | null; halt?: string | null; report?: unknown } = {}): void {
    const finished = status === 'running' ? null : new Date().toISOString();
    this.db
      // A run going back to running (resumed after waiting) drops the reason it waited for.
      .prepare(
        "UPDATE runs SET status = ?, finished_at = ?, error = ?, halt = CASE WHEN ? = 'running' THEN NULL ELSE COALESCE(?, halt) END, report = COALESCE(?, report) WHERE id = ?",
      )
      .run(
        status,
        finished,
        extra.error ?? null,
        status,
        extra.halt ?? null,
        extra.report === undefined ? null : JSON.stringify(extra.report),
        id,
      );
  }

  steps(runId: number): StepRow[] {
    return (this.db.prepare('SELECT * FROM steps WHERE run_id = ? ORDER BY seq').all(runId) as Raw[]).map((r) => ({
      runId: r.run_id as number,
      name: r.name as string,
      seq: r.seq as number,
      status: r.status as StepStatus,
      attempts: r.attempts as number,
      startedAt: (r.started_at as string | null) ?? null,
      finishedAt: (r.finished_at as string | null) ?? null,
      seconds: (r.seconds as number | null) ?? null,
      output: json<Record<string, unknown>>(r.output),
      error: (r.error as string | null) ?? null,
      halt: (r.halt as string | null) ?? null,
    }));
  }

  startStep(runId: number, name: string, seq: number): StepRow {
    this.db
      .prepare(
        `INSERT INTO steps (run_id, name, seq, status, attempts, started_at) VALUES (?, ?, ?, 'running', 1, ?)
         ON CONFLICT(run_id, name) DO UPDATE SET status = 'running', attempts = attempts + 1, started_at = excluded.started_at, error = NULL`,
      )
      .run(runId, name, seq, new Date().toISOString());
    return this.steps(runId).find((s) => s.name === name)!;
  }

  /** The commit point of a step: its output and status in one write. */
  finishStep(
    runId: number,
    name: string,
    status: Exclude<StepStatus, 'running'>,
    out: { output?: unknown; error?: string; seconds: number; halt?: string },
  ): void {
    this.db
      .prepare('UPDATE steps SET status = ?, finished_at = ?, seconds = ?, output = ?, error = ?, halt = ? WHERE run_id = ? AND name = ?')
      .run(
        status,
        new Date().toISOString(),
        out.seconds,
        out.output === undefined ? null : JSON.stringify(out.output),
        out.error ?? null,
        out.halt ?? null,
        runId,
        name,
      );
  }

  skipStep(runId: number, name: string, seq: number, reason: string): void {
    this.db
      .prepare("INSERT OR IGNORE INTO steps (run_id, name, seq, status, attempts, seconds, error) VALUES (?, ?, ?, 'skipped', 0, 0, ?)")
      .run(runId, name, seq, `skipped: ${reason}`);
  }

  // ---- key/value (watermarks, schedule) ---------------------------------------------------

  get<T>(k: string): T | undefined {
    const r = this.db.prepare('SELECT v FROM kv WHERE k = ?').get(k) as { v: string } | undefined;
    return r ? (JSON.parse(r.v) as T) : undefined;
  }

  set(k: string, v: unknown): void {
    this.db.prepare('INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)').run(k, JSON.stringify(v));
  }
}
