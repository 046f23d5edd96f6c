import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { LoupeError, errorMessage } from '../../lib/errors.js';
import { LoopEnv } from '../loop/env.js';
import { loopSteps, STEP_NAMES, type StepName } from '../loop/steps.js';
import { LoopStore } from '../loop/store.js';
import { checkOutput } from '../loop/runner.js';
import { STEP_OUTPUTS } from '../loop/outputs.js';
import type { CloudRuntime } from './runtime.js';
import { StateHome } from './state-home.js';

/**
 * The adapter between the loop's steps (cloud/loop/steps.ts, what `loupe loop run` runs) and a
 * handler on AWS that runs one or two of them: it pulls the loop home from S3, opens the same
 * LoopEnv from the configuration, finds or creates the loop run, runs the step's own function
 * with the outputs of the run's earlier steps, records the step in loop.db exactly as the local
 * runner does (running → done | waiting | failed, the halt reason kept with the output), closes
 * everything and pushes the home back. Step Functions or the SageMaker Pipeline decide what
 * runs next; this decides nothing.
 *
 * One run id spans the whole loop on AWS: the labelling state machine's first step creates the
 * run (once per execution: a retried invocation finds it by the execution name), the pipeline
 * gets the run id as a parameter, and the deploy state machine continues the run the approved
 * model was registered by.
 *
 * Steps are the typed StepDefs of cloud/loop/steps.ts bound to the env's ports; outputs are
 * checked against their schemas when recorded and when read back, as the local runner does.
 */
export interface StepEvent {
  /** The loop run to continue (absent: the labelling state machine's first step, which creates it). */
  runId?: number;
  /** Why the run started (schedule, uploads, manual). */
  trigger?: string;
  /** The Step Functions execution (or pipeline execution) name: one run per execution. */
  execution?: string;
}

export interface StepReply {
  runId: number;
  step: StepName;
  status: 'done' | 'waiting' | 'halted';
  output: Record<string, unknown>;
  wait?: string;
  halt?: string;
  seconds: number;
}

export interface CloudContext {
  env: LoopEnv;
  store: LoopStore;
  home: StateHome;
  runId: number;
  log: Logger;
}

export interface WithHomeOptions {
  /** Pull and use the home, but never push it (a processing job that only reads). */
  readOnly?: boolean;
  /** Keep the local folder (tests look at it). */
  keep?: boolean;
  /** Find the run from the loop's own state (the deploy flow: the run that registered the approved model). */
  runOf?: (env: LoopEnv, store: LoopStore) => Promise<number | undefined>;
}

/** Resolve the loop run an event belongs to (creating it for a new execution). */
function resolveRun(store: LoopStore, rt: CloudRuntime, e: StepEvent): number {
  if (e.runId !== undefined) {
    if (!Number.isInteger(e.runId) || !store.getRun(e.runId))
      throw new LoupeError('LOOP_NO_RUN', 'the loop home in S3 has no such run', { input: `run ${String(e.runId)}` });
    return e.runId;
  }
  const key = e.execution ? `cloud.execution.${e.execution}` : undefined;
  const known = key ? store.get<number>(key) : undefined;
  if (known !== undefined) return known;
  const run = store.createRun(e.trigger ?? 'cloud', rt.config as unknown as Record<string, unknown>);
  if (key) store.set(key, run.id);
  return run.id;
}

/** Pull the home, open the loop's environment on it, run `fn`, close, push. */
export async function withCloudHome<T>(
  rt: CloudRuntime,
  event: StepEvent,
  fn: (c: CloudContext) => Promise<T>,
  o: WithHomeOptions = {},
): Promise<T> {
  const home = await StateHome.pull({ s3: rt.s3(), uri: rt.homeUri, log: rt.log });
  let env: LoopEnv | undefined;
  let store: LoopStore | undefined;
  let result: T;
  try {
    env = await LoopEnv.open(rt.config, home.home, rt.log);
    env.registry.artefacts.fetchMissing = (rel) => home.fetchArtefacts([rel]);
    store = new LoopStore(home.home.loopDb);
    const found = o.runOf ? await o.runOf(env, store) : undefined;
    const runId = found !== undefined && store.getRun(found) ? found : resolveRun(store, rt, event);
    result = await fn({ env, store, home, runId, log: rt.log.child({ run: runId }) });
  } catch (e) {
    await env?.close();
    store?.close();
    // A failure is recorded in loop.db like the local runner records it; pushing that record
    // must not hide the error itself.
    if (!o.readOnly)
      await home.push().catch((p: unknown) => rt.log.warn({ err: errorMessage(p) }, 'could not push the record of a failed step'));
    if (!o.keep) await home.dispose();
    throw e;
  }
  await env.close();
  store.close();
  if (!o.readOnly) await home.push();
  if (!o.keep) await home.dispose();
  return result;
}

/** Outputs of the run's steps that are done (what the local runner hands the next step). */
export function doneOutputs(store: LoopStore, runId: number): Record<string, Record<string, unknown>> {
  const out: Record<string, Record<string, unknown>> = {};
  for (const r of store.steps(runId)) if (r.status === 'done' && r.output) out[r.name] = r.output;
  return out;
}

export interface RunStepOptions {
  /** Outputs to use instead of (or besides) the recorded ones, e.g. a SageMaker training job's result as `train`. */
  outputs?: Record<string, Record<string, unknown>>;
  /** Where the step writes its files (default: a folder in the pulled home). */
  runDir?: string;
  /** Run the step even when it is recorded as done (its files are gone with an earlier invocation's disk). */
  rerunDone?: boolean;
}

/**
 * Run one of the loop's steps and record it, as runner.ts does for each step of a local run.
 * A step already done in this run is not run again: its recorded output comes back (the
 * handlers are retried by Step Functions and SageMaker, so this is what makes them idempotent
 * at the step level; inside a step, the step's own idempotency covers a retry).
 */
export async function runStep(c: CloudContext, name: StepName, o: RunStepOptions = {}): Promise<StepReply> {
  const seq = STEP_NAMES.indexOf(name);
  const prev = c.store.steps(c.runId).find((s) => s.name === name);
  if (prev?.status === 'done' && prev.output && !o.rerunDone) {
    const output = checkOutput({ name, output: STEP_OUTPUTS[name] }, c.runId, prev.output, 'stored');
    return {
      runId: c.runId,
      step: name,
      status: prev.halt ? 'halted' : 'done',
      output,
      ...(prev.halt ? { halt: prev.halt } : {}),
      seconds: 0,
    };
  }
  const step = loopSteps({ ports: c.env.ports, config: c.env.config }).find((s) => s.name === name)!;
  const runDir = o.runDir ?? join(c.home.dir, 'runs', String(c.runId));
  mkdirSync(runDir, { recursive: true });
  const row = c.store.startStep(c.runId, name, seq);
  c.store.setRunStatus(c.runId, 'running');
  const log = c.log.child({ step: name });
  log.info({ attempt: row.attempts }, `step ${name}`);
  const t0 = performance.now();
  try {
    const given = { ...doneOutputs(c.store, c.runId), ...o.outputs };
    const r = await step.run({
      runId: c.runId,
      attempt: row.attempts,
      runDir,
      config: c.env.config as unknown as Record<string, unknown>,
      log,
      outputs: given,
    });
    // the same check the local runner makes before it records an output
    const output = checkOutput(step, c.runId, r.output, 'returned');
    const seconds = (performance.now() - t0) / 1000;
    if (r.status === 'waiting') {
      c.store.finishStep(c.runId, name, 'waiting', { output, error: r.reason, seconds });
      c.store.setRunStatus(c.runId, 'waiting', { halt: r.reason });
      return { runId: c.runId, step: name, status: 'waiting', output, wait: r.reason, seconds };
    }
    c.store.finishStep(c.runId, name, 'done', { output, seconds, halt: r.status === 'halted' ? r.reason : undefined });
    if (r.status === 'halted') {
      c.store.setRunStatus(c.runId, 'halted', { halt: r.reason });
      return { runId: c.runId, step: name, status: 'halted', output, halt: r.reason, seconds };
    }
    if (name === STEP_NAMES[STEP_NAMES.length - 1]) c.store.setRunStatus(c.runId, 'succeeded');
    return { runId: c.runId, step: name, status: 'done', output, seconds };
  } catch (e) {
    const seconds = (performance.now() - t0) / 1000;
    c.store.finishStep(c.runId, name, 'failed', { error: errorMessage(e), seconds });
    c.store.setRunStatus(c.runId, 'failed', { error: `${name}: ${errorMessage(e)}` });
    throw e;
  }
}

/** Record a step's output that was produced outside the loop's step functions (the pipeline's training job). */
export function recordStep(c: CloudContext, name: StepName, output: Record<string, unknown>, seconds = 0): void {
  c.store.startStep(c.runId, name, STEP_NAMES.indexOf(name));
  c.store.finishStep(c.runId, name, 'done', { output, seconds });
}

/** The Lambda error a state machine's Retry and Catch match on: `Loupe.<CODE>` (e.g. Loupe.STATE_CONFLICT). */
export function lambdaError(e: unknown): Error {
  const code = (e as { code?: unknown }).code;
  const err = new Error(errorMessage(e));
  err.name = typeof code === 'string' ? `Loupe.${code}` : e instanceof Error ? e.name : 'Error';
  return err;
}

export function ensureDir(p: string): string {
  mkdirSync(p, { recursive: true });
  return p;
}
