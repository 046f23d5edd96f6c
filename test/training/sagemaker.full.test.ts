import { spawn } from 'node:child_process';
import { createWriteStream, existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import {
  CreateTrainingJobCommand,
  DescribeTrainingJobCommand,
  SageMakerClient,
  StopTrainingJobCommand,
  type CreateTrainingJobCommandInput,
  type DescribeTrainingJobCommandOutput,
} from '@aws-sdk/client-sagemaker';
import { mockClient } from 'aws-sdk-client-mock';
import { create as tarCreate } from 'tar';
import { parse as parseYaml } from 'yaml';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { trainScript } from '../../cloud/training/local-trainer.js';
import { jobNameFor, trainSageMaker, type SageMakerTrainConfig } from '../../cloud/training/sagemaker-trainer.js';
import { ensureVenv, offlinePythonEnv, venvPython } from '../../cloud/training/venv.js';
import { isLoupeError, type LoupeError } from '../../lib/errors.js';
import { startObjectStore, type ObjectStore } from '../../embedded/objectstore/index.js';
import { checkpointOf } from '../helpers/models.js';
import { metalTagsSubset } from './yolo-fixture.js';
import { EXPECTED_METRIC_DEFINITIONS } from '../helpers/aws-shapes.js';

/**
 * The SageMaker backend against a REAL S3-compatible server (embedded/objectstore, through
 * @aws-sdk/client-s3) with the SageMaker control plane mocked (aws-sdk-client-mock) and its
 * requests asserted exactly. The mocked CreateTrainingJob plays the part of SageMaker for real:
 * it downloads the job's channels from the store into an /opt/ml-shaped folder, writes
 * hyperparameters.json from the request, runs the container's program (`train.py train`, the
 * way SageMaker starts the image), tars /opt/ml/model into model.tar.gz at
 * <S3OutputPath>/<job>/output/, and reports FailureReason from /opt/ml/output/failure and
 * FinalMetricDataList from the request's MetricDefinitions applied to the job's log.
 */
const BUCKET = 'loupe-train';
const ROLE = 'arn:aws:iam::123456789012:role/loupe-sagemaker-training';
const IMAGE = '123456789012.dkr.ecr.us-east-1.amazonaws.com/loupe-train:1';

let tmp: string;
let store: ObjectStore;
let s3: S3Client;
const sm = mockClient(SageMakerClient);
const sagemaker = new SageMakerClient({ region: 'us-east-1', credentials: { accessKeyId: 'x', secretAccessKey: 'y' } });

interface SimulatedJob {
  status: 'InProgress' | 'Completed' | 'Failed' | 'Stopping' | 'Stopped';
  secondary: string[];
  failureReason?: string;
  artifacts?: string;
  finalMetrics?: { MetricName: string; Value: number; Timestamp: Date }[];
  log?: string;
}

async function listKeys(prefix: string): Promise<string[]> {
  const keys: string[] = [];
  let token: string | undefined;
  do {
    const page = await s3.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: prefix, ContinuationToken: token }));
    keys.push(...(page.Contents ?? []).map((c) => c.Key as string));
    token = page.NextContinuationToken;
  } while (token);
  return keys.sort();
}

/** SageMaker's part: channels → /opt/ml, run the image's `train`, model dir → model.tar.gz. */
async function runContainer(input: CreateTrainingJobCommandInput): Promise<SimulatedJob> {
  const root = join(tmp, `opt-ml-${input.TrainingJobName}`);
  for (const ch of input.InputDataConfig ?? []) {
    const uri = ch.DataSource!.S3DataSource!.S3Uri!;
    const [, bucket, prefix] = /^s3:\/\/([^/]+)\/(.*)$/.exec(uri)!;
    expect(bucket).toBe(BUCKET);
    for (const key of await listKeys(prefix!)) {
      const target = join(root, 'input', 'data', ch.ChannelName!, key.slice(prefix!.length));
      await mkdir(dirname(target), { recursive: true });
      const obj = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }));
      await pipeline(obj.Body as Readable, createWriteStream(target));
    }
  }
  await mkdir(join(root, 'input', 'config'), { recursive: true });
  await writeFile(join(root, 'input', 'config', 'hyperparameters.json'), JSON.stringify(input.HyperParameters));
  await mkdir(join(root, 'model'), { recursive: true });
  const { code, log } = await new Promise<{ code: number | null; log: string }>((resolve) => {
    const child = spawn(venvPython(), [trainScript, 'train'], {
      cwd: root,
      env: offlinePythonEnv({ SM_ROOT: root, LOUPE_FORBID_NETWORK: '1' }),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr.on('data', (b: Buffer) => (out += b.toString()));
    child.on('close', (c) => resolve({ code: c, log: out }));
  });
  if (code !== 0) {
    const failure = join(root, 'output', 'failure');
    return {
      status: 'Failed',
      secondary: ['Starting', 'Downloading', 'Training', 'Failed'],
      failureReason: existsSync(failure) ? await readFile(failure, 'utf8') : `AlgorithmError: exit ${code}`,
      log,
    };
  }
  const tarball = join(root, 'model.tar.gz');
  await tarCreate({ gzip: true, file: tarball, cwd: join(root, 'model') }, await readdir(join(root, 'model')));
  const key = `${/^s3:\/\/[^/]+\/(.*)$/.exec(input.OutputDataConfig!.S3OutputPath!)![1]}/${input.TrainingJobName}/output/model.tar.gz`;
  await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: readFileSync(tarball) }));
  const finalMetrics = (input.AlgorithmSpecification?.MetricDefinitions ?? []).flatMap((d) => {
    const values = log
      .split('\n')
      .map((l) => new RegExp(d.Regex!).exec(l)?.[1])
      .filter((v): v is string => v !== undefined);
    return values.length ? [{ MetricName: d.Name!, Value: Number(values.at(-1)), Timestamp: new Date() }] : [];
  });
  return {
    status: 'Completed',
    secondary: ['Starting', 'Downloading', 'Training', 'Uploading', 'Completed'],
    artifacts: `s3://${BUCKET}/${key}`,
    finalMetrics,
    log,
  };
}

/** DescribeTrainingJob answers walking through the job's secondary statuses, then its end state. */
function describeSequence(job: SimulatedJob): () => DescribeTrainingJobCommandOutput {
  let i = 0;
  return () => {
    const last = i >= job.secondary.length - 1;
    const secondary = job.secondary[Math.min(i++, job.secondary.length - 1)]!;
    return {
      $metadata: {},
      TrainingJobName: 'x',
      TrainingJobArn: 'arn',
      TrainingJobStatus: last ? job.status : 'InProgress',
      SecondaryStatus: secondary as DescribeTrainingJobCommandOutput['SecondaryStatus'],
      ...(last && job.failureReason ? { FailureReason: job.failureReason } : {}),
      ...(last && job.artifacts ? { ModelArtifacts: { S3ModelArtifacts: job.artifacts } } : {}),
      ...(last && job.finalMetrics ? { FinalMetricDataList: job.finalMetrics } : {}),
      ...(last ? { BillableTimeInSeconds: 61 } : {}),
    } as DescribeTrainingJobCommandOutput;
  };
}

const config = (jobName: string): SageMakerTrainConfig => ({
  bucket: BUCKET,
  roleArn: ROLE,
  image: IMAGE,
  jobName,
  pollSeconds: 0.05,
  instanceType: 'ml.g5.xlarge',
  maxRuntimeSeconds: 7200,
});

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'lt-sm-'));
  store = await startObjectStore({ dir: join(tmp, 'store'), buckets: [BUCKET] });
  s3 = new S3Client(store.clientConfig);
  await ensureVenv();
});

afterEach(() => {
  sm.reset();
});

afterAll(async () => {
  s3?.destroy();
  await store?.stop();
  await rm(tmp, { recursive: true, force: true });
});

describe('SageMaker training backend', () => {
  it('uploads the channels, creates the job with the exact request, polls it and unpacks model.tar.gz', async () => {
    const data = await metalTagsSubset(join(tmp, 'data'), { limit: { train: 12, val: 4, test: 4 } });
    let job: SimulatedJob | undefined;
    sm.on(CreateTrainingJobCommand).callsFake(async (input: CreateTrainingJobCommandInput) => {
      job = await runContainer(input);
      return { TrainingJobArn: `arn:aws:sagemaker:us-east-1:123456789012:training-job/${input.TrainingJobName}` };
    });
    let describe: (() => DescribeTrainingJobCommandOutput) | undefined;
    sm.on(DescribeTrainingJobCommand).callsFake(() => (describe ??= describeSequence(job!))());

    const out = join(tmp, 'out');
    const result = await trainSageMaker(
      { data, base: checkpointOf('metal-tags'), epochs: 1, imgsz: 160, batch: 8, patience: 50, seed: 0, workers: 0 },
      out,
      config('loupe-test-job-1'),
      { s3, sagemaker },
    );
    if (job?.status !== 'Completed') throw new Error(`simulated job ${job?.status}: ${job?.failureReason}\n${job?.log?.slice(-3000)}`);

    const creates = sm.commandCalls(CreateTrainingJobCommand);
    expect(creates).toHaveLength(1);
    expect(creates[0]!.args[0].input).toEqual({
      TrainingJobName: 'loupe-test-job-1',
      AlgorithmSpecification: {
        TrainingImage: IMAGE,
        TrainingInputMode: 'File',
        MetricDefinitions: EXPECTED_METRIC_DEFINITIONS,
      },
      RoleArn: ROLE,
      HyperParameters: {
        data_yaml: 'data.yaml',
        model: 'model.pt',
        epochs: '1',
        imgsz: '160',
        batch: '8',
        patience: '50',
        seed: '0',
        workers: '0',
      },
      InputDataConfig: [
        {
          ChannelName: 'dataset',
          DataSource: {
            S3DataSource: {
              S3DataType: 'S3Prefix',
              S3Uri: `s3://${BUCKET}/loupe/training/loupe-test-job-1/input/dataset/`,
              S3DataDistributionType: 'FullyReplicated',
            },
          },
        },
        {
          ChannelName: 'base',
          DataSource: {
            S3DataSource: {
              S3DataType: 'S3Prefix',
              S3Uri: `s3://${BUCKET}/loupe/training/loupe-test-job-1/input/base/`,
              S3DataDistributionType: 'FullyReplicated',
            },
          },
        },
      ],
      OutputDataConfig: { S3OutputPath: `s3://${BUCKET}/loupe/training/loupe-test-job-1/output` },
      ResourceConfig: { InstanceType: 'ml.g5.xlarge', InstanceCount: 1, VolumeSizeInGB: 30 },
      StoppingCondition: { MaxRuntimeInSeconds: 7200 },
    });
    const describes = sm.commandCalls(DescribeTrainingJobCommand);
    expect(describes.length).toBe(5); // Starting, Downloading, Training, Uploading, Completed
    for (const d of describes) expect(d.args[0].input).toEqual({ TrainingJobName: 'loupe-test-job-1' });
    expect(sm.commandCalls(StopTrainingJobCommand)).toHaveLength(0);

    // what landed in the (real) store: the data set channel with a relative data.yaml, and the base
    const keys = await listKeys('loupe/training/loupe-test-job-1/');
    const input = keys.filter((k) => k.includes('/input/'));
    expect(input.filter((k) => k.includes('/images/train/'))).toHaveLength(12);
    expect(input.filter((k) => k.includes('/labels/train/'))).toHaveLength(12);
    expect(input.filter((k) => k.includes('/images/val/'))).toHaveLength(4);
    expect(input.filter((k) => k.includes('/images/test/'))).toHaveLength(4);
    expect(input).toContain('loupe/training/loupe-test-job-1/input/base/model.pt');
    expect(keys).toContain('loupe/training/loupe-test-job-1/output/loupe-test-job-1/output/model.tar.gz');
    const yamlObj = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: 'loupe/training/loupe-test-job-1/input/dataset/data.yaml' }));
    expect(parseYaml(await yamlObj.Body!.transformToString())).toEqual({
      path: '.',
      train: 'images/train',
      val: 'images/val',
      test: 'images/test',
      names: { 0: 'scratch' },
    });
    const ptObj = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: 'loupe/training/loupe-test-job-1/input/base/model.pt' }));
    expect(Buffer.from(await ptObj.Body!.transformToByteArray()).equals(readFileSync(checkpointOf('metal-tags')))).toBe(true);

    // the artefacts came back and unpacked: the container trained a warm start at 160 px
    expect(result.backend).toBe('sagemaker');
    for (const f of [result.bestPt, result.onnx, result.resultsCsv, result.metricsJson]) expect(existsSync(f), f).toBe(true);
    expect(result.metrics.epochs_run).toBe(1);
    expect(result.metrics.hyp).toMatchObject({ warm_start: true, optimizer: 'AdamW', lr0: 0.0002 });
    expect(result.metrics.counts.train).toEqual({ images: 12, boxes: expect.any(Number) });
    expect(result.job).toEqual({
      name: 'loupe-test-job-1',
      arn: 'arn:aws:sagemaker:us-east-1:123456789012:training-job/loupe-test-job-1',
      modelArtifacts: `s3://${BUCKET}/loupe/training/loupe-test-job-1/output/loupe-test-job-1/output/model.tar.gz`,
      billableSeconds: 61,
    });
    // the MetricDefinitions found the container's loupe-metric line
    expect(job.finalMetrics?.map((m) => m.MetricName)).toContain('val:map50');
    expect(job.log).not.toContain('network_attempt');
  }, 600_000);

  it("surfaces a refusal inside the job (the container's /opt/ml/output/failure) as that LoupeError", async () => {
    const data = await metalTagsSubset(join(tmp, 'data-dent'), { limit: { train: 4, val: 2, test: 0 }, names: ['dent'] });
    let job: SimulatedJob | undefined;
    sm.on(CreateTrainingJobCommand).callsFake(async (input: CreateTrainingJobCommandInput) => {
      job = await runContainer(input);
      return { TrainingJobArn: 'arn:aws:sagemaker:us-east-1:123456789012:training-job/loupe-test-job-2' };
    });
    let describe: (() => DescribeTrainingJobCommandOutput) | undefined;
    sm.on(DescribeTrainingJobCommand).callsFake(() => (describe ??= describeSequence(job!))());
    const err = (await trainSageMaker(
      { data, base: checkpointOf('metal-tags'), epochs: 1, imgsz: 160, batch: 8, patience: 50, seed: 0 },
      join(tmp, 'out2'),
      config('loupe-test-job-2'),
      { s3, sagemaker },
    ).catch((e: unknown) => e)) as LoupeError;
    expect(isLoupeError(err)).toBe(true);
    expect(err.code).toBe('CLASS_MISMATCH');
    expect(err.message).toContain("the checkpoint's classes ['scratch'] differ from the data set's ['dent']");
    expect(err.message).toContain('(training job loupe-test-job-2)');
    expect(existsSync(join(tmp, 'out2'))).toBe(false);
  }, 300_000);

  it('refuses a data set without labels before uploading anything or creating a job', async () => {
    const data = await metalTagsSubset(join(tmp, 'data-unlabelled'), { limit: { train: 4, val: 2, test: 0 }, dropBoxes: true });
    const before = await listKeys('loupe/training/loupe-test-job-3/');
    const err = (await trainSageMaker(
      { data, base: 'yolov8n.yaml', epochs: 1, imgsz: 160, batch: 8, patience: 50, seed: 0 },
      join(tmp, 'out3'),
      config('loupe-test-job-3'),
      { s3, sagemaker },
    ).catch((e: unknown) => e)) as LoupeError;
    expect(err.code).toBe('DATA_NO_LABELS');
    expect(err.message).toBe(`${data}: the train split has 4 images but no labelled boxes`);
    expect(before).toEqual([]);
    expect(await listKeys('loupe/training/loupe-test-job-3/')).toEqual([]);
    expect(sm.calls()).toHaveLength(0);
  });

  it('Ctrl-C stops the job (StopTrainingJob), waits for Stopped and reports the interruption', async () => {
    const data = await metalTagsSubset(join(tmp, 'data-stop'), { limit: { train: 2, val: 1, test: 0 } });
    const controller = new AbortController();
    let stopped = false;
    sm.on(CreateTrainingJobCommand).resolves({ TrainingJobArn: 'arn:aws:sagemaker:us-east-1:123456789012:training-job/loupe-test-job-4' });
    sm.on(StopTrainingJobCommand).callsFake(() => {
      stopped = true;
      return {};
    });
    let polls = 0;
    sm.on(DescribeTrainingJobCommand).callsFake(() => {
      if (++polls === 2) controller.abort(); // the user presses Ctrl-C while the job trains
      return {
        TrainingJobStatus: stopped ? (polls > 4 ? 'Stopped' : 'Stopping') : 'InProgress',
        SecondaryStatus: stopped ? 'Stopping' : 'Training',
      };
    });
    const err = (await trainSageMaker(
      { data, base: 'yolov8n.yaml', epochs: 5, imgsz: 160, batch: 8, patience: 50, seed: 0 },
      join(tmp, 'out4'),
      config('loupe-test-job-4'),
      { s3, sagemaker },
      { signal: controller.signal },
    ).catch((e: unknown) => e)) as LoupeError;
    expect(err.code).toBe('TRAIN_INTERRUPTED');
    expect(err.exitCode).toBe(130);
    expect(sm.commandCalls(StopTrainingJobCommand).map((c) => c.args[0].input)).toEqual([{ TrainingJobName: 'loupe-test-job-4' }]);
    expect(sm.commandCalls(CreateTrainingJobCommand)[0]!.args[0].input.HyperParameters).toEqual({
      data_yaml: 'data.yaml',
      model: 'yolov8n.yaml',
      epochs: '5',
      imgsz: '160',
      batch: '8',
      patience: '50',
      seed: '0',
    });
    expect(sm.commandCalls(CreateTrainingJobCommand)[0]!.args[0].input.InputDataConfig).toHaveLength(1); // no base channel for a cold start
  });

  it('names missing configuration, and makes valid job names', async () => {
    const data = await metalTagsSubset(join(tmp, 'data-cfg'), { limit: { train: 2, val: 1, test: 0 } });
    const err = (await trainSageMaker(
      { data, base: 'yolov8n.yaml', epochs: 1, imgsz: 160, batch: 8, patience: 50, seed: 0 },
      join(tmp, 'out5'),
      { ...config('j'), roleArn: '' },
      { s3, sagemaker },
    ).catch((e: unknown) => e)) as LoupeError;
    expect(err.message).toBe('roleArn: the SageMaker backend needs roleArn');
    const name = jobNameFor(new Date('2026-01-02T03:04:05Z'));
    expect(name).toMatch(/^loupe-train-20260102-030405-[a-z0-9]{1,4}$/);
    expect(name.length).toBeLessThanOrEqual(63);
  });
});
