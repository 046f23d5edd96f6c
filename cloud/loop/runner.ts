import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { z } from 'zod';
import { LoupeError, errorMessage } from '../../lib/errors.js';
import { writeFileAtomic } from '../../lib/fsutil.js';
import { silentLogger } from '../../lib/log.js';
import type { LoopStore, RunRow, StepRow } from './store.js';

/**
 * Runs the loop's steps in order as one run with persisted state (store.ts). Each step's
 * output is committed with its status in one write after the step returns; a run killed at
 * any point is resumed by the next `runLoop`: done steps are skipped (their outputs reused),
 * the step that was in flight runs again. So every step must be idempotent for its run id:
 * it looks for what an earlier attempt left (a labelling job with the run's id, a registry
 * version with the run's idempotency key, a deployment tagged with the run) before creating.
 *
 * A step ends in one of three typed outcomes (`StepOutcome`): `done`; `halted` (end the run
 * early without failing: too few new labels, gate rejected; the step's output is kept, the
 * rest are recorded as skipped and the run as halted; the reason is kept in the step's own
 * `halt` column, so a resumed run ends at the same place); `waiting` (pause the run: a Ground
 * Truth job still has images in people's queues; the step and the run are recorded as waiting
 * and the next run resumes at that step, which re-attaches to what it started). A thrown error
 * fails the run; the next run resumes it at the failed step (or `abandonRun` gives up on it).
 *
 * Every step declares a zod schema for its output. The output is checked before it is
 * committed, and every committed output of a resumed run is checked again before any step runs:
 * a field renamed since the run was written fails the resume (LOOP_OUTPUT_INVALID, naming the
 * run, the step and the field) instead of a later step reading `undefined`.
 *
 * Fault injection for the crash tests: LOUPE_LOOP_CRASH=<step>:before|after kills the process
 * (SIGKILL, no clean-up) just before a step runs or just after its side effects but before
 * its commit, the worst moment for duplicates.
 */
export interface StepContext<C = Record<string, unknown>> {
  runId: number;
  attempt: number;
  runDir: string;
  config: C;
  log: Logger;
  /** Outputs of the steps already done in this run, by step name. */
  outputs: Record<string, Record<string, unknown>>;
}

/**
 * How a step ended. `halted`: the run ends here, successfully, with `reason`. `waiting`: the step
 * is not done, the next run resumes it (`reason` says what it waits for).
 */
export type StepOutcome<O = Record<string, unknown>> =
  { status: 'done'; output: O } | { status: 'halted'; output: O; reason: string } | { status: 'waiting'; output: O; reason: string };

export const done = <O>(output: O): StepOutcome<O> => ({ status: 'done', output });
export const halted = <O>(output: O, reason: string): StepOutcome<O> => ({ status: 'halted', output, reason });
export const waiting = <O>(output: O, reason: string): StepOutcome<O> => ({ status: 'waiting', output, reason });

export interface LoopStep<C = Record<string, unknown>> {
  name: string;
  title: string;
  /** The step's output: checked before it is committed and when a resumed run reads it back. */
  output: z.ZodType<Record<string, unknown>>;
  run(ctx: StepContext<C>): Promise<StepOutcome>;
}

/** The first problems zod found, as `field: message` (the field path dotted; `(output)` for the whole). */
export function describeIssues(error: z.ZodError): string {
  return error.issues
    .flatMap((i) =>
      // A field the schema does not name (strict schemas): each by its own path, so a renamed field is named.
      i.code === 'unrecognized_keys'
        ? i.keys.map((k) => `${[...i.path, k].join('.')}: not a field of this output (renamed or removed?)`)
        : [`${i.path.length ? i.path.join('.') : '(output)'}: ${i.message}`],
    )
    .slice(0, 5)
    .join('; ');
}

/** Check one step's output against its schema; LOOP_OUTPUT_INVALID names the run, the step and the fields. */
export function checkOutput(
  step: Pick<LoopStep, 'name' | 'output'>,
  runId: number,
  output: unknown,
  when: 'returned' | 'stored',
): Record<string, unknown> {
  const r = step.output.safeParse(output);
  if (r.success) return r.data;
  const what =
    when === 'stored'
      ? 'the output stored for it does not match what this loupe expects'
      : 'it returned an output that does not match its schema';
  throw new LoupeError('LOOP_OUTPUT_INVALID', `${what}: ${describeIssues(r.error)}`, { input: `run ${runId}, step ${step.name}` });
}

export interface RunReport {
  run: number;
  trigger: string;
  status: RunRow['status'];
  halt: string | null;
  error: string | null;
  resumed: boolean;
  createdAt: string;
  finishedAt: string | null;
  seconds: number;
  steps: { name: string; status: StepRow['status'] | 'pending'; attempts: number; seconds: number | null; error: string | null }[];
  outputs: Record<string, Record<string, unknown>>;
}

export interface LoopEvents {
  stepStart?(name: string, index: number, total: number, attempt: number): void;
  stepDone?(name: string, index: number, total: number, seconds: number, output: Record<string, unknown>): void;
  stepSkipped?(name: string, reason: string): void;
}

export interface RunLoopOptions<C> {
  store: LoopStore;
  steps: LoopStep<C>[];
  trigger: string;
  config: C;
  runsDir: string;
  log?: Logger;
  events?: LoopEvents;
  /** 'auto' resumes an unfinished run if there is one (default); 'new' refuses to start while one is unfinished. */
  resume?: 'auto' | 'new';
  staleLockAfterMs?: number;
}

function crashPoint(step: string, when: 'before' | 'after'): void {
  const spec = process.env.LOUPE_LOOP_CRASH;
  if (spec && spec === `${step}:${when}`) process.kill(process.pid, 'SIGKILL');
}

export function buildReport(store: LoopStore, runId: number, stepNames: string[], resumed: boolean): RunReport {
  const run = store.getRun(runId)!;
  const rows = store.steps(runId);
  const outputs: Record<string, Record<string, unknown>> = {};
  for (const r of rows) if (r.status === 'done' && r.output) outputs[r.name] = r.output;
  const end = run.finishedAt ? Date.parse(run.finishedAt) : Date.now();
  return {
    run: run.id,
    trigger: run.trigger,
    status: run.status,
    halt: run.halt,
    error: run.error,
    resumed,
    createdAt: run.createdAt,
    finishedAt: run.finishedAt,
    seconds: (end - Date.parse(run.createdAt)) / 1000,
    steps: stepNames.map((name) => {
      const r = rows.find((x) => x.name === name);
      return { name, status: r?.status ?? 'pending', attempts: r?.attempts ?? 0, seconds: r?.seconds ?? null, error: r?.error ?? null };
    }),
    outputs,
  };
}

export async function runLoop<C extends Record<string, unknown>>(o: RunLoopOptions<C>): Promise<RunReport> {
  const log = o.log ?? silentLogger;
  const names = o.steps.map((s) => s.name);
  if (new Set(names).size !== names.length) throw new LoupeError('LOOP_BAD_STEPS', `step names must be unique: ${names.join(', ')}`);
  const { tookOverFrom } = o.store.acquireLock({ staleAfterMs: o.staleLockAfterMs });
  if (tookOverFrom) log.warn({ previous: tookOverFrom }, 'took over the lock of a loop process that is gone');
  const beat = setInterval(() => o.store.heartbeat(runRow?.id ?? null), 15_000);
  beat.unref();
  let runRow: RunRow | undefined;
  try {
    /** Outputs of a run's done steps, each checked against its step's schema. */
    const storedOutputs = (runId: number): Record<string, Record<string, unknown>> => {
      const outputs: Record<string, Record<string, unknown>> = {};
      for (const r of o.store.steps(runId)) {
        if (r.status !== 'done') continue;
        const step = o.steps.find((s) => s.name === r.name);
        outputs[r.name] = step ? checkOutput(step, runId, r.output, 'stored') : (r.output ?? {});
      }
      return outputs;
    };
    const unfinished = o.store.unfinishedRun();
    let resumed = false;
    if (unfinished) {
      if (o.resume === 'new') {
        throw new LoupeError(
          'LOOP_UNFINISHED',
          `run ${unfinished.id} is unfinished (${unfinished.status}); resume it or abandon it first`,
          { input: `run ${unfinished.id}` },
        );
      }
      // Checked before the run is touched: a stored output this code cannot read fails the
      // resume here, naming the run, the step and the field, and leaves the run as it was.
      storedOutputs(unfinished.id);
      runRow = unfinished;
      resumed = true;
      o.store.setRunStatus(unfinished.id, 'running');
      log.info({ run: unfinished.id, trigger: unfinished.trigger }, 'resuming unfinished loop run');
    } else {
      runRow = o.store.createRun(o.trigger, o.config);
      log.info({ run: runRow.id, trigger: o.trigger }, 'loop run started');
    }
    const runId = runRow.id;
    o.store.heartbeat(runId);
    // A resumed run keeps the configuration it started with, so its steps stay consistent.
    const config = (resumed ? { ...o.config, ...runRow.config } : o.config) as C;
    const runDir = join(o.runsDir, String(runId));
    mkdirSync(runDir, { recursive: true });
    const outputs = unfinished ? storedOutputs(unfinished.id) : {};
    let halt: string | null = null;
    for (let i = 0; i < o.steps.length; i++) {
      const step = o.steps[i]!;
      const prev = o.store.steps(runId).find((s) => s.name === step.name);
      if (prev?.status === 'done') {
        o.events?.stepSkipped?.(step.name, 'done in an earlier attempt');
        if (prev.halt !== null) {
          halt = prev.halt;
          break;
        }
        continue;
      }
      const row = o.store.startStep(runId, step.name, i);
      o.events?.stepStart?.(step.name, i, o.steps.length, row.attempts);
      log.info({ run: runId, step: step.name, attempt: row.attempts }, `step ${i + 1}/${o.steps.length}: ${step.title}`);
      crashPoint(step.name, 'before');
      const t0 = performance.now();
      let result: StepOutcome;
      try {
        const r = await step.run({ runId, attempt: row.attempts, runDir, config, log: log.child({ step: step.name }), outputs });
        result = { ...r, output: checkOutput(step, runId, r.output, 'returned') };
      } catch (e) {
        const seconds = (performance.now() - t0) / 1000;
        o.store.finishStep(runId, step.name, 'failed', { error: errorMessage(e), seconds });
        o.store.setRunStatus(runId, 'failed', { error: `${step.name}: ${errorMessage(e)}` });
        log.error({ run: runId, step: step.name, err: errorMessage(e) }, 'loop step failed');
        const report = buildReport(o.store, runId, names, resumed);
        o.store.setRunStatus(runId, 'failed', { error: `${step.name}: ${errorMessage(e)}`, report });
        await writeFileAtomic(join(runDir, 'report.json'), JSON.stringify(buildReport(o.store, runId, names, resumed), null, 2) + '\n');
        throw e;
      }
      crashPoint(step.name, 'after');
      const seconds = (performance.now() - t0) / 1000;
      if (result.status === 'waiting') {
        o.store.finishStep(runId, step.name, 'waiting', { output: result.output, error: result.reason, seconds });
        o.store.setRunStatus(runId, 'waiting', { halt: result.reason });
        o.events?.stepSkipped?.(step.name, `waiting: ${result.reason}`);
        log.info({ run: runId, step: step.name, wait: result.reason }, 'loop run waits; the next run resumes it here');
        const report = buildReport(o.store, runId, names, resumed);
        o.store.setRunStatus(runId, 'waiting', { halt: result.reason, report });
        await writeFileAtomic(join(runDir, 'report.json'), JSON.stringify(report, null, 2) + '\n');
        return report;
      }
      const output = result.output;
      o.store.finishStep(runId, step.name, 'done', { output, seconds, halt: result.status === 'halted' ? result.reason : undefined });
      outputs[step.name] = output;
      o.events?.stepDone?.(step.name, i, o.steps.length, seconds, output);
      if (result.status === 'halted') {
        halt = result.reason;
        log.info({ run: runId, step: step.name, halt }, 'loop run ends early');
        break;
      }
    }
    if (halt) {
      for (const s of o.steps) {
        if (!o.store.steps(runId).some((r) => r.name === s.name)) {
          o.store.skipStep(runId, s.name, names.indexOf(s.name), halt);
          o.events?.stepSkipped?.(s.name, halt);
        }
      }
    }
    o.store.setRunStatus(runId, halt ? 'halted' : 'succeeded', { halt });
    const report = buildReport(o.store, runId, names, resumed);
    o.store.setRunStatus(runId, report.status, { halt, report });
    await writeFileAtomic(join(runDir, 'report.json'), JSON.stringify(report, null, 2) + '\n');
    log.info({ run: runId, status: report.status, seconds: report.seconds }, 'loop run finished');
    return report;
  } finally {
    clearInterval(beat);
    o.store.releaseLock();
  }
}

/** Give up on an unfinished run so the next `runLoop` starts a new one. */
export function abandonRun(store: LoopStore, runId: number, reason: string): void {
  const run = store.getRun(runId);
  if (!run) throw new LoupeError('LOOP_NO_RUN', 'no such run', { input: `run ${runId}` });
  if (run.status !== 'running' && run.status !== 'failed' && run.status !== 'waiting') {
    throw new LoupeError('LOOP_NOT_UNFINISHED', `run is ${run.status}, nothing to abandon`, { input: `run ${runId}` });
  }
  const owner = store.lockOwner();
  if (owner && owner.runId === runId && !(owner.pid === process.pid)) {
    store.acquireLock(); // throws LOOP_BUSY if that process is still alive
    store.releaseLock();
  }
  store.setRunStatus(runId, 'abandoned', { error: `abandoned: ${reason}` });
}
