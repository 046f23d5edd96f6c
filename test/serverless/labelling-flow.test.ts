import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { S3Client } from '@aws-sdk/client-s3';
import Database from 'better-sqlite3';
import { startObjectStore, type ObjectStore } from '../../embedded/objectstore/index.js';
import { ingestHandler, labelHandler, lambda, publishLabelsHandler, verifyHandler } from '../../cloud/serverless/handlers.js';
import { RUNTIME_ENV, runtimeFromEnv } from '../../cloud/serverless/runtime.js';
import { lambdaError } from '../../cloud/serverless/cloud-step.js';
import { StateHome } from '../../cloud/serverless/state-home.js';
import { LoopStore } from '../../cloud/loop/store.js';
import { datasetDir } from '../../lib/paths.js';
import { executeStateMachine, synthesiseDefinitions, type Execution, task, type TaskHandler } from '../helpers/local-sfn.js';
import { LATE_REFERENCE_PHOTOS, putUpload } from '../helpers/uploads.js';

/**
 * The labelling state machine, as the CDK app synthesises it, executed by aws-local-stepfunctions
 * (an independent ASL interpreter: Choice rules, JSONPath, intrinsics, Retry/Catch), with each
 * Lambda task calling the real handler entry point in-process (`lambda(...)` with the environment
 * the CDK app gives the function, pointed at the embedded object store). The loop home lives in
 * that store (state-home.ts); device uploads are written through the upload contract's writer;
 * labelling is the simulated workforce (labeling.backend "simulated"), so no Ground Truth job.
 *
 * Overridden, because they cannot run here: StartModelBuild (sagemaker:StartPipelineExecution,
 * an AWS control-plane call: the override records its request and checks its shape) and the two
 * Wait states (WaitForLabellers/WaitForVerifiers, set to 0 ms; with the simulated workforce the
 * label and verify steps finish in one invocation, so the path never enters them).
 */
const ACCOUNT = '111122223333';
const REGION = 'eu-west-1';
const metal = datasetDir('metal-tags');
const PHOTOS = LATE_REFERENCE_PHOTOS.slice(0, 3);

let dir: string;
let os: ObjectStore;
let s3: S3Client;
let definition: Record<string, unknown>;
const HOME = 's3://loupe-ml/loupe/home/';

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lp-sfn-'));
  definition = (await synthesiseDefinitions(join(dir, 'synth'), { account: ACCOUNT, region: REGION })).labelling;

  os = await startObjectStore({ dir: join(dir, 's3'), buckets: ['loupe', 'loupe-ml'] });
  s3 = new S3Client(os.clientConfig);
  for (const [i, f] of PHOTOS.entries()) {
    await putUpload(s3, 'loupe', `incoming/line-1/2024/06/01/frame-${i}`, readFileSync(join(metal, f)), { device: 'line-1', seq: i });
  }
}, 240_000);

afterAll(async () => {
  s3?.destroy();
  await os?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** The environment the CDK app gives each function, here naming the embedded store. */
function functionEnv(): NodeJS.ProcessEnv {
  const loop = {
    storage: { backend: 'embedded', endpoint: os.endpoint, bucket: 'loupe', prefix: 'incoming/', credentials: os.credentials },
    history: { labelsCsv: join(metal, 'labels.csv'), imagesDir: metal, until: 1657199072 },
    labeling: { backend: 'simulated', workersPerImage: 2, cap: 10, seed: 7 },
    labelStore: { backend: 'sqlite' },
  };
  return { [RUNTIME_ENV.config]: JSON.stringify(loop), [RUNTIME_ENV.home]: HOME, [RUNTIME_ENV.logLevel]: 'silent' };
}

async function execute(
  name: string,
  input: Record<string, unknown>,
  o: { env?: NodeJS.ProcessEnv; tasks?: Record<string, TaskHandler> } = {},
): Promise<Execution> {
  const env = o.env ?? functionEnv();
  const x = await executeStateMachine(definition, {
    name,
    machine: 'loupe-labelling',
    input,
    tasks: {
      Ingest: task(lambda(ingestHandler, env)),
      Label: task(lambda(labelHandler, env)),
      Verify: task(lambda(verifyHandler, env)),
      WriteFeatureGroup: task(lambda(publishLabelsHandler, env)),
      // An AWS control-plane call (SageMaker StartPipelineExecution): answered as SageMaker would;
      // its request is checked below. labelling-moto.full.test.ts sends it to moto.
      StartModelBuild: () => ({ PipelineExecutionArn: `arn:aws:sagemaker:${REGION}:${ACCOUNT}:pipeline/loupe-model-build/execution/x1` }),
      ...o.tasks,
    },
    waits: { WaitForLabellers: 0, WaitForVerifiers: 0 },
    retryIntervals: { Ingest: 0, Label: 0, Verify: 0, WriteFeatureGroup: 0 },
  });
  return x;
}

async function executeOk(name: string, input: Record<string, unknown>): Promise<Execution & { output: Record<string, unknown> }> {
  const x = await execute(name, input);
  if (!x.output) throw new Error(`execution ${name} failed: ${JSON.stringify(x.error)}; path ${x.path.join(' > ')}`);
  return x as Execution & { output: Record<string, unknown> };
}

/** The loop home as it is in the store now. */
async function inspectHome<T>(fn: (home: StateHome) => T): Promise<T> {
  const h = await StateHome.pull({ s3, uri: HOME });
  try {
    return fn(h);
  } finally {
    await h.dispose();
  }
}

function uploadRecords(h: StateHome): { source_ref: string; status: string; n: number }[] {
  const db = new Database(h.home.labelsDb, { readonly: true });
  try {
    return db
      .prepare(
        "SELECT source_ref, status, COUNT(*) AS n FROM label_records WHERE source_ref LIKE '%/incoming/%' GROUP BY source_ref, status ORDER BY source_ref, status",
      )
      .all() as { source_ref: string; status: string; n: number }[];
  } finally {
    db.close();
  }
}

function loopState(h: StateHome) {
  const store = new LoopStore(h.home.loopDb);
  try {
    const runs = store.listRuns(1000).sort((a, b) => a.id - b.id);
    const steps = new Map(runs.map((r) => [r.id, store.steps(r.id).map((s) => `${s.name}:${s.status}`)]));
    return { runs, steps: (id: number) => steps.get(id) };
  } finally {
    store.close();
  }
}

describe('the labelling state machine on the embedded stack (aws-local-stepfunctions, handlers in-process)', () => {
  let first: Execution & { output: Record<string, unknown> };

  it('ingests the uploads, labels and verifies them, writes the labels and starts the model build', async () => {
    first = await executeOk('exec-1', { trigger: 'schedule' });
    expect(first.path).toEqual([
      'Start',
      'Ingest',
      'ShouldLabel',
      'Label',
      'LabellingDone',
      'Verify',
      'VerificationDone',
      'WriteFeatureGroup',
      'NewLabels',
      'StartModelBuild',
      'ModelBuildStarted',
    ]);
    const o = first.output as {
      trigger: string;
      ingest: { runId: number; pending: number; output: { recorded: number } };
      label: { status: string };
      verify: { status: string; output: { approved: number; rejected: number } };
      featureStore: { approved: number; put: number };
    };
    expect(o.trigger).toBe('schedule');
    expect(o.ingest).toMatchObject({ step: 'ingest', status: 'done', pending: PHOTOS.length, output: { recorded: PHOTOS.length } });
    const runId = o.ingest.runId;
    expect(o.label).toMatchObject({ runId, step: 'label', status: 'done' });
    expect(o.verify).toMatchObject({ runId, step: 'verify', status: 'done' });
    expect(o.verify.output.approved).toBeGreaterThan(0);
    // labelStore "sqlite": no Feature Store mirror, so nothing is put; approved comes from the verify step.
    expect(o.featureStore).toEqual({ runId, put: 0, watermark: null, approved: o.verify.output.approved });
    // The handlers got exactly the payloads the definition builds.
    expect(first.calls.map((c) => c.state)).toEqual(['Ingest', 'Label', 'Verify', 'WriteFeatureGroup', 'StartModelBuild']);
    expect(first.calls[0]!.input).toEqual({ trigger: 'schedule', execution: 'exec-1' });
    for (const c of first.calls.slice(1, 4)) expect(c.input).toEqual({ runId });
    expect(first.calls[4]!.input).toEqual({
      PipelineName: 'loupe-model-build',
      PipelineExecutionDescription: `labelling execution exec-1, loop run ${runId}`,
      PipelineParameters: [{ Name: 'LoopRun', Value: String(runId) }],
      ClientRequestToken: 'exec-1',
    });

    // The effects, read back from the loop home in the store.
    await inspectHome((h) => {
      const recs = uploadRecords(h);
      const refs = [...new Set(recs.map((r) => r.source_ref))];
      expect(refs).toHaveLength(PHOTOS.length);
      for (const ref of refs) {
        expect(ref).toMatch(/^s3:\/\/loupe\/incoming\/line-1\/2024\/06\/01\/frame-\d\.jpg$/);
        // Each upload: PENDING at ingest, PENDING with the consolidated boxes, then the verifier's verdict.
        const mine = recs.filter((r) => r.source_ref === ref);
        expect(mine.find((r) => r.status === 'PENDING')?.n).toBe(2);
        expect(mine.filter((r) => r.status !== 'PENDING').map((r) => r.n)).toEqual([1]);
      }
      expect(recs.filter((r) => r.status === 'APPROVED').length).toBe(o.verify.output.approved);
      expect(recs.filter((r) => r.status === 'REJECTED').length).toBe(o.verify.output.rejected);
      expect(o.verify.output.approved + o.verify.output.rejected).toBe(PHOTOS.length);
      const s = loopState(h);
      expect(s.runs.map((r) => r.id)).toEqual([runId]);
      expect(s.steps(runId)).toEqual(['ingest:done', 'label:done', 'verify:done']);
    });
  }, 300_000);

  it('the same execution again (a redrive) records nothing new; a new upload-triggered execution below the threshold labels nothing', async () => {
    const before = await inspectHome((h) => ({ recs: uploadRecords(h), runs: loopState(h).runs.length }));
    const o1 = first.output as { ingest: { runId: number }; label: unknown; verify: { output: { rejected: number } } };
    const again = await executeOk('exec-1', { trigger: 'schedule' });
    // Same run (found by the execution name); every step comes back as recorded (seconds 0, nothing re-run).
    // Rejected uploads are eligible for a later job, so ShouldLabel sends the redrive on when there are any;
    // the run's job exists and is verified, so Label and Verify only read it back.
    const rejected = o1.verify.output.rejected;
    expect(again.path).toEqual(rejected > 0 ? first.path : ['Start', 'Ingest', 'ShouldLabel', 'NothingToLabel']);
    expect(again.output).toMatchObject({ ingest: { runId: o1.ingest.runId, status: 'done', seconds: 0, pending: rejected } });
    if (rejected > 0) {
      expect(again.output.label).toEqual({ ...(o1.label as object), seconds: 0 });
      expect(again.output.verify).toEqual({ ...(o1.verify as object), seconds: 0 });
      // The same ClientRequestToken: SageMaker starts one pipeline execution for both.
      expect(again.calls.at(-1)!.input).toEqual(first.calls.at(-1)!.input);
    }
    await inspectHome((h) => {
      expect(uploadRecords(h)).toEqual(before.recs);
      expect(loopState(h).runs.length).toBe(before.runs);
    });

    // A new execution from the upload trigger: a new run, nothing new to ingest, fewer pending than minUploads (100).
    const next = await executeOk('exec-2', { trigger: 'uploads' });
    expect(next.path).toEqual(['Start', 'Ingest', 'ShouldLabel', 'NothingToLabel']);
    expect(next.output).toMatchObject({ trigger: 'uploads', ingest: { status: 'done', pending: rejected, output: { recorded: 0 } } });
    await inspectHome((h) => {
      expect(uploadRecords(h)).toEqual(before.recs);
      const s = loopState(h);
      expect(s.runs.length).toBe(before.runs + 1);
      expect(s.steps(s.runs.at(-1)!.id)).toEqual(['ingest:done']);
    });
  }, 300_000);

  it("Retry: a push that loses to another writer (STATE_CONFLICT) is retried and the step finishes on the other writer's state; Catch: a failed step ends at LabellingFailed", async () => {
    // New uploads for a new run.
    for (const [i, f] of PHOTOS.entries()) {
      await putUpload(s3, 'loupe', `incoming/line-2/2024/06/02/frame-${i}`, readFileSync(join(metal, f)), { device: 'line-2', seq: i });
    }
    // The first Label invocation: just before its first conditional write to the home, another
    // writer (a real pull and push of the same home) records a marker in loop.db. The handler's
    // push then meets 412 on loop.db and fails with Loupe.STATE_CONFLICT, which the definition retries.
    const env = functionEnv();
    let armed = true;
    let labelAttempts = 0;
    const conflicted: TaskHandler = async (i) => {
      labelAttempts++;
      const rt = runtimeFromEnv(env);
      rt.s3().middlewareStack.add(
        (next, ctx) => async (args) => {
          const inp = args.input as { Key?: string; IfMatch?: string; IfNoneMatch?: string };
          if (armed && ctx.commandName === 'PutObjectCommand' && inp.Key?.startsWith('loupe/home/') && (inp.IfMatch || inp.IfNoneMatch)) {
            armed = false;
            const other = await StateHome.pull({ s3, uri: HOME });
            const store = new LoopStore(other.home.loopDb);
            store.set('test.concurrent-writer', 1);
            store.close();
            await other.push();
            await other.dispose();
          }
          return next(args);
        },
        { step: 'initialize', name: 'concurrentWriter' },
      );
      try {
        return (await labelHandler(rt, i as never)) as never;
      } catch (e) {
        throw lambdaError(e);
      }
    };
    const x = await execute('exec-3', { trigger: 'manual' }, { tasks: { Label: conflicted } });
    expect(x.error).toBeUndefined();
    expect(x.retries).toEqual([{ state: 'Label', error: 'Loupe.STATE_CONFLICT' }]);
    expect(labelAttempts).toBe(2);
    expect(x.path).toEqual(first.path);
    await inspectHome((h) => {
      const store = new LoopStore(h.home.loopDb);
      try {
        // Both writers' changes are in the home: the marker and the steps of the retried invocation.
        expect(store.get('test.concurrent-writer')).toBe(1);
        const runId = (x.output!.ingest as { runId: number }).runId;
        expect(store.steps(runId).map((s) => `${s.name}:${s.status}`)).toEqual(['ingest:done', 'label:done', 'verify:done']);
      } finally {
        store.close();
      }
    });

    // Catch: the function has no loop home configured → Loupe.CLOUD_NO_HOME (not retried) → LabellingFailed.
    const broken = { ...functionEnv(), [RUNTIME_ENV.home]: '' };
    const f = await execute('exec-4', { trigger: 'manual' }, { env: broken });
    expect(f.output).toBeUndefined();
    expect(f.path).toEqual(['Start', 'Ingest', 'LabellingFailed']);
    expect(f.error).toMatchObject({ error: 'Loupe.CLOUD_NO_HOME' });
    expect(f.retries).toEqual([]);
  }, 300_000);
});
