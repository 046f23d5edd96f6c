import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { S3Client } from '@aws-sdk/client-s3';
import Database from 'better-sqlite3';
import { StateMachine, type EventLog, type JSONValue } from 'aws-local-stepfunctions';
import { startObjectStore, type ObjectStore } from '../../embedded/objectstore/index.js';
import { parseInfraConfig } from '../../cloud/infra/config.js';
import { synthesize } from '../../cloud/infra/synth.js';
import { ingestHandler, labelHandler, lambda, publishLabelsHandler, verifyHandler } from '../../cloud/serverless/handlers.js';
import { RUNTIME_ENV } from '../../cloud/serverless/runtime.js';
import { StateHome } from '../../cloud/serverless/state-home.js';
import { LoopStore } from '../../cloud/loop/store.js';
import { datasetDir } from '../../lib/paths.js';
import { readTemplate, resolveCfn, resourcesOf, type Template } from '../helpers/cfn.js';
import { putUpload } from '../helpers/uploads.js';

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
// aws-local-stepfunctions 3 declares node >= 22; the one Node 22 API it uses is
// Promise.withResolvers (the Task state's timeout race). loupe supports Node 20, so the test
// supplies it there (ES2024 semantics; a no-op on Node 22).
if (!('withResolvers' in Promise)) {
  Object.defineProperty(Promise, 'withResolvers', {
    value<T>() {
      let resolve!: (v: T) => void;
      let reject!: (e: unknown) => void;
      const promise = new Promise<T>((a, b) => ((resolve = a), (reject = b)));
      return { promise, resolve, reject };
    },
  });
}

const ACCOUNT = '111122223333';
const REGION = 'eu-west-1';
const metal = datasetDir('metal-tags');
// Reference photos labelled after `history.until`: not in the imported history, so they come
// back as new device uploads; the simulated workforce knows their truth by content (truth.ts).
const PHOTOS = [
  'bad/image-2020-04-22-11-08-58-87-cropped-right-top.jpg',
  'bad/image-2020-04-22-11-06-38-66-cropped-left-top.jpg',
  'good/image-2020-04-22-10-15-16-00-cropped-left-top.jpg',
];

let dir: string;
let os: ObjectStore;
let s3: S3Client;
let definition: Record<string, unknown>;
const HOME = 's3://loupe-ml/loupe/home/';

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lp-sfn-'));
  const raw = JSON.parse(readFileSync('cloud/infra/loupe.infra.example.json', 'utf8')) as Record<string, unknown>;
  const infra = parseInfraConfig(
    {
      ...raw,
      account: ACCOUNT,
      region: REGION,
      edge: {
        thingGroupName: 'press-line-3',
        components: { 'loupe.Camera': '1.0.0', 'loupe.Inference': '1.0.0', 'loupe.Uploader': '1.0.0', 'loupe.Model': '1.0.0' },
      },
    },
    'test',
  );
  const summary = await synthesize(infra, join(dir, 'cdk.out'));
  const templates: Record<string, Template> = {};
  for (const s of summary.stacks) templates[s.name] = readTemplate(s.template);
  const t = Object.entries(templates).find(([name]) => name.endsWith('-labelling'))![1];
  const [, p] = resourcesOf(t, 'AWS::StepFunctions::StateMachine')[0]!;
  definition = JSON.parse(
    resolveCfn(p.DefinitionString, t, { account: ACCOUNT, region: REGION, templates: Object.values(templates) }) as string,
  ) as Record<string, unknown>;

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

interface Execution {
  output: Record<string, unknown>;
  path: string[];
  calls: { state: string; input: JSONValue }[];
}

async function execute(name: string, input: Record<string, unknown>): Promise<Execution> {
  const env = functionEnv();
  const calls: { state: string; input: JSONValue }[] = [];
  const call =
    <E, R>(state: string, h: (e: E) => Promise<R>) =>
    async (i: JSONValue) => {
      calls.push({ state, input: i });
      return (await h(i as E)) as unknown as JSONValue;
    };
  const tasks = Object.entries(definition.States as Record<string, { Type: string; Resource?: string }>).filter(
    ([, s]) => s.Type === 'Task',
  );
  const sm = new StateMachine(definition as never, { validationOptions: { checkArn: true, checkPaths: true } });
  const run = sm.run(input as JSONValue, {
    context: { Execution: { Name: name, Id: `arn:aws:states:${REGION}:${ACCOUNT}:execution:loupe-labelling:${name}` } } as never,
    overrides: {
      taskResourceLocalHandlers: {
        Ingest: call('Ingest', lambda(ingestHandler, env)),
        Label: call('Label', lambda(labelHandler, env)),
        Verify: call('Verify', lambda(verifyHandler, env)),
        WriteFeatureGroup: call('WriteFeatureGroup', lambda(publishLabelsHandler, env)),
        // An AWS control-plane call (SageMaker): recorded, answered as SageMaker would.
        StartModelBuild: (i: JSONValue) => {
          calls.push({ state: 'StartModelBuild', input: i });
          return { PipelineExecutionArn: `arn:aws:sagemaker:${REGION}:${ACCOUNT}:pipeline/loupe-model-build/execution/x1` };
        },
      },
      waitTimeOverrides: { WaitForLabellers: 0, WaitForVerifiers: 0 },
    },
  });
  // Every Task state of the synthesised definition is one the overrides name: nothing reaches AWS.
  expect(tasks.map(([n]) => n).sort()).toEqual(['Ingest', 'Label', 'StartModelBuild', 'Verify', 'WriteFeatureGroup']);
  const path: string[] = [];
  const failures: string[] = [];
  const logs = (async () => {
    for await (const e of run.eventLogs as AsyncGenerator<EventLog>) {
      if (e.type === 'StateEntered') path.push(e.state.name);
      if (e.type === 'StateFailed' || e.type === 'ExecutionFailed') failures.push(`${e.type}: ${e.Error} ${String(e.Cause)}`);
    }
  })();
  const output = (await run.result.catch((e: unknown) => {
    throw new Error(`execution ${name} failed: ${String(e)}; path ${path.join(' > ')}; ${failures.join('; ')}`);
  })) as Record<string, unknown>;
  await logs;
  return { output, path, calls };
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
  let first: Execution;

  it('ingests the uploads, labels and verifies them, writes the labels and starts the model build', async () => {
    first = await execute('exec-1', { trigger: 'schedule' });
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
    const again = await execute('exec-1', { trigger: 'schedule' });
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
    const next = await execute('exec-2', { trigger: 'uploads' });
    expect(next.path).toEqual(['Start', 'Ingest', 'ShouldLabel', 'NothingToLabel']);
    expect(next.output).toMatchObject({ trigger: 'uploads', ingest: { status: 'done', pending: rejected, output: { recorded: 0 } } });
    await inspectHome((h) => {
      expect(uploadRecords(h)).toEqual(before.recs);
      const s = loopState(h);
      expect(s.runs.length).toBe(before.runs + 1);
      expect(s.steps(s.runs.at(-1)!.id)).toEqual(['ingest:done']);
    });
  }, 300_000);
});
