import { dirname, isAbsolute, join, resolve } from 'node:path';
import { z } from 'zod';
import type { ErrorCode } from '../../lib/error-codes.js';
import { parseJsonConfig, readJsonConfig } from '../../lib/json-config.js';
import { defaultHome } from '../../lib/paths.js';

/**
 * The loop's configuration: one JSON file (`<home>/loop.json` by default), validated once here;
 * an error names the key and the bad value. Relative paths are relative to the file. Every stage
 * runs on the embedded default unless its section picks the AWS counterpart (more in README.md):
 *
 *   stage         key                  embedded default          AWS counterpart
 *   object store  storage.backend      "embedded" (endpoint)     "s3" (region, optional endpoint)
 *   label store   labelStore.backend   "sqlite"                  "featurestore" (SQLite + Feature Store mirror)
 *   labelling     labeling.backend     "simulated" | "ui"        "groundtruth" (labeling.groundTruth)
 *   training      train.backend        "local"                   "sagemaker" (train.sagemaker)
 *   registry      registry.backend     "sqlite"                  "sagemaker" (SQLite + Model Registry mirror)
 *   fleet         fleet.backend        "local" (nucleus)         "aws" (Greengrass thing group)
 *
 * storage     {backend: "embedded", endpoint, region?, bucket, prefix, forcePathStyle, credentials?}
 *               the embedded object store (`loupe edge up` / the demo start it); credentials default to
 *               the local stack's keys. Without `backend`, a section with an endpoint is "embedded".
 *             {backend: "s3", region, endpoint?, bucket, prefix, forcePathStyle?}
 *               Amazon S3 (or an S3 VPC endpoint); keys come from the AWS default credential chain,
 *               never from this file. AWS stages keep their files through the same S3 connection.
 * aws         {region?, roleArn?, bucket?, namePrefix?}  defaults for every AWS stage: the region of
 *               the control-plane clients, the SageMaker execution role, the bucket for job inputs
 *               and outputs (default storage.bucket), and the prefix of AWS job names (default
 *               `loupe-<installation id>`, an id made once per loop home, so two homes in one account
 *               never share a job name). Each AWS section may override region/roleArn/bucket.
 * labelStore  {backend: "featurestore", featureGroupName, createGroup=true, offlineStoreS3Uri?, roleArn?, region?}
 *               labels stay in SQLite (point-in-time reads, atomic with labelling jobs) and every
 *               record is mirrored to the feature group with PutRecord, in order, from a watermark.
 * labeling    {backend: "groundtruth", ..., waitMinutes, groundTruth: {workteamArn, roleArn?, region?, bucket?,
 *               prefix, taskTimeLimitSeconds, taskAvailabilitySeconds, maxConcurrentTaskCount, pollSeconds}}
 *               a bounding-box job and a chained verification job per run; when they are not done
 *               within `waitMinutes` the run waits (status "waiting") and the next `loupe loop run|watch`
 *               re-attaches to the same jobs.
 * train       {backend: "sagemaker", ..., sagemaker: {image, roleArn?, region?, bucket?, prefix,
 *               instanceType, instanceCount, volumeSizeGB, maxRuntimeSeconds, pollSeconds, maxJobs}}
 *               train.py in the training image; the job is named after the run, a resumed run
 *               re-attaches to it; a job that failed or stopped is followed by `<name>-2` ... up to maxJobs.
 * registry    {backend: "sagemaker", region?, bucket?, prefix, inferenceImage?}
 *               the SQLite registry stays primary (champion, artefacts the fleet is built from,
 *               `loupe models`); every version and status is mirrored to a model package group.
 * fleet       {backend: "aws", region?, thingGroupArn, bucket, prefix, things?, mqttUrl?, pollSeconds, rollout?, ...}
 *               Greengrass v2; without telemetry, confirm asks Greengrass what devices installed.
 * int8        {enabled=true, tolerance=0.015, metric="map50", calibrationImages=64}  quantize each
 *               challenger; the fleet runs int8 when it scores within `tolerance` of fp32 (local step).
 */
const num01 = z.number().min(0).max(1);
const ROLE_ARN = /^arn:aws[\w-]*:iam::\d{12}:role\/.+$/;
const roleArn = z.string().regex(ROLE_ARN, 'expected an IAM role ARN (arn:aws:iam::<account>:role/<name>)');
const region = z.string().regex(/^[a-z]{2}(-[a-z]+)+-\d$/, 'expected an AWS region such as eu-west-1');
const bucketName = z
  .string()
  .regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, 'expected an S3 bucket name (3-63 lowercase letters, digits, dots, hyphens)');
const keyPrefix = z
  .string()
  .regex(/^(?!\/)[A-Za-z0-9!_.*'()/-]*$/, 'expected an S3 key prefix without a leading slash')
  .transform((p) => (p === '' || p.endsWith('/') ? p : `${p}/`));
const s3Uri = z.string().regex(/^s3:\/\/[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](\/.*)?$/, 'expected an s3://bucket/prefix URI');
/** SageMaker's rule for job names (training, labelling, ...): the prefix leaves room for `-r<run>-train-<n>`. */
const awsNamePrefix = z
  .string()
  .regex(/^[a-zA-Z0-9](-*[a-zA-Z0-9])*$/, 'letters, digits and single hyphens')
  .max(36);

/** Changes to the Greengrass rollout and abort policy (publish/greengrass-aws.ts DEFAULT_ROLLOUT); also the CDK app's `edge.rollout`. */
export const rolloutSchema = z
  .object({
    baseRatePerMinute: z.number().int().min(1).max(1000),
    incrementFactor: z.number().min(1.1).max(5),
    succeededThings: z.number().int().min(1),
    maximumPerMinute: z.number().int().min(1).max(1000),
    abortThresholdPercentage: z.number().min(0).max(100),
    abortMinExecuted: z.number().int().min(1),
    componentUpdateTimeoutSeconds: z.number().int().min(1),
    inProgressTimeoutMinutes: z.number().int().min(1),
  })
  .partial()
  .strict();

const storageBase = {
  region: region.default('us-east-1'),
  bucket: bucketName.default('loupe'),
  prefix: z.string().default('incoming/'),
};
const storageSchema = z.preprocess(
  // A section without `backend` (what earlier loop.json files hold): an endpoint means the embedded store.
  (v) =>
    v === undefined
      ? { backend: 's3' }
      : v && typeof v === 'object' && !Array.isArray(v) && !('backend' in v)
        ? { ...v, backend: 'endpoint' in v ? 'embedded' : 's3' }
        : v,
  z.discriminatedUnion('backend', [
    z
      .object({
        backend: z.literal('embedded'),
        endpoint: z.string().url(),
        ...storageBase,
        forcePathStyle: z.boolean().default(true),
        /** the embedded store's key file (`<store dir>/credentials.json`): where the keys come from */
        keysFile: z.string().min(1).optional(),
        // Not strict: SDK-made credential objects carry extra fields ($source), dropped here.
        credentials: z.object({ accessKeyId: z.string(), secretAccessKey: z.string(), sessionToken: z.string().optional() }).optional(),
      })
      .strict(),
    z
      .object({
        backend: z.literal('s3'),
        endpoint: z.string().url().optional(),
        ...storageBase,
        forcePathStyle: z.boolean().default(false),
      })
      .strict(),
  ]),
);

export const loopConfigSchema = z
  .object({
    /** Model group in the registry (and the model's name). */
    group: z
      .string()
      .regex(/^[A-Za-z0-9](-*[A-Za-z0-9]){0,62}$/)
      .default('metal-tags'),
    classes: z.array(z.string().min(1)).min(1).default(['scratch']),
    storage: storageSchema,
    aws: z
      .object({
        region: region.optional(),
        roleArn: roleArn.optional(),
        bucket: bucketName.optional(),
        namePrefix: awsNamePrefix.optional(),
      })
      .strict()
      .default({}),
    history: z
      .object({
        /** A feature-store CSV imported once as the label history (the reference's labels.csv). */
        labelsCsv: z.string().optional(),
        /** Folder its source_refs map onto (last two path parts). */
        imagesDir: z.string().optional(),
        /**
         * Import the history as it stood at this time (ISO 8601 or epoch seconds): later records
         * are left out of the label store. The simulated workforce still takes the whole file as
         * its ground truth, so images labelled after this time can come back as device uploads.
         */
        until: z
          .union([z.number().nonnegative(), z.string().datetime({ offset: true })])
          .transform((v) => (typeof v === 'number' ? v : Date.parse(v) / 1000))
          .optional(),
        /**
         * Images to keep out of the label history (a held-out benchmark set no model of this loop
         * may train on): image ids such as `bad/x.jpg` (a source_ref's last two path parts), or
         * the path of a file naming them (a model card: its dataset.testImages; or one id a line).
         */
        exclude: z.union([z.array(z.string().min(1)), z.string().min(1)]).optional(),
      })
      .strict()
      .default({}),
    /**
     * The model the registry starts with when the group has none (its first champion): a folder
     * with model.onnx, model.pt (for warm starts) and card.json. Default: the shipped models/metal-tags.
     */
    seedModel: z.string().min(1).optional(),
    labelStore: z
      .discriminatedUnion('backend', [
        z.object({ backend: z.literal('sqlite') }).strict(),
        z
          .object({
            backend: z.literal('featurestore'),
            featureGroupName: z
              .string()
              .regex(/^[a-zA-Z0-9]([_-]*[a-zA-Z0-9]){0,63}$/, 'letters, digits, hyphens and underscores, at most 64'),
            /** Create the feature group when it does not exist (needs a role and an offline-store URI). */
            createGroup: z.boolean().default(true),
            offlineStoreS3Uri: s3Uri.optional(),
            roleArn: roleArn.optional(),
            region: region.optional(),
          })
          .strict(),
      ])
      .default({ backend: 'sqlite' }),
    labeling: z
      .object({
        backend: z.enum(['simulated', 'ui', 'groundtruth']).default('simulated'),
        workersPerImage: z.number().int().min(1).max(9).default(3),
        cap: z.number().int().min(1).default(100),
        noise: num01.default(0.03),
        missRate: num01.default(0.05),
        falsePositiveRate: num01.default(0.05),
        seed: z.number().int().default(1),
        /** ui and groundtruth: how long the label/verify steps wait for people before the run halts (ui) or waits (groundtruth). */
        waitMinutes: z.number().min(0).default(0),
        groundTruth: z
          .object({
            workteamArn: z.string().regex(/^arn:aws[\w-]*:sagemaker:[a-z0-9-]+:\d{12}:workteam\/.+$/, 'expected a SageMaker workteam ARN'),
            roleArn: roleArn.optional(),
            region: region.optional(),
            bucket: bucketName.optional(),
            prefix: keyPrefix.default('loupe/labeling/'),
            taskTimeLimitSeconds: z.number().int().min(30).max(28800).default(600),
            taskAvailabilitySeconds: z.number().int().min(60).max(864000).default(864000),
            maxConcurrentTaskCount: z.number().int().min(1).max(5000).default(1000),
            /** How often the steps ask DescribeLabelingJob while they wait. */
            pollSeconds: z.number().positive().default(60),
          })
          .strict()
          .optional(),
      })
      .strict()
      .default({
        backend: 'simulated',
        workersPerImage: 3,
        cap: 100,
        noise: 0.03,
        missRate: 0.05,
        falsePositiveRate: 0.05,
        seed: 1,
        waitMinutes: 0,
      }),
    trigger: z
      .object({
        /** `loupe loop watch` starts a run when at least this many approved labels are not in the champion's data set. */
        minNewLabels: z.number().int().min(1).default(20),
        /** and/or every this many minutes. */
        everyMinutes: z.number().positive().optional(),
        /** Go on even when the snapshot holds nothing the champion was not trained on. */
        trainWithoutNewLabels: z.boolean().default(false),
      })
      .strict()
      .default({ minNewLabels: 20, trainWithoutNewLabels: false }),
    train: z
      .object({
        backend: z.enum(['local', 'sagemaker']).default('local'),
        epochs: z.number().int().min(1).default(3),
        imgsz: z.number().int().min(32).multipleOf(32).default(480),
        batch: z.number().int().min(1).default(16),
        patience: z.number().int().min(1).default(50),
        seed: z.number().int().min(0).default(0),
        timeMinutes: z.number().positive().optional(),
        workers: z.number().int().min(0).default(2),
        /** local only (SageMaker trains on the instance's GPU). */
        device: z.string().default('cpu'),
        sagemaker: z
          .object({
            /** ECR URI of the image built from cloud/training/Dockerfile. */
            image: z
              .string()
              .regex(
                /^\d{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com(\.cn)?\/[a-z0-9._/-]+(:[\w.-]+|@sha256:[0-9a-f]{64})?$/,
                'expected an ECR image URI (<account>.dkr.ecr.<region>.amazonaws.com/<repo>:<tag>)',
              ),
            roleArn: roleArn.optional(),
            region: region.optional(),
            bucket: bucketName.optional(),
            prefix: keyPrefix.default('loupe/training/'),
            instanceType: z
              .string()
              .regex(/^ml\.[a-z0-9]+\.[a-z0-9]+$/, 'expected a SageMaker instance type such as ml.g4dn.xlarge')
              .default('ml.g4dn.xlarge'),
            instanceCount: z.number().int().min(1).default(1),
            volumeSizeGB: z.number().int().min(1).default(30),
            maxRuntimeSeconds: z.number().int().min(60).default(3600),
            pollSeconds: z.number().positive().default(30),
            /** A run that resumes after its job failed or stopped starts `<name>-2`, ... at most this many jobs. */
            maxJobs: z.number().int().min(1).max(9).default(3),
          })
          .strict()
          .optional(),
      })
      .strict()
      .default({ backend: 'local', epochs: 3, imgsz: 480, batch: 16, patience: 50, seed: 0, workers: 2, device: 'cpu' }),
    gate: z
      .object({
        metric: z.enum(['map50', 'map50_95', 'precision', 'recall']).default('map50'),
        threshold: num01.default(0.5),
        tolerance: num01.default(0.02),
        split: z.enum(['test', 'val', 'train']).default('test'),
      })
      .strict()
      .default({ metric: 'map50', threshold: 0.5, tolerance: 0.02, split: 'test' }),
    /**
     * int8 for the fleet: every challenger is quantized after training (`loupe quantize`, calibrated
     * on the snapshot's train split), both files are scored on the gate's split, and the fleet runs
     * int8 when its `metric` is within `tolerance` of fp32's (cloud/gate/precision.ts).
     */
    int8: z
      .object({
        enabled: z.boolean().default(true),
        tolerance: num01.default(0.015),
        metric: z.enum(['map50', 'map50_95', 'precision', 'recall']).default('map50'),
        calibrationImages: z.number().int().min(1).max(1000).default(64),
      })
      .strict()
      .default({ enabled: true, tolerance: 0.015, metric: 'map50', calibrationImages: 64 }),
    policy: z
      .object({ autoApprove: z.boolean().default(true), requireGate: z.boolean().default(true) })
      .strict()
      .default({ autoApprove: true, requireGate: true }),
    registry: z
      .discriminatedUnion('backend', [
        z.object({ backend: z.literal('sqlite') }).strict(),
        z
          .object({
            backend: z.literal('sagemaker'),
            region: region.optional(),
            bucket: bucketName.optional(),
            prefix: keyPrefix.default('loupe/models/'),
            /** Inference container for the packages' InferenceSpecification (optional: the edge runs the ONNX). */
            inferenceImage: z.string().optional(),
          })
          .strict(),
      ])
      .default({ backend: 'sqlite' }),
    fleet: z
      .discriminatedUnion('backend', [
        z
          .object({
            backend: z.literal('local'),
            nucleusRoot: z.string(),
            thingName: z.string().min(1),
            mqttUrl: z.string().regex(/^mqtts?:\/\//),
            baseRecipe: z.string().optional(),
            deployTimeoutSeconds: z.number().positive().default(300),
            confirmTimeoutSeconds: z.number().positive().default(180),
            minResults: z.number().int().min(0).default(1),
          })
          .strict(),
        z
          .object({
            backend: z.literal('aws'),
            region: region.optional(),
            thingGroupArn: z
              .string()
              .regex(
                /^arn:aws[\w-]*:iot:[a-z0-9-]+:\d{12}:thinggroup\/.+$/,
                'expected a thing group ARN (arn:aws:iot:<region>:<account>:thinggroup/<name>)',
              ),
            bucket: bucketName,
            prefix: z.string().default('loupe/components'),
            things: z.array(z.string()).default([]),
            /** Without telemetry (no mqttUrl/things), how often confirm asks Greengrass what the devices installed. */
            pollSeconds: z.number().positive().default(15),
            /** Rollout and abort policy of the thing group's deployments (publish/greengrass-aws.ts DEFAULT_ROLLOUT for what is not set). */
            rollout: rolloutSchema.optional(),
            mqttUrl: z
              .string()
              .regex(/^mqtts?:\/\//)
              .optional(),
            baseRecipe: z.string().optional(),
            deployTimeoutSeconds: z.number().positive().default(1800),
            confirmTimeoutSeconds: z.number().positive().default(1800),
            minResults: z.number().int().min(0).default(1),
          })
          .strict(),
      ])
      .optional(),
  })
  .strict()
  .superRefine((c, ctx) => {
    // Cross-section rules, each reported at the key to fix.
    const need = (path: (string | number)[], message: string) => ctx.addIssue({ code: 'custom', path, message });
    const awsStages: string[] = [];
    if (c.labeling?.backend === 'groundtruth') {
      awsStages.push('labeling.backend is "groundtruth"');
      const g = c.labeling.groundTruth;
      if (!g) need(['labeling', 'groundTruth'], 'required when labeling.backend is "groundtruth" (at least {"workteamArn": ...})');
      else {
        if (!g.region && !c.aws?.region) need(['labeling', 'groundTruth', 'region'], 'Ground Truth needs a region (here or aws.region)');
        if (!g.roleArn && !c.aws?.roleArn)
          need(['labeling', 'groundTruth', 'roleArn'], 'Ground Truth needs an execution role (here or aws.roleArn)');
      }
    }
    if (c.train?.backend === 'sagemaker') {
      awsStages.push('train.backend is "sagemaker"');
      const t = c.train.sagemaker;
      if (!t) need(['train', 'sagemaker'], 'required when train.backend is "sagemaker" (at least {"image": ...})');
      else {
        if (!t.region && !c.aws?.region) need(['train', 'sagemaker', 'region'], 'SageMaker training needs a region (here or aws.region)');
        if (!t.roleArn && !c.aws?.roleArn)
          need(['train', 'sagemaker', 'roleArn'], 'SageMaker training needs an execution role (here or aws.roleArn)');
      }
    }
    if (c.registry?.backend === 'sagemaker') {
      awsStages.push('registry.backend is "sagemaker"');
      if (!c.registry.region && !c.aws?.region)
        need(['registry', 'region'], 'the SageMaker Model Registry needs a region (here or aws.region)');
    }
    if (c.labelStore?.backend === 'featurestore') {
      const l = c.labelStore;
      if (!l.region && !c.aws?.region) need(['labelStore', 'region'], 'Feature Store needs a region (here or aws.region)');
      if (l.createGroup && !l.roleArn && !c.aws?.roleArn)
        need(['labelStore', 'roleArn'], 'creating the feature group needs a role (here or aws.roleArn), or set createGroup to false');
    }
    if (c.fleet?.backend === 'aws') {
      awsStages.push('fleet.backend is "aws"');
      if (!c.fleet.region && !c.aws?.region) need(['fleet', 'region'], 'the Greengrass fleet needs a region (here or aws.region)');
    }
    if (awsStages.length && c.storage?.backend !== 's3') {
      need(
        ['storage', 'backend'],
        `must be "s3", not "${c.storage?.backend}", when ${awsStages[0]}: AWS services exchange files with loupe through S3 and cannot reach the embedded object store`,
      );
    }
  });

export type LoopConfig = z.infer<typeof loopConfigSchema>;
export type LoopConfigInput = z.input<typeof loopConfigSchema>;

function resolvePaths(c: LoopConfig, base: string): LoopConfig {
  const abs = (p: string | undefined) => (p === undefined ? p : isAbsolute(p) ? p : resolve(base, p));
  const out = structuredClone(c);
  out.history.labelsCsv = abs(out.history.labelsCsv);
  out.history.imagesDir = abs(out.history.imagesDir);
  if (typeof out.history.exclude === 'string') out.history.exclude = abs(out.history.exclude);
  out.seedModel = abs(out.seedModel);
  if (out.fleet) {
    out.fleet.baseRecipe = abs(out.fleet.baseRecipe);
    if (out.fleet.backend === 'local') out.fleet.nucleusRoot = abs(out.fleet.nucleusRoot)!;
  }
  return out;
}

export function parseLoopConfig(raw: unknown, source: string, base = process.cwd()): LoopConfig {
  return resolvePaths(parseJsonConfig(raw, loopConfigSchema, source, 'LOOP_BAD_CONFIG' satisfies ErrorCode), base);
}

export function readLoopConfig(path: string): LoopConfig {
  const parsed = readJsonConfig(path, loopConfigSchema, {
    missing: 'LOOP_NO_CONFIG' satisfies ErrorCode,
    missingMessage: 'loop configuration not found (the demo writes one; or write it by hand, see cloud/loop/config.ts)',
    invalid: 'LOOP_BAD_CONFIG' satisfies ErrorCode,
  });
  return resolvePaths(parsed, dirname(resolve(path)));
}

/** Where one loop installation keeps its state (--home, LOUPE_HOME, or the project's .loupe). */
export interface LoopHome {
  dir: string;
  config: string;
  loopDb: string;
  labelsDb: string;
  registryDir: string;
  fleetDb: string;
  componentRepo: string;
  snapshotsDir: string;
  runsDir: string;
  ingestState: string;
}

export function loopHome(dir?: string): LoopHome {
  const d = dir ? resolve(dir) : defaultHome();
  return {
    dir: d,
    config: join(d, 'loop.json'),
    loopDb: join(d, 'loop.db'),
    labelsDb: join(d, 'labels.db'),
    registryDir: join(d, 'registry'),
    fleetDb: join(d, 'fleet.db'),
    componentRepo: join(d, 'components'),
    snapshotsDir: join(d, 'snapshots'),
    runsDir: join(d, 'runs'),
    ingestState: join(d, 'ingest-state.json'),
  };
}
