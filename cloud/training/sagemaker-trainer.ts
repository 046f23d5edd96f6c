import { createReadStream, existsSync } from 'node:fs';
import { mkdir, readFile, stat } from 'node:fs/promises';
import { basename, dirname, extname, join, resolve } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import {
  CreateTrainingJobCommand,
  DescribeTrainingJobCommand,
  StopTrainingJobCommand,
  type CreateTrainingJobCommandInput,
  type DescribeTrainingJobCommandOutput,
  type SageMakerClient,
} from '@aws-sdk/client-sagemaker';
import { stringify as toYaml } from 'yaml';
import { extract as untar } from 'tar';
import type { Logger } from 'pino';
import { isErrorCode } from '../../lib/error-codes.js';
import { LoupeError } from '../../lib/errors.js';
import { silentLogger } from '../../lib/log.js';
import { Progress } from '../../lib/progress.js';
import { readYoloDataset } from '../dataset/yolo-read.js';
import { metricDefinitions } from './events.js';
import { validateOptions, type TrainMetricsFile, type TrainOptions, type TrainResult } from './options.js';

/**
 * The SageMaker backend: the same train.py in a training container (see Dockerfile). The YOLO data
 * set goes to S3 as the `dataset` channel and a .pt base as the `base` channel; CreateTrainingJob
 * starts it; DescribeTrainingJob is polled for progress; model.tar.gz (train.py's /opt/ml/model:
 * best.pt, model.onnx, results.csv, metrics.json) comes back and is unpacked into the output folder.
 */
export interface SageMakerTrainConfig {
  bucket: string;
  /** Key prefix for the job's inputs and outputs (default `loupe/training`). */
  prefix?: string;
  roleArn: string;
  /** ECR URI of the image built from cloud/training/Dockerfile. */
  image: string;
  instanceType?: string;
  instanceCount?: number;
  volumeSizeGB?: number;
  maxRuntimeSeconds?: number;
  jobName?: string;
  pollSeconds?: number;
  /** Parallel S3 uploads. */
  uploadConcurrency?: number;
}

export const SAGEMAKER_DEFAULTS = {
  prefix: 'loupe/training',
  instanceType: 'ml.g4dn.xlarge',
  instanceCount: 1,
  volumeSizeGB: 30,
  maxRuntimeSeconds: 3600,
  pollSeconds: 30,
  uploadConcurrency: 4,
} as const;

export interface SageMakerHooks {
  log?: Logger;
  /** Abort (Ctrl-C): StopTrainingJob, wait until it has stopped, then reject with TRAIN_INTERRUPTED. */
  signal?: AbortSignal;
  progressStream?: NodeJS.WriteStream;
  /** Clock for job names (tests). */
  now?: () => Date;
}

export interface SageMakerClients {
  s3: S3Client;
  sagemaker: SageMakerClient;
}

/** One file to upload: its S3 key under the channel prefix, and its bytes (a path or a buffer). */
export interface ChannelFile {
  key: string;
  path?: string;
  body?: string;
  bytes: number;
}

/** Codes train.py refuses with (LOUPE_ERROR); in the container they come back as FailureReason `CODE: message`. */
const REFUSAL = /^([A-Z][A-Z_]+): ([\s\S]*)$/;

export function jobNameFor(now: Date): string {
  const t = now.toISOString().replace(/[-:T]/g, '').slice(0, 14);
  return `loupe-train-${t.slice(0, 8)}-${t.slice(8)}-${Math.random().toString(36).slice(2, 6)}`;
}

/**
 * The data set as channel files: a fresh data.yaml (relative `path`, so it resolves inside the
 * container), images/<split>/<file> and labels/<split>/<stem>.txt, and loupe's manifest.json when
 * present. Refuses what would make the job fail after paying for an instance: no names, no train
 * images or boxes, no val images, two images of one split with the same file name.
 */
export async function datasetChannel(dataYaml: string): Promise<ChannelFile[]> {
  const ds = readYoloDataset(dataYaml);
  if (ds.names.length === 0) throw new LoupeError('DATA_NO_NAMES', '`names` is missing or empty', { input: ds.yamlPath });
  const train = ds.splits.train ?? [];
  if (train.length === 0) throw new LoupeError('DATA_EMPTY', 'the train split has no images', { input: ds.yamlPath });
  if (!train.some((i) => i.labels.length > 0))
    throw new LoupeError('DATA_NO_LABELS', `the train split has ${train.length} images but no labelled boxes`, { input: ds.yamlPath });
  if ((ds.splits.val ?? []).length === 0) throw new LoupeError('DATA_EMPTY', 'the val split has no images', { input: ds.yamlPath });
  const files: ChannelFile[] = [];
  const doc: Record<string, unknown> = { path: '.' };
  for (const [split, items] of Object.entries(ds.splits)) {
    if (items.length === 0) continue;
    doc[split] = `images/${split}`;
    const seen = new Set<string>();
    for (const item of items) {
      const file = basename(item.imagePath);
      if (seen.has(file))
        throw new LoupeError(
          'DATA_DUPLICATE_FILE',
          `two ${split} images are named ${file}; the channel needs unique file names per split`,
          { input: item.imagePath },
        );
      seen.add(file);
      files.push({ key: `images/${split}/${file}`, path: item.imagePath, bytes: (await stat(item.imagePath)).size });
      if (existsSync(item.labelPath)) {
        files.push({
          key: `labels/${split}/${basename(file, extname(file))}.txt`,
          path: item.labelPath,
          bytes: (await stat(item.labelPath)).size,
        });
      }
    }
  }
  doc.names = Object.fromEntries(ds.names.map((n, i) => [i, n]));
  const yaml = toYaml(doc);
  files.push({ key: 'data.yaml', body: yaml, bytes: Buffer.byteLength(yaml) });
  const manifest = join(dirname(ds.yamlPath), 'manifest.json');
  if (existsSync(manifest)) files.push({ key: 'manifest.json', path: manifest, bytes: (await stat(manifest)).size });
  return files;
}

async function uploadAll(
  s3: S3Client,
  bucket: string,
  prefix: string,
  files: ChannelFile[],
  concurrency: number,
  log: Logger,
  progressStream?: NodeJS.WriteStream,
): Promise<void> {
  const total = files.reduce((n, f) => n + f.bytes, 0);
  const progress = new Progress('upload', total, log, { stream: progressStream });
  let done = 0;
  let next = 0;
  const worker = async () => {
    while (next < files.length) {
      const f = files[next++] as ChannelFile;
      const upload = new Upload({
        client: s3,
        params: { Bucket: bucket, Key: `${prefix}/${f.key}`, Body: f.path ? createReadStream(f.path) : f.body },
      });
      await upload.done();
      done += f.bytes;
      progress.update(done, { files: next });
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, files.length) }, worker));
  progress.finish();
}

function parseS3Uri(uri: string): { bucket: string; key: string } {
  const m = /^s3:\/\/([^/]+)\/(.+)$/.exec(uri);
  if (!m) throw new LoupeError('SAGEMAKER_BAD_ARTIFACT', `not an s3:// URI: ${uri}`, { input: 'ModelArtifacts.S3ModelArtifacts' });
  return { bucket: m[1] as string, key: m[2] as string };
}

/** The CreateTrainingJob request for a run (exported so its shape is visible and testable). */
export function trainingJobRequest(
  opts: TrainOptions,
  config: SageMakerTrainConfig,
  jobName: string,
  channels: { dataset: string; base?: string },
): CreateTrainingJobCommandInput {
  const prefix = config.prefix ?? SAGEMAKER_DEFAULTS.prefix;
  // SageMaker passes every hyperparameter as a string; train.py casts them back (sagemaker_args).
  const hp: Record<string, string> = {
    data_yaml: 'data.yaml',
    model: channels.base ? basename(opts.base) : opts.base,
    epochs: String(opts.epochs),
    imgsz: String(opts.imgsz),
    batch: String(opts.batch),
    patience: String(opts.patience),
    seed: String(opts.seed),
  };
  if (opts.timeMinutes !== undefined) hp.time_minutes = String(opts.timeMinutes);
  if (opts.optimizer !== undefined) hp.optimizer = opts.optimizer;
  if (opts.lr0 !== undefined) hp.lr0 = String(opts.lr0);
  if (opts.warmupEpochs !== undefined) hp.warmup_epochs = String(opts.warmupEpochs);
  if (opts.closeMosaic !== undefined) hp.close_mosaic = String(opts.closeMosaic);
  if (opts.workers !== undefined) hp.workers = String(opts.workers);
  const channel = (name: string, uri: string) => ({
    ChannelName: name,
    DataSource: { S3DataSource: { S3DataType: 'S3Prefix' as const, S3Uri: uri, S3DataDistributionType: 'FullyReplicated' as const } },
  });
  return {
    TrainingJobName: jobName,
    AlgorithmSpecification: {
      TrainingImage: config.image,
      TrainingInputMode: 'File',
      MetricDefinitions: metricDefinitions(),
    },
    RoleArn: config.roleArn,
    HyperParameters: hp,
    InputDataConfig: [channel('dataset', channels.dataset), ...(channels.base ? [channel('base', channels.base)] : [])],
    OutputDataConfig: { S3OutputPath: `s3://${config.bucket}/${prefix}/${jobName}/output` },
    ResourceConfig: {
      InstanceType: (config.instanceType ?? SAGEMAKER_DEFAULTS.instanceType) as NonNullable<
        CreateTrainingJobCommandInput['ResourceConfig']
      >['InstanceType'],
      InstanceCount: config.instanceCount ?? SAGEMAKER_DEFAULTS.instanceCount,
      VolumeSizeInGB: config.volumeSizeGB ?? SAGEMAKER_DEFAULTS.volumeSizeGB,
    },
    StoppingCondition: { MaxRuntimeInSeconds: config.maxRuntimeSeconds ?? SAGEMAKER_DEFAULTS.maxRuntimeSeconds },
  };
}

export async function trainSageMaker(
  options: TrainOptions,
  outDir: string,
  config: SageMakerTrainConfig,
  clients: SageMakerClients,
  hooks: SageMakerHooks = {},
): Promise<TrainResult> {
  const log = hooks.log ?? silentLogger;
  const opts = validateOptions(options);
  for (const [k, v] of [
    ['bucket', config.bucket],
    ['roleArn', config.roleArn],
    ['image', config.image],
  ] as const) {
    if (!v) throw new LoupeError('BAD_OPTION', `the SageMaker backend needs ${k}`, { input: k });
  }
  const out = resolve(outDir);
  const prefix = config.prefix ?? SAGEMAKER_DEFAULTS.prefix;
  const jobName = config.jobName ?? jobNameFor((hooks.now ?? (() => new Date()))());
  const jobPrefix = `${prefix}/${jobName}`;

  const files = (await datasetChannel(opts.data)).map((f) => ({ ...f, key: `dataset/${f.key}` }));
  const warm = extname(opts.base) === '.pt';
  if (warm) files.push({ key: `base/${basename(opts.base)}`, path: opts.base, bytes: (await stat(opts.base)).size });
  log.info({ bucket: config.bucket, prefix: `${jobPrefix}/input`, files: files.length }, 'uploading the training channels');
  await uploadAll(
    clients.s3,
    config.bucket,
    `${jobPrefix}/input`,
    files,
    config.uploadConcurrency ?? SAGEMAKER_DEFAULTS.uploadConcurrency,
    log,
    hooks.progressStream,
  );
  if (hooks.signal?.aborted)
    throw new LoupeError('TRAIN_INTERRUPTED', 'interrupted before the training job was created (inputs stay in S3)', { exitCode: 130 });

  const request = trainingJobRequest(opts, config, jobName, {
    dataset: `s3://${config.bucket}/${jobPrefix}/input/dataset/`,
    ...(warm ? { base: `s3://${config.bucket}/${jobPrefix}/input/base/` } : {}),
  });
  const created = await clients.sagemaker.send(new CreateTrainingJobCommand(request));
  log.info({ job: jobName, arn: created.TrainingJobArn, instance: request.ResourceConfig?.InstanceType }, 'training job created');
  return finishJob(jobName, out, config, clients, hooks, created.TrainingJobArn);
}

/** DescribeTrainingJob, or undefined when SageMaker knows no job of that name. */
export async function describeTrainingJob(
  sagemaker: SageMakerClient,
  jobName: string,
): Promise<DescribeTrainingJobCommandOutput | undefined> {
  try {
    return await sagemaker.send(new DescribeTrainingJobCommand({ TrainingJobName: jobName }));
  } catch (e) {
    // SageMaker answers a missing training job with ValidationException "Requested resource not
    // found." (not the ResourceNotFound its API reference lists; aws/aws-sdk#165); moto's server
    // with "Could not find training job '<arn>'."
    const err = e as { name?: string; message?: string };
    if (
      err.name === 'ResourceNotFound' ||
      (err.name === 'ValidationException' && /not found|does not exist|could not find/i.test(err.message ?? ''))
    )
      return undefined;
    throw e;
  }
}

/**
 * Re-attach to a training job created earlier (a caller that crashed after CreateTrainingJob):
 * wait for it like `trainSageMaker` does and fetch its model.tar.gz. Nothing is uploaded or created.
 */
export async function attachTrainingJob(
  jobName: string,
  outDir: string,
  config: Pick<SageMakerTrainConfig, 'pollSeconds'>,
  clients: SageMakerClients,
  hooks: SageMakerHooks = {},
): Promise<TrainResult> {
  (hooks.log ?? silentLogger).info({ job: jobName }, 're-attached to the training job');
  return finishJob(jobName, resolve(outDir), config, clients, hooks);
}

async function finishJob(
  jobName: string,
  out: string,
  config: Pick<SageMakerTrainConfig, 'pollSeconds'>,
  clients: SageMakerClients,
  hooks: SageMakerHooks,
  createdArn?: string,
): Promise<TrainResult> {
  const log = hooks.log ?? silentLogger;
  const desc = await poll(clients.sagemaker, jobName, config.pollSeconds ?? SAGEMAKER_DEFAULTS.pollSeconds, log, hooks);
  const status = desc.TrainingJobStatus;
  if (status === 'Stopped') throw new LoupeError('TRAIN_INTERRUPTED', `training job ${jobName} was stopped`, { exitCode: 130 });
  if (status === 'Failed') {
    const reason = desc.FailureReason ?? 'no reason given';
    const m = REFUSAL.exec(reason);
    // a train.py refusal keeps its code; any other upper-case prefix is SageMaker's own failure
    const refused = m?.[1];
    if (m && refused && isErrorCode(refused)) throw new LoupeError(refused, `${m[2]} (training job ${jobName})`, { exitCode: 2 });
    throw new LoupeError('SAGEMAKER_FAILED', `training job ${jobName} failed: ${reason}`, { input: jobName });
  }
  const artifacts = desc.ModelArtifacts?.S3ModelArtifacts;
  if (!artifacts)
    throw new LoupeError('SAGEMAKER_BAD_ARTIFACT', `training job ${jobName} completed without ModelArtifacts.S3ModelArtifacts`, {
      input: jobName,
    });

  const { bucket, key } = parseS3Uri(artifacts);
  log.info({ artifacts }, 'fetching model artefacts');
  const obj = await clients.s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  if (!obj.Body) throw new LoupeError('SAGEMAKER_BAD_ARTIFACT', 'empty model.tar.gz', { input: artifacts });
  const result = await unpackModelArtifacts(obj.Body as Readable, out, artifacts);
  return {
    ...result,
    job: { name: jobName, arn: createdArn ?? desc.TrainingJobArn, modelArtifacts: artifacts, billableSeconds: desc.BillableTimeInSeconds },
  };
}

/**
 * A training job's model.tar.gz (train.py's /opt/ml/model) unpacked into `out` and read back:
 * what the loop's SageMaker training step and the model-build pipeline's evaluation both use.
 */
export async function unpackModelArtifacts(body: Readable, out: string, source: string): Promise<TrainResult> {
  await mkdir(out, { recursive: true });
  // tar refuses absolute paths and `..` entries by default (no writing outside `out`).
  await pipeline(body, untar({ cwd: out, strict: true }));
  for (const f of ['best.pt', 'model.onnx', 'metrics.json']) {
    if (!existsSync(join(out, f))) throw new LoupeError('SAGEMAKER_BAD_ARTIFACT', `model.tar.gz holds no ${f}`, { input: source });
  }
  const metricsJson = join(out, 'metrics.json');
  const metrics = JSON.parse(await readFile(metricsJson, 'utf8')) as TrainMetricsFile;
  return {
    backend: 'sagemaker',
    dir: out,
    bestPt: join(out, 'best.pt'),
    onnx: join(out, 'model.onnx'),
    resultsCsv: join(out, 'results.csv'),
    metricsJson,
    metrics,
    epochs: [],
  };
}

/** SageMaker's secondary statuses in the order a job goes through them (for the progress bar). */
const STAGES = [
  'Starting',
  'LaunchingMLInstances',
  'PreparingTrainingStack',
  'Downloading',
  'DownloadingTrainingImage',
  'Training',
  'Uploading',
  'Completed',
];

async function poll(
  sm: SageMakerClient,
  jobName: string,
  pollSeconds: number,
  log: Logger,
  hooks: SageMakerHooks,
): Promise<DescribeTrainingJobCommandOutput> {
  const progress = new Progress(`sagemaker ${jobName}`, STAGES.length, log, { logEveryMs: 0, stream: hooks.progressStream });
  let stopRequested = false;
  let last = '';
  for (;;) {
    if (hooks.signal?.aborted && !stopRequested) {
      stopRequested = true;
      log.warn({ job: jobName }, 'interrupt: stopping the training job');
      await sm.send(new StopTrainingJobCommand({ TrainingJobName: jobName }));
    }
    const d = await sm.send(new DescribeTrainingJobCommand({ TrainingJobName: jobName }));
    const secondary = d.SecondaryStatus ?? '';
    const state = `${d.TrainingJobStatus}/${secondary}`;
    if (state !== last) {
      last = state;
      const stage = STAGES.indexOf(secondary);
      const message = d.SecondaryStatusTransitions?.at(-1)?.StatusMessage;
      progress.update(stage >= 0 ? stage + 1 : 0, { status: d.TrainingJobStatus, secondary, ...(message ? { message } : {}) });
    }
    if (d.TrainingJobStatus === 'Completed' || d.TrainingJobStatus === 'Failed' || d.TrainingJobStatus === 'Stopped') {
      const finalMetrics = Object.fromEntries((d.FinalMetricDataList ?? []).map((m) => [m.MetricName, m.Value]));
      log.info(
        { job: jobName, status: d.TrainingJobStatus, secondary, finalMetrics, billableSeconds: d.BillableTimeInSeconds },
        'training job ended',
      );
      if (d.TrainingJobStatus === 'Completed') progress.finish();
      return d;
    }
    // an abort only ends the wait early; the loop then sees the stop request
    await sleep(pollSeconds * 1000, undefined, { signal: stopRequested ? undefined : hooks.signal }).catch(() => {});
  }
}
