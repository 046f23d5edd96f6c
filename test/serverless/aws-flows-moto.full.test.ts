import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import {
  CreatePipelineCommand,
  CreateTrainingJobCommand,
  DescribeModelPackageCommand,
  DescribeTrainingJobCommand,
  ListModelPackagesCommand,
  ListPipelineExecutionsCommand,
  ListPipelineParametersForExecutionCommand,
  SageMakerClient,
  StartPipelineExecutionCommand,
  UpdateModelPackageCommand,
  type CreateTrainingJobCommandInput,
} from '@aws-sdk/client-sagemaker';
import { create as tarCreate } from 'tar';
import { startObjectStore, type ObjectStore } from '../../embedded/objectstore/index.js';
import {
  confirmHandler,
  deployHandler,
  ingestHandler,
  labelHandler,
  lambda,
  publishHandler,
  publishLabelsHandler,
  registerHandler,
  rollbackHandler,
  rolloutStatusHandler,
  verifyHandler,
} from '../../cloud/serverless/handlers.js';
import { main as processingMain } from '../../cloud/serverless/processing.js';
import { RUNTIME_ENV, runtimeFromEnv } from '../../cloud/serverless/runtime.js';
import { withCloudHome } from '../../cloud/serverless/cloud-step.js';
import { downloadPrefix, parseS3Prefix } from '../../cloud/serverless/s3-folder.js';
import { parseLoopConfig } from '../../cloud/loop/config.js';
import type { PipelineStep } from '../../cloud/infra/pipeline.js';
import { datasetDir, projectRoot } from '../../lib/paths.js';
import { sha256 } from '../../lib/fsutil.js';
import { resourcesOf } from '../helpers/cfn.js';
import {
  executeStateMachine,
  synthesiseDefinitions,
  type Execution,
  type Synthesised,
  task,
  type TaskHandler,
} from '../helpers/local-sfn.js';
import { walkPipeline, type PipelineWalk } from '../helpers/pipeline-walk.js';
import { MOTO_ACCOUNT, startMoto, type MotoServer } from '../helpers/moto.js';
import { LATE_REFERENCE_PHOTOS, putUpload } from '../helpers/uploads.js';
import { worseMetalTagsModel } from '../helpers/worse-model.js';
import { installFakeAws, readCalls, seedFleet, suiteFleet, writeJson } from '../loop-aws/fake-aws.js';

/**
 * loupe's whole loop on AWS, walked on one machine: the labelling state machine, the model-build
 * SageMaker Pipeline and the deploy state machine, all three as the CDK app synthesises them,
 * with loupe's own handlers in-process behind every step.
 *
 *   state machines  aws-local-stepfunctions (test/helpers/local-sfn.ts)
 *   the pipeline    test/helpers/pipeline-walk.ts (a small interpreter of the definition JSON)
 *   S3              the embedded object store (uploads, the loop home, pipeline data, artefacts)
 *   SageMaker       moto's server (CreatePipeline, StartPipelineExecution,
 *                   ListPipelineExecutions, ListPipelineParametersForExecution, CreateTrainingJob,
 *                   DescribeTrainingJob, the model package group and packages the registry
 *                   makes, UpdateModelPackage for the person's approval)
 *   Greengrass v2   moto 5.2.5 does not implement it: the request-shape fake of
 *                   test/loop-aws/fake-aws.ts (services: greengrass), its requests checked
 *
 * Fakes, named: the training step's container (moto records the job but runs nothing: the test
 * puts the model.tar.gz a training image writes, with a real challenger ONNX: the shipped model,
 * or the same checkpoint exported at 160 px, which the gate must reject), the devices of the
 * thing group (fake-aws.ts: they take a deployment 1.5 s after it is made, and fail a version the
 * test lists), and the person who approves a model package (UpdateModelPackage on moto).
 */
const REGION = 'eu-west-1';
const ACCOUNT = MOTO_ACCOUNT;
const GROUP_ARN = `arn:aws:iot:${REGION}:${ACCOUNT}:thinggroup/press-line-3`;
const metal = datasetDir('metal-tags');
const SHIPPED = join(projectRoot, 'models', 'metal-tags');
// Reference photos labelled after `history.until`: new device uploads, three per labelling run.
// The fourth run gets the first three again, as new uploads (ingest keys on the upload, the
// simulated workforce finds the truth by the bytes).
const BATCHES = [0, 3, 6, 0].map((i) => LATE_REFERENCE_PHOTOS.slice(i, i + 3));

let dir: string;
let moto: MotoServer;
let os: ObjectStore;
let s3: S3Client;
let sm: SageMakerClient;
let syn: Synthesised;
let gg: { restore(): void } | undefined;
const savedEnv: Record<string, string | undefined> = {};

function setEnv(vars: Record<string, string | undefined>): void {
  for (const [k, v] of Object.entries(vars)) {
    if (!(k in savedEnv)) savedEnv[k] = process.env[k];
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
}

/**
 * The loop configuration each function and processing job gets: the one the CDK app writes into
 * their environment (buckets, home, registry, fleet as synthesised), with what cannot run here
 * replaced and said: S3 at the embedded store's endpoint; labelling by the simulated workforce
 * (Ground Truth has no moto implementation: the unit tier walks its wait loop); the SQLite label
 * store (moto has no Feature Store runtime, so no PutRecord); int8 off (no quantizer in this walk);
 * the fleet polled every 0.5 s.
 */
let synthConfig: Record<string, Record<string, unknown>>;
let HOME: string;
let ML: string;
function loopConfig() {
  return {
    ...synthConfig,
    storage: { ...synthConfig.storage, endpoint: os.endpoint, forcePathStyle: true },
    history: { labelsCsv: join(metal, 'labels.csv'), imagesDir: metal, until: 1657199072 },
    labeling: { backend: 'simulated', workersPerImage: 2, cap: 10, seed: 7 },
    labelStore: { backend: 'sqlite' },
    int8: { enabled: false },
    fleet: { ...synthConfig.fleet, confirmTimeoutSeconds: 20, pollSeconds: 0.5 },
  };
}
const functionEnv = (): NodeJS.ProcessEnv => ({
  [RUNTIME_ENV.config]: JSON.stringify(loopConfig()),
  [RUNTIME_ENV.home]: HOME,
  [RUNTIME_ENV.logLevel]: 'silent',
});

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lp-awsflows-'));
  moto = await startMoto(REGION);
  // The gate's absolute floor at 0 (the example has 0.5): the walk compares with the champion only.
  syn = await synthesiseDefinitions(join(dir, 'synth'), {
    account: ACCOUNT,
    region: REGION,
    patch: (raw) => {
      const mb = raw.modelBuild as { gate: Record<string, unknown> };
      return { ...raw, modelBuild: { ...mb, gate: { ...mb.gate, threshold: 0 } } };
    },
  });
  const env = (syn.pipeline.Steps[0]!.Arguments as unknown as ProcessingArgs).Environment;
  synthConfig = JSON.parse(env[RUNTIME_ENV.config]!) as typeof synthConfig;
  HOME = env[RUNTIME_ENV.home]!;
  ML = String(synthConfig.aws!.bucket);
  os = await startObjectStore({ dir: join(dir, 's3'), buckets: [String(synthConfig.storage!.bucket), ML] });
  s3 = new S3Client(os.clientConfig);
  // The handlers make their own SageMaker clients (cloud/loop/aws/clients.ts, region only): the
  // SDK's service endpoint variable sends them to moto. Credentials from the environment, as on
  // AWS: the embedded store's keys (moto takes any).
  setEnv({
    AWS_ENDPOINT_URL_SAGEMAKER: moto.endpoint,
    AWS_ACCESS_KEY_ID: os.credentials.accessKeyId,
    AWS_SECRET_ACCESS_KEY: os.credentials.secretAccessKey,
    AWS_SESSION_TOKEN: undefined,
    AWS_REGION: REGION,
    AWS_PROFILE: undefined,
  });
  sm = new SageMakerClient(moto.clientConfig);

  // The pipeline, created in moto from the synthesised definition (as CloudFormation would).
  await sm.send(
    new CreatePipelineCommand({
      PipelineName: syn.pipelineName,
      PipelineDefinition: JSON.stringify(syn.pipeline),
      RoleArn: `arn:aws:iam::${ACCOUNT}:role/loupe-pipeline`,
    }),
  );

  // The thing group as loupe's suite left it: loupe.Model 1.0.0 (the shipped model) and its siblings.
  seedFleet(
    join(dir, 'aws'),
    suiteFleet({
      thingGroupArn: GROUP_ARN,
      devices: ['press-3-cam-1', 'press-3-cam-2'],
      artefacts: `s3://${ML}/loupe/components/loupe.Model/1.0.0/`,
      modelSha256: sha256(readFileSync(join(SHIPPED, 'model.onnx'))),
    }),
  );
  gg = installFakeAws(join(dir, 'aws'), { region: REGION, services: ['greengrass'] });
}, 600_000);

afterAll(async () => {
  gg?.restore();
  sm?.destroy();
  s3?.destroy();
  await os?.stop();
  await moto?.stop();
  for (const [k, v] of Object.entries(savedEnv)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
  if (dir) await rm(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 500 });
});

// ---- labelling ---------------------------------------------------------------------------------

async function labellingExecution(name: string, batch: number): Promise<Execution & { runId: number }> {
  for (const [i, f] of BATCHES[batch]!.entries()) {
    await putUpload(
      s3,
      String(synthConfig.storage!.bucket),
      `incoming/line-1/2024/06/0${batch + 1}/frame-${i}`,
      readFileSync(join(metal, f)),
      {
        device: 'line-1',
        seq: batch * 10 + i,
      },
    );
  }
  const env = functionEnv();
  const x = await executeStateMachine(syn.labelling, {
    name,
    machine: 'loupe-labelling',
    input: { trigger: 'schedule' },
    tasks: {
      Ingest: task(lambda(ingestHandler, env)),
      Label: task(lambda(labelHandler, env)),
      Verify: task(lambda(verifyHandler, env)),
      WriteFeatureGroup: task(lambda(publishLabelsHandler, env)),
      // arn:aws:states:::aws-sdk:sagemaker:startPipelineExecution, sent to moto as Step Functions would send it.
      StartModelBuild: async (i) => {
        const r = await sm.send(new StartPipelineExecutionCommand(i as never));
        return { PipelineExecutionArn: r.PipelineExecutionArn! };
      },
    },
    waits: { WaitForLabellers: 0, WaitForVerifiers: 0 },
  });
  if (!x.output) throw new Error(`labelling ${name} failed: ${JSON.stringify(x.error)}; ${x.path.join(' > ')}`);
  return { ...x, runId: (x.output.ingest as { runId: number }).runId };
}

// ---- the pipeline ------------------------------------------------------------------------------

async function uploadFolder(local: string, uri: string): Promise<void> {
  const { bucket, prefix } = parseS3Prefix(uri);
  const files = (await readdir(local, { recursive: true, withFileTypes: true }))
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name));
  for (const f of files) {
    const key = `${prefix.replace(/\/?$/, '/')}${relative(local, f).split('\\').join('/')}`;
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: readFileSync(f) }));
  }
}

/**
 * An S3Prefix input as SageMaker copies it: every object whose key starts with the URI's key, at
 * its path below that key; an object whose key is the URI itself keeps its file name (so the
 * training step's ModelArtifacts URI arrives as <LocalPath>/model.tar.gz).
 */
async function downloadS3Input(uri: string, local: string): Promise<string[]> {
  const m = /^s3:\/\/([^/]+)\/(.*)$/.exec(uri)!;
  const [bucket, key] = [m[1]!, m[2]!];
  const exact = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key })).catch(() => undefined);
  if (exact && !key.endsWith('/')) {
    await mkdir(local, { recursive: true });
    await writeFile(join(local, key.split('/').at(-1)!), await exact.Body!.transformToByteArray());
    return [key.split('/').at(-1)!];
  }
  return downloadPrefix(s3, uri, local);
}

async function readS3Json(uri: string): Promise<unknown> {
  const m = /^s3:\/\/([^/]+)\/(.+)$/.exec(uri)!;
  const r = await s3.send(new GetObjectCommand({ Bucket: m[1], Key: m[2] }));
  return JSON.parse(await r.Body!.transformToString());
}

const PROCESSING = '/opt/ml/processing';
type ProcessingArgs = {
  AppSpecification: { ContainerEntrypoint: string[]; ContainerArguments: string[] };
  Environment: Record<string, string>;
  ProcessingInputs?: { InputName: string; S3Input: { S3Uri: string; LocalPath: string } }[];
  ProcessingOutputConfig: { Outputs: { OutputName: string; S3Output: { S3Uri: string; LocalPath: string } }[] };
};

interface PipelineRun extends PipelineWalk {
  arn: string;
  parameters: { Name: string; Value: string }[];
  training: { request: CreateTrainingJobCommandInput; dataset: string[]; base: string[] };
}

/**
 * The execution moto holds for `runId` (started by the labelling state machine), walked: each
 * step's resolved arguments run loupe's code the way SageMaker would run the step.
 */
async function walkExecution(arn: string, challengerOnnx: string): Promise<PipelineRun> {
  const execs = await sm.send(new ListPipelineExecutionsCommand({ PipelineName: syn.pipelineName }));
  const summary = execs.PipelineExecutionSummaries!.find((e) => e.PipelineExecutionArn === arn)!;
  const parameters = (await sm.send(new ListPipelineParametersForExecutionCommand({ PipelineExecutionArn: arn }))).PipelineParameters!.map(
    (p) => ({ Name: p.Name!, Value: p.Value! }),
  );
  const execId = arn.split('/').at(-1)!;
  const registerArn = (() => {
    const t = Object.entries(syn.templates).find(([n]) => n.endsWith('-model-build'))![1];
    const fns = resourcesOf(t, 'AWS::Lambda::Function').map(([id]) => id);
    return fns;
  })();
  const training = {} as PipelineRun['training'];
  const synthesisedEnv = (syn.pipeline.Steps[0]!.Arguments as unknown as ProcessingArgs).Environment;

  const processing = async (step: PipelineStep, a: ProcessingArgs) => {
    const [node, script, cmd] = a.AppSpecification.ContainerEntrypoint;
    expect([node, script]).toEqual(['node', '/var/task/dist/cloud/serverless/processing.js']);
    // The job's environment: the keys the stack gives it (its loop configuration must parse); the values here name the embedded stack.
    expect(Object.keys(a.Environment).sort()).toEqual([RUNTIME_ENV.home, RUNTIME_ENV.config].sort());
    expect(Object.keys(synthesisedEnv).sort()).toEqual(Object.keys(a.Environment).sort());
    const root = join(dir, 'processing', `${execId}-${step.Name}`);
    const local = (p: string) => {
      expect(p.startsWith(`${PROCESSING}/`)).toBe(true);
      return join(root, relative(PROCESSING, p));
    };
    for (const i of a.ProcessingInputs ?? []) await downloadS3Input(i.S3Input.S3Uri, local(i.S3Input.LocalPath));
    for (const o of a.ProcessingOutputConfig.Outputs) await mkdir(local(o.S3Output.LocalPath), { recursive: true });
    setEnv({ ...functionEnv(), LOUPE_PROCESSING_ROOT: root });
    try {
      await processingMain([cmd!, ...a.AppSpecification.ContainerArguments]);
    } finally {
      setEnv({ LOUPE_PROCESSING_ROOT: undefined, [RUNTIME_ENV.config]: undefined, [RUNTIME_ENV.home]: undefined });
    }
    for (const o of a.ProcessingOutputConfig.Outputs) await uploadFolder(local(o.S3Output.LocalPath), o.S3Output.S3Uri);
    return {
      ProcessingJobName: `pipelines-${execId}-${step.Name}`,
      ProcessingJobStatus: 'Completed',
      ProcessingOutputConfig: { Outputs: Object.fromEntries(a.ProcessingOutputConfig.Outputs.map((o) => [o.OutputName, o])) },
    };
  };

  const train = async (step: PipelineStep, a: Record<string, unknown>) => {
    const name = `pipelines-${execId}-${step.Name}`.slice(0, 63);
    const request = { ...a, TrainingJobName: name } as unknown as CreateTrainingJobCommandInput;
    await sm.send(new CreateTrainingJobCommand(request));
    const d = await sm.send(new DescribeTrainingJobCommand({ TrainingJobName: name }));
    // The training container (the fake part): what train.py reads from its channels, and the model.tar.gz it leaves.
    const channel = async (n: string) => {
      const uri = request.InputDataConfig!.find((c) => c.ChannelName === n)!.DataSource!.S3DataSource!.S3Uri!;
      return downloadS3Input(uri, join(dir, 'channels', name, n));
    };
    training.request = request;
    training.dataset = await channel('dataset');
    training.base = await channel('base');
    const out = join(dir, 'model-out', name);
    await mkdir(out, { recursive: true });
    await copyFile(join(SHIPPED, 'model.pt'), join(out, 'best.pt'));
    await copyFile(challengerOnnx, join(out, 'model.onnx'));
    await copyFile(join(SHIPPED, 'train-metrics.json'), join(out, 'metrics.json'));
    await tarCreate({ gzip: true, cwd: out, file: join(out, '..', `${name}.tar.gz`) }, ['best.pt', 'model.onnx', 'metrics.json']);
    const artefact = /^s3:\/\/([^/]+)\/(.+)$/.exec(d.ModelArtifacts!.S3ModelArtifacts!)!;
    await s3.send(new PutObjectCommand({ Bucket: artefact[1], Key: artefact[2], Body: readFileSync(join(out, '..', `${name}.tar.gz`)) }));
    return JSON.parse(JSON.stringify(d)) as Record<string, unknown>;
  };

  const register = async (step: PipelineStep, a: Record<string, unknown>) => {
    // The Lambda step's function is the model-build stack's register function.
    expect(registerArn.some((id) => step.FunctionArn === `arn:aws:lambda:${REGION}:${ACCOUNT}:function:${id}`)).toBe(true);
    const r = (await lambda(registerHandler, functionEnv())(a as never)) as unknown as Record<string, unknown>;
    return { OutputParameters: Object.fromEntries((step.OutputParameters ?? []).map((p) => [p.OutputName, r[p.OutputName]])) };
  };

  const walk = await walkPipeline(syn.pipeline, {
    parameters,
    execution: { arn, startTime: summary.StartTime!, pipelineName: syn.pipelineName },
    run: async (step, args) => {
      if (step.Type === 'Processing') return processing(step, args as unknown as ProcessingArgs);
      if (step.Type === 'Training') return train(step, args);
      if (step.Type === 'Lambda') return register(step, args);
      throw new Error(`no runner for ${step.Type}`);
    },
    readPropertyFile: async (_step, props, output, file) => {
      const o = (props.ProcessingOutputConfig as { Outputs: Record<string, { S3Output: { S3Uri: string } }> }).Outputs[output]!;
      return readS3Json(`${o.S3Output.S3Uri.replace(/\/$/, '')}/${file}`);
    },
  });
  return { ...walk, arn, parameters, training };
}

// ---- deploy --------------------------------------------------------------------------------------

/** What a person does in SageMaker Studio: approve the package (moto). */
async function approve(arn: string): Promise<void> {
  const d = await sm.send(new DescribeModelPackageCommand({ ModelPackageName: arn }));
  // moto 5.2.5's UpdateModelPackage replaces the whole CustomerMetadataProperties map with the
  // request's (SageMaker updates the given keys), so the approval sends the package's own back.
  await sm.send(
    new UpdateModelPackageCommand({
      ModelPackageArn: arn,
      ModelApprovalStatus: 'Approved',
      ApprovalDescription: 'approved by the line engineer',
      CustomerMetadataProperties: d.CustomerMetadataProperties,
    }),
  );
}

/** The EventBridge event SageMaker sends on the approval, checked against the deploy stack's rule. */
function approvalEvent(arn: string): Record<string, unknown> {
  const detail = { ModelPackageGroupName: 'metal-tags', ModelPackageArn: arn, ModelApprovalStatus: 'Approved', ModelPackageVersion: 1 };
  const event = {
    version: '0',
    id: `e-${Math.random().toString(16).slice(2)}`,
    'detail-type': 'SageMaker Model Package State Change',
    source: 'aws.sagemaker',
    account: ACCOUNT,
    time: new Date().toISOString(),
    region: REGION,
    resources: [arn],
    detail,
  };
  const t = Object.entries(syn.templates).find(([n]) => n.endsWith('-deploy'))![1];
  const [, rule] = resourcesOf(t, 'AWS::Events::Rule')[0]!;
  const p = rule.EventPattern as { source: string[]; 'detail-type': string[]; detail: Record<string, string[]> };
  expect(p.source).toContain(event.source);
  expect(p['detail-type']).toContain(event['detail-type']);
  for (const [k, v] of Object.entries(p.detail)) expect(v).toContain((detail as Record<string, unknown>)[k]);
  return event;
}

async function deployExecution(name: string, arn: string, tasks: Record<string, TaskHandler> = {}): Promise<Execution> {
  const env = functionEnv();
  return executeStateMachine(syn.deploy, {
    name,
    machine: 'loupe-deploy',
    input: approvalEvent(arn),
    tasks: {
      Publish: task(lambda(publishHandler, env)),
      Deploy: task(lambda(deployHandler, env)),
      RolloutStatus: task(lambda(rolloutStatusHandler, env)),
      Confirm: task(lambda(confirmHandler, env)),
      Rollback: task(lambda(rollbackHandler, env)),
      RollbackFailedDeployment: task(lambda(rollbackHandler, env)),
      ...tasks,
    },
    waits: { WaitForRollout: 400 },
    retryIntervals: { Publish: 0, Deploy: 0, RolloutStatus: 0, Confirm: 0, Rollback: 0, RollbackFailedDeployment: 0 },
  });
}

/** A labelling run, its pipeline run with a challenger as good as the champion (RegisterModel), and the person's approval. */
async function approvedChallenger(name: string, batch: number): Promise<{ runId: number; arn: string }> {
  const l = await labellingExecution(name, batch);
  const started = (l.output!.modelBuild as { PipelineExecutionArn: string }).PipelineExecutionArn;
  const p = await walkExecution(started, join(SHIPPED, 'model.onnx'));
  expect(p.ran.at(-1)).toBe('RegisterModel');
  const arn = (p.properties.RegisterModel as { OutputParameters: Record<string, string> }).OutputParameters.ModelPackageArn!;
  await approve(arn);
  return { runId: l.runId, arn };
}

/** Change what the thing group's devices do with a version (fake-aws.ts: `failing`, `failingAtOnce`). */
function updateFleet(change: Record<string, unknown>): void {
  const fleetFile = join(dir, 'aws', 'greengrass', 'fleet.json');
  writeJson(fleetFile, { ...(JSON.parse(readFileSync(fleetFile, 'utf8')) as object), ...change });
}

const packages = async () =>
  (await sm.send(new ListModelPackagesCommand({ ModelPackageGroupName: 'metal-tags' }))).ModelPackageSummaryList!.map((p) => ({
    arn: p.ModelPackageArn!,
    status: p.ModelApprovalStatus!,
  }));

describe('the loop on AWS, walked: labelling state machine → model-build pipeline → deploy state machine (moto, embedded S3, Greengrass fake)', () => {
  let rejectedArn: string;
  let approvedArn: string;

  it('StartModelBuild starts the pipeline in moto; a worse challenger takes Gate → RegisterRejected (package Rejected)', async () => {
    // The synthesised environment's loop configuration is valid loupe configuration.
    const env = (syn.pipeline.Steps[0]!.Arguments as unknown as ProcessingArgs).Environment;
    expect(() => parseLoopConfig(JSON.parse(env[RUNTIME_ENV.config]!), 'synthesised')).not.toThrow();

    const l = await labellingExecution('label-1', 0);
    expect(l.path.slice(-2)).toEqual(['StartModelBuild', 'ModelBuildStarted']);
    const started = (l.output!.modelBuild as { PipelineExecutionArn: string }).PipelineExecutionArn;
    expect(started).toMatch(new RegExp(`^arn:aws:sagemaker:${REGION}:${ACCOUNT}:pipeline/${syn.pipelineName}/execution/`));

    const p = await walkExecution(started, await worseMetalTagsModel());
    expect(p.parameters).toEqual([{ Name: 'LoopRun', Value: String(l.runId) }]);
    expect(p.ran).toEqual(['Snapshot', 'HasNewLabels', 'Train', 'Evaluate', 'Gate', 'RegisterRejected']);
    expect(p.conditions).toEqual({ HasNewLabels: true, Gate: false });
    // Property paths and files the definition names are what loupe's code wrote and read.
    const exec = started.split('/').at(-1);
    expect(p.args.Snapshot!.AppSpecification).toMatchObject({
      ContainerArguments: ['--run-id', String(l.runId), '--execution', exec, '--as-of', expect.any(String)],
    });
    expect(p.training.dataset).toContain('data.yaml');
    expect(p.training.base).toEqual(['base.pt']);
    expect(p.training.request.HyperParameters).toMatchObject({ epochs: '30', imgsz: expect.any(String), batch: expect.any(String) });
    const evalArgs = (p.args.Evaluate!.AppSpecification as { ContainerArguments: string[] }).ContainerArguments;
    expect(evalArgs.slice(0, 6)).toEqual([
      '--run-id',
      String(l.runId),
      '--training-job',
      p.properties.Train!.TrainingJobName,
      '--model-artifacts',
      `s3://${ML}/loupe/pipeline/${exec}/training/${String(p.properties.Train!.TrainingJobName)}/output/model.tar.gz`,
    ]);
    expect(evalArgs.slice(6)).toEqual(['--gate-metric', 'map50', '--gate-threshold', '0', '--gate-tolerance', '0.02']);
    expect(p.args.RegisterRejected).toEqual({
      runId: String(l.runId),
      evaluationUri: `s3://${ML}/loupe/pipeline/${exec}/evaluation`,
      expect: 'rejected',
      approval: 'Rejected',
    });
    const out = (p.properties.RegisterRejected as { OutputParameters: Record<string, string> }).OutputParameters;
    expect(out.Status).toBe('rejected');
    rejectedArn = out.ModelPackageArn!;
    // Package 1: the group's first champion (the shipped model), which the registry mirrored approved.
    const all = await packages();
    expect(all).toHaveLength(2);
    expect(all[0]).toMatchObject({ status: 'Approved' });
    expect(all[1]).toEqual({ arn: rejectedArn, status: 'Rejected' });
  }, 900_000);

  it('a challenger as good as the champion takes Gate → RegisterModel (PendingManualApproval, as configured)', async () => {
    const l = await labellingExecution('label-2', 1);
    const started = (l.output!.modelBuild as { PipelineExecutionArn: string }).PipelineExecutionArn;
    const p = await walkExecution(started, join(SHIPPED, 'model.onnx'));
    expect(p.ran).toEqual(['Snapshot', 'HasNewLabels', 'Train', 'Evaluate', 'Gate', 'RegisterModel']);
    expect(p.conditions).toEqual({ HasNewLabels: true, Gate: true });
    expect(p.args.RegisterModel).toMatchObject({ runId: String(l.runId), expect: 'passed', approval: 'PendingManualApproval' });
    const out = (p.properties.RegisterModel as { OutputParameters: Record<string, string> }).OutputParameters;
    expect(out.Status).toBe('pending');
    approvedArn = out.ModelPackageArn!;
    expect(await packages()).toContainEqual({ arn: approvedArn, status: 'PendingManualApproval' });
  }, 900_000);

  it('deploy, failure path: the new version breaks on the devices → RolloutStatus failed → Rollback → RolledBack; a Lambda throttle on Deploy is retried', async () => {
    await approve(approvedArn);
    // Devices cannot run the version this publish makes (1.0.1): they roll back, the rollout is cancelled.
    updateFleet({ failing: ['1.0.1'] });
    let throttled = 0;
    const env = functionEnv();
    const x = await deployExecution('deploy-1', approvedArn, {
      Deploy: async (i) => {
        // The Lambda service's own answer to a burst (before loupe's code runs): retried by the definition.
        if (throttled++ === 0) throw Object.assign(new Error('Rate exceeded'), { name: 'Lambda.TooManyRequestsException' });
        return (await lambda(deployHandler, env)(i as never)) as never;
      },
    });
    expect(x.retries).toEqual([{ state: 'Deploy', error: 'Lambda.TooManyRequestsException' }]);
    expect(x.error).toEqual({
      error: 'DeploymentFailed',
      cause: 'The rollout failed; the thing group was redeployed with the loupe.Model version that ran before.',
    });
    const p = x.path;
    expect(p.slice(0, 4)).toEqual(['Publish', 'Deploy', 'Deployed', 'DeploymentState']);
    expect(p.slice(-3)).toEqual(['RolloutState', 'Rollback', 'RolledBack']);
    // Between them: the wait loop, as often as the rollout took.
    for (let i = 4; i < p.length - 3; i += 3) expect(p.slice(i, i + 3)).toEqual(['WaitForRollout', 'RolloutStatus', 'RolloutState']);
    expect(x.output).toBeUndefined();
    const calls = readCalls(join(dir, 'aws'));
    const deployments = calls
      .filter((c) => c.cmd === 'CreateDeployment')
      .map((c) => c.input as { components: Record<string, { componentVersion: string }> });
    // The run's deployment (1.0.1), then the rollback's redeploy of the version that ran before (1.0.0), siblings kept.
    expect(deployments.map((d) => d.components['loupe.Model']!.componentVersion)).toEqual(['1.0.1', '1.0.0']);
    for (const d of deployments)
      expect(Object.keys(d.components).sort()).toEqual(['loupe.Camera', 'loupe.Inference', 'loupe.Model', 'loupe.Uploader']);
    expect(calls.filter((c) => c.cmd === 'CreateComponentVersion')).toHaveLength(1);
  }, 600_000);

  it('deploy, success path: publish → deploy → wait for the rollout → confirm → FleetRunsNewModel; Catch: approving the gate-rejected package ends at DeployFailed', async () => {
    const { arn } = await approvedChallenger('label-3', 2);
    const x = await deployExecution('deploy-2', arn);
    expect(x.error, JSON.stringify(x.error)).toBeUndefined();
    expect(x.path.slice(0, 4)).toEqual(['Publish', 'Deploy', 'Deployed', 'DeploymentState']);
    expect(x.path.slice(-3)).toEqual(['RolloutState', 'Confirm', 'FleetRunsNewModel']);
    const o = x.output as {
      publish: { output: { version: string } };
      deploy: { output: { version: string } };
      confirm: { output: { devices: { modelVersion: string }[] } };
    };
    expect(o.publish.output.version).toBe('1.0.2');
    expect(o.deploy.output.version).toBe('1.0.2');
    expect(o.confirm.output.devices.map((d) => d.modelVersion)).toEqual(['1.0.2', '1.0.2']);

    // Catch: someone approves the package the gate rejected; loupe does not revive it.
    await approve(rejectedArn);
    const f = await deployExecution('deploy-3', rejectedArn);
    expect(f.path).toEqual(['Publish', 'DeployFailed']);
    expect(f.error).toMatchObject({ error: 'Loupe.REGISTRY_NOT_APPROVED' });
  }, 900_000);

  it("deploy, a deployment Greengrass reports FAILED at once: Deploy halts → RollbackFailedDeployment (loupe's rollbackHandler, from the run's deploy output) → RolledBack", async () => {
    // Greengrass v2 is not in moto: the deployment's FAILED comes from the request-shape fake
    // (fake-aws.ts `failingAtOnce`: FAILED from the first GetDeployment on). The model package,
    // its approval and the pipeline run before it are moto's.
    const { runId, arn } = await approvedChallenger('label-4', 3);
    updateFleet({ failingAtOnce: ['1.0.3'] });
    const before = readCalls(join(dir, 'aws')).length;
    const env = functionEnv();
    const replies: Record<string, unknown> = {};
    // The real handlers; the wrappers only keep their replies (a failed execution has no output).
    const keep =
      (state: string, h: TaskHandler): TaskHandler =>
      async (i) => {
        const r = await h(i);
        replies[state] = r;
        return r;
      };
    const x = await deployExecution('deploy-4', arn, {
      Deploy: keep('Deploy', task(lambda(deployHandler, env))),
      RollbackFailedDeployment: keep('RollbackFailedDeployment', task(lambda(rollbackHandler, env))),
    });
    expect(x.path).toEqual(['Publish', 'Deploy', 'Deployed', 'RollbackFailedDeployment', 'RolledBack']);
    expect(x.error).toMatchObject({ error: 'DeploymentFailed' });
    // Deploy saw FAILED on its one look and halted the run with the deployment marked failed.
    expect(replies.Deploy).toMatchObject({
      runId,
      status: 'halted',
      output: { name: `loupe-run-${runId}`, version: '1.0.3', previousVersion: '1.0.2', state: 'failed' },
    });
    expect(x.calls.find((c) => c.state === 'RollbackFailedDeployment')!.input).toEqual({ runId, reason: 'deployment failed at once' });
    // The rollback found the failed deployment by name and redeployed the version before it.
    expect(replies.RollbackFailedDeployment).toEqual({
      runId,
      rolledBackTo: '1.0.2',
      deployment: expect.stringContaining(`loupe-run-${runId}`),
    });
    const calls = readCalls(join(dir, 'aws')).slice(before);
    const deployments = calls
      .filter((c) => c.cmd === 'CreateDeployment')
      .map((c) => c.input as { targetArn: string; deploymentName: string; components: Record<string, { componentVersion: string }> });
    expect(deployments.map((d) => d.components['loupe.Model']!.componentVersion)).toEqual(['1.0.3', '1.0.2']);
    expect(deployments.map((d) => d.targetArn)).toEqual([GROUP_ARN, GROUP_ARN]);
    expect(deployments[1]!.deploymentName).toBe((replies.RollbackFailedDeployment as { deployment: string }).deployment);
    for (const d of deployments)
      expect(Object.keys(d.components).sort()).toEqual(['loupe.Camera', 'loupe.Inference', 'loupe.Model', 'loupe.Uploader']);
    // What the loop home (S3) now says: the run halted naming the rollback, the failed deployment
    // still failed, the redeploy recorded as a rollback.
    const state = await withCloudHome(
      runtimeFromEnv(env),
      { runId },
      async (c) => ({
        run: c.store.getRun(c.runId)!,
        failed: c.env.fleetStore.deploymentByName(c.env.fleet.kind, c.env.fleet.target, `loupe-run-${runId}`)!,
        redeploy: c.env.fleetStore.deploymentByName(c.env.fleet.kind, c.env.fleet.target, deployments[1]!.deploymentName)!,
      }),
      { readOnly: true },
    );
    expect(state.run.status).toBe('halted');
    expect(state.run.halt).toBe('deployment failed (deployment failed at once); rolled back to loupe.Model 1.0.2');
    expect(state.failed).toMatchObject({ state: 'failed', version: '1.0.3' });
    expect(state.redeploy).toMatchObject({ kind: 'rollback', version: '1.0.2' });
  }, 900_000);
});
