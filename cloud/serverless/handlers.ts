import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';
import { LoupeError, errorMessage } from '../../lib/errors.js';
import { rollback } from '../publish/publish.js';
import { lambdaError, recordStep, runStep, withCloudHome, type StepEvent, type StepReply } from './cloud-step.js';
import { rebasePaths, type PipelineSteps } from './processing.js';
import { runtimeFromEnv, type CloudRuntime } from './runtime.js';
import { downloadPrefix } from './s3-folder.js';

/**
 * The Lambda functions of the labelling and deploy state machines and the model-build
 * pipeline's register step. Each is a thin shell over the loop's own steps (cloud-step.ts runs
 * them on the loop home in S3); the state machines (cloud/infra) decide the order, the waits
 * and the retries. In the loupe cloud image each is `dist/cloud/serverless/handlers.<name>`.
 *
 *   labelling   ingest → label (starts or re-attaches to the Ground Truth job; `waiting` while
 *               people work) → verify (the same for the verification job) → publishLabels
 *               (approved labels into the Feature Store feature group)
 *   pipeline    register (the loop's register step: registry + SageMaker model package)
 *   deploy      publish (after an approval: the loupe.Model component version) → deploy (the
 *               thing group's deployment) → rolloutStatus (polled) → confirm | rollback
 *
 * Errors reach Step Functions as `Loupe.<CODE>` (Retry on Loupe.STATE_CONFLICT, Catch on the rest).
 */
export type Handler<E, R> = (event: E) => Promise<R>;

export function lambda<E, R>(fn: (rt: CloudRuntime, event: E) => Promise<R>, env: NodeJS.ProcessEnv = process.env): Handler<E, R> {
  return async (event: E) => {
    let rt: CloudRuntime | undefined;
    try {
      // Inside the try: a configuration error must reach Step Functions as Loupe.<CODE> too (Catch/Retry match on it).
      rt = runtimeFromEnv(env);
      return await fn(rt, event);
    } catch (e) {
      const detail = { err: errorMessage(e), code: (e as { code?: string }).code };
      if (rt) rt.log.error(detail, 'handler failed');
      else process.stderr.write(JSON.stringify({ level: 50, msg: 'handler failed', ...detail }) + '\n');
      throw lambdaError(e);
    }
  };
}

// ---- labelling ------------------------------------------------------------------------------

/** FindNewUploads: the loop's ingest step, and how many recorded images wait for a labelling job. */
export async function ingestHandler(rt: CloudRuntime, e: StepEvent): Promise<StepReply & { pending: number }> {
  return withCloudHome(rt, e, async (c) => {
    const r = await runStep(c, 'ingest');
    const pending = (await c.env.labeling.eligible()).length;
    return { ...r, pending };
  });
}

/** Start the Ground Truth labelling job, or look at the one this run started (status `waiting` until people are done). */
export const labelHandler = (rt: CloudRuntime, e: StepEvent) => withCloudHome(rt, e, (c) => runStep(c, 'label'));

/** The same for the verification job chained on the labelling job's output. */
export const verifyHandler = (rt: CloudRuntime, e: StepEvent) => withCloudHome(rt, e, (c) => runStep(c, 'verify'));

/** WriteFeatureGroup: every label record not yet in the feature group, in order, from the watermark. */
export async function publishLabelsHandler(
  rt: CloudRuntime,
  e: StepEvent,
): Promise<{ runId: number; put: number; watermark: number | null; approved: number }> {
  return withCloudHome(rt, e, async (c) => {
    const r = await c.env.syncLabels(c.log);
    const verify = c.store.steps(c.runId).find((s) => s.name === 'verify')?.output;
    return { runId: c.runId, put: r?.put ?? 0, watermark: r?.watermark ?? null, approved: Number(verify?.approved ?? 0) };
  });
}

// ---- model build: the pipeline's Lambda step ----------------------------------------------------

export interface RegisterEvent {
  /** The pipeline's LoopRun parameter (a string in a Lambda step's arguments); 0 or absent: the evaluation's run. */
  runId?: string | number;
  /** The Evaluate step's output folder (s3://.../evaluation). */
  evaluationUri: string;
  /** Which branch of the gate's condition step calls: it must agree with the gate's own decision. */
  expect: 'passed' | 'rejected';
  /** The pipeline's ModelApprovalStatus: Approved (approve on registration) or PendingManualApproval (a person approves). */
  approval?: string;
}

export interface RegisterReply {
  LocalRef: string;
  Status: string;
  ModelPackageArn: string;
  RunId: number;
}

export async function registerHandler(rt0: CloudRuntime, e: RegisterEvent): Promise<RegisterReply> {
  const approvals: Record<string, boolean> = { Approved: true, PendingManualApproval: false };
  if (e.approval !== undefined && e.approval !== 'Rejected' && !(e.approval in approvals)) {
    throw new LoupeError('PIPELINE_BAD_ARG', 'ModelApprovalStatus must be Approved or PendingManualApproval', {
      input: `approval ${e.approval}`,
    });
  }
  const autoApprove = e.approval !== undefined ? approvals[e.approval] : undefined;
  const rt = autoApprove === undefined ? rt0 : { ...rt0, config: { ...rt0.config, policy: { ...rt0.config.policy, autoApprove } } };
  if (e.expect !== 'passed' && e.expect !== 'rejected')
    throw new LoupeError('PIPELINE_BAD_ARG', 'expect must be passed or rejected', { input: `expect ${String(e.expect)}` });
  const dir = await mkdtemp(join(tmpdir(), 'loupe-eval-'));
  try {
    await downloadPrefix(rt.s3(), e.evaluationUri, dir);
    const stepsFile = join(dir, 'steps.json');
    if (!existsSync(stepsFile))
      throw new LoupeError('PIPELINE_NO_EVALUATION', 'the evaluation output holds no steps.json', { input: e.evaluationUri });
    const raw = JSON.parse(readFileSync(stepsFile, 'utf8')) as PipelineSteps;
    // Files of the evaluation folder are relative to it; the data set stayed in the processing job (not needed to register).
    const steps = rebasePaths(raw, (p) => (isAbsolute(p) ? p : resolve(dir, p)));
    const runId = Number(e.runId ?? 0) > 0 ? Number(e.runId) : raw.runId;
    return await withCloudHome(rt, { runId }, async (c) => {
      const passed = Boolean((steps.gate.summary as { passed?: boolean } | undefined)?.passed);
      if (passed !== (e.expect === 'passed')) {
        throw new LoupeError(
          'PIPELINE_GATE_MISMATCH',
          `the ${e.expect} branch ran, but the gate's report says ${passed ? 'passed' : 'rejected'}`,
          { input: e.evaluationUri },
        );
      }
      const done = new Set(
        c.store
          .steps(c.runId)
          .filter((s) => s.status === 'done')
          .map((s) => s.name),
      );
      for (const name of ['snapshot', 'train', 'quantize', 'evaluate', 'gate'] as const)
        if (!done.has(name)) recordStep(c, name, steps[name]);
      const r = await runStep(c, 'register', {
        outputs: { snapshot: steps.snapshot, train: steps.train, quantize: steps.quantize, evaluate: steps.evaluate, gate: steps.gate },
      });
      const sm = r.output.sagemaker as { arn?: string } | undefined;
      return { LocalRef: String(r.output.ref), Status: String(r.output.status), ModelPackageArn: sm?.arn ?? '', RunId: c.runId };
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

// ---- deploy ------------------------------------------------------------------------------------

/** The EventBridge event "SageMaker Model Package State Change" (the deploy state machine's input). */
export interface ModelPackageEvent {
  detail: { ModelPackageArn: string; ModelApprovalStatus?: string; ModelPackageGroupName?: string };
}

/** After an approval: the approved package's local version (approval applied), then the loop's publish step for its run. */
export async function publishHandler(rt: CloudRuntime, e: ModelPackageEvent): Promise<StepReply> {
  const arn = e.detail?.ModelPackageArn;
  if (!arn) throw new LoupeError('DEPLOY_BAD_EVENT', 'the event names no model package', { input: 'detail.ModelPackageArn' });
  let ref = '';
  let sha = '';
  return withCloudHome(
    rt,
    { trigger: 'approval', execution: `approval-${arn}` },
    async (c) => {
      const v = await c.env.registry.mustGet(ref);
      return runStep(c, 'publish', { outputs: { register: { ref: v.ref, status: v.status, onnxSha256: sha } } });
    },
    {
      runOf: async (env) => {
        if (!env.registryMirror?.adoptApproval)
          throw new LoupeError('DEPLOY_NO_REGISTRY', 'the deploy flow needs registry.backend "sagemaker"', { input: 'registry.backend' });
        const v = await env.registryMirror.adoptApproval(arn, 'sagemaker-approval');
        ref = v.ref;
        sha = v.artefacts.onnx.sha256;
        const run = Number(v.meta.run);
        return Number.isInteger(run) && run > 0 ? run : undefined;
      },
    },
  );
}

/** The loop's deploy step: the thing group's deployment with the rollout and abort policy. */
export const deployHandler = (rt: CloudRuntime, e: StepEvent) => withCloudHome(rt, e, (c) => runStep(c, 'deploy'));

/** Where the rollout stands (Greengrass deployment / IoT job), for the state machine's wait loop. */
export async function rolloutStatusHandler(
  rt: CloudRuntime,
  e: StepEvent & { deploymentId: string },
): Promise<{ runId: number; state: string; detail: Record<string, unknown> }> {
  if (!e.deploymentId) throw new LoupeError('DEPLOY_BAD_EVENT', 'no deployment id', { input: 'deploymentId' });
  return withCloudHome(
    rt,
    e,
    async (c) => {
      const s = await c.env.fleet.deploymentStatus(e.deploymentId);
      if (s.state !== 'in-progress') return { runId: c.runId, state: s.state, detail: s.detail };
      // A thing group's deployment stays ACTIVE for as long as it is the group's current one
      // (greengrass-aws.ts), so its status alone never says "succeeded": the rollout has
      // succeeded once every core device of the group runs the version this run deployed.
      const dep = c.store.steps(c.runId).find((x) => x.name === 'deploy' && x.status === 'done')?.output as
        { version?: string } | undefined;
      if (!dep?.version) return { runId: c.runId, state: s.state, detail: s.detail };
      const devices = await c.env.fleet.devices('loupe.Model');
      const all = devices.length > 0 && devices.every((d) => d.modelVersion === dep.version);
      return { runId: c.runId, state: all ? 'succeeded' : s.state, detail: { ...s.detail, devices } };
    },
    { readOnly: true },
  );
}

/** The loop's confirm step: every device of the thing group runs the new loupe.Model (FLEET_NOT_CONFIRMED until then). */
export const confirmHandler = (rt: CloudRuntime, e: StepEvent) => withCloudHome(rt, e, (c) => runStep(c, 'confirm'));

/** A failed rollout: loupe's rollback (redeploy the version that ran before), and the run ends there. */
export async function rollbackHandler(
  rt: CloudRuntime,
  e: StepEvent & { reason?: string },
): Promise<{ runId: number; rolledBackTo: string; deployment: string }> {
  return withCloudHome(rt, e, async (c) => {
    // A deployment that failed at once: the deploy step has marked it failed already (and halted),
    // so it is no longer the target's current one; roll back from it by name.
    const dep = c.store.steps(c.runId).find((x) => x.name === 'deploy' && x.status === 'done')?.output as
      { name?: string; state?: string } | undefined;
    const failedAtOnce =
      dep?.state === 'failed' && dep.name ? c.env.fleetStore.deploymentByName(c.env.fleet.kind, c.env.fleet.target, dep.name) : undefined;
    const current = failedAtOnce ?? c.env.fleetStore.current(c.env.fleet.kind, c.env.fleet.target);
    // rollback() returns to the version before the target's current deployment, so the failed
    // rollout is marked failed only after the redeploy exists (marked first, it is no longer
    // current and there is "nothing to roll back": the deploy walk found this).
    const row = await rollback({
      backend: c.env.fleet,
      store: c.env.fleetStore,
      log: c.log,
      ...(failedAtOnce ? { from: failedAtOnce } : {}),
    });
    if (current && current.state !== 'failed')
      c.env.fleetStore.updateDeployment(current.id, { state: 'failed', detail: { reason: e.reason ?? 'rollout failed' } });
    const halt = `deployment failed (${e.reason ?? 'rollout failed'}); rolled back to loupe.Model ${row.version}`;
    c.store.setRunStatus(c.runId, 'halted', { halt });
    return { runId: c.runId, rolledBackTo: row.version, deployment: row.name };
  });
}

// ---- the Lambda entry points (dist/cloud/serverless/handlers.<name>) --------------------------------

export const ingest = lambda(ingestHandler);
export const label = lambda(labelHandler);
export const verify = lambda(verifyHandler);
export const publishLabels = lambda(publishLabelsHandler);
export const register = lambda(registerHandler);
export const publish = lambda(publishHandler);
export const deploy = lambda(deployHandler);
export const rolloutStatus = lambda(rolloutStatusHandler);
export const confirm = lambda(confirmHandler);
export const rollbackDeployment = lambda(rollbackHandler);
