import { z } from 'zod';
import type { ErrorCode } from '../../lib/error-codes.js';
import { parseJsonConfig, readJsonConfig } from '../../lib/json-config.js';
import { GROUND_TRUTH_LAMBDA_ACCOUNTS } from '../labeling/groundtruth.js';
import { rolloutSchema } from '../loop/config.js';
import { DEFAULT_ROLLOUT } from '../publish/greengrass-aws.js';

/**
 * The one configuration file of the CDK app (`loupe aws synth --config FILE`, default
 * `loupe.infra.json`), validated once here; an error names the key and the bad value, e.g.
 *   loupe.infra.json: labelling.workteamArn: expected a SageMaker workteam ARN (got "my-team")
 *
 *   name          prefix of every stack and named resource ("loupe" → stacks loupe-storage, ...)
 *   region        where everything is deployed (Ground Truth's task Lambdas exist in a known list)
 *   account       optional: without it the templates are account-agnostic (synth needs no AWS account)
 *   group/classes the model group (model package group) and the class names
 *   storage       upload prefix, the raw uploads' lifecycle, what happens to data on `destroy`
 *   edge          the fleet's thing group, the component versions to deploy (optional), rollout
 *   labelling     workforce (a private workteam), workers per image, schedule, upload threshold, polling
 *   modelBuild    instance types, epochs and image size, the gate (metric, threshold, tolerance),
 *                 approval (manual: PendingManualApproval; auto: Approved), where the snapshot reads
 *   images        the training image and the loupe cloud image: "asset" (built from this checkout
 *                 by `cdk deploy`) or an existing ECR image URI
 */
const region = z
  .string()
  .regex(/^[a-z]{2}(-[a-z]+)+-\d$/, 'expected an AWS region such as eu-west-1')
  .refine((r) => r in GROUND_TRUTH_LAMBDA_ACCOUNTS, {
    message: `Ground Truth's built-in task Lambdas exist only in ${Object.keys(GROUND_TRUTH_LAMBDA_ACCOUNTS).join(', ')}`,
  });
const name = z
  .string()
  .regex(/^[a-z][a-z0-9-]{1,22}[a-z0-9]$/, 'expected 3-24 lowercase letters, digits and hyphens, starting with a letter');
const ecrImage = z
  .string()
  .regex(
    /^\d{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com(\.cn)?\/[a-z0-9._/-]+(:[\w.-]+|@sha256:[0-9a-f]{64})$/,
    'expected "asset" or an ECR image URI with a tag or digest',
  );
const image = z.union([z.literal('asset'), ecrImage]);
const instanceType = z.string().regex(/^ml\.[a-z0-9]+\.[a-z0-9]+$/, 'expected a SageMaker instance type such as ml.g4dn.xlarge');
/** EventBridge schedule expressions: rate(N unit) or cron(6 fields). */
const schedule = z
  .string()
  .regex(
    /^(rate\(\d+ (minute|minutes|hour|hours|day|days)\)|cron\(\S+ \S+ \S+ \S+ \S+ \S+\))$/,
    'expected rate(1 day) or cron(...) (EventBridge schedule expression)',
  );
const semver = z.string().regex(/^\d+\.\d+\.\d+$/, 'expected a component version such as 1.0.0');

export const infraConfigSchema = z
  .object({
    name: name.default('loupe'),
    region,
    account: z
      .string()
      .regex(/^\d{12}$/, 'expected a 12-digit AWS account id')
      .optional(),
    group: z
      .string()
      .regex(/^[A-Za-z0-9](-*[A-Za-z0-9]){0,62}$/, 'expected a model package group name (letters, digits, hyphens)')
      .default('metal-tags'),
    classes: z.array(z.string().min(1)).min(1).default(['scratch']),
    storage: z
      .object({
        uploadPrefix: z
          .string()
          .regex(/^[a-z0-9][a-z0-9_-]*$/, 'expected one key prefix segment such as incoming')
          .default('incoming'),
        /** Raw uploads move to S3 Standard-IA after this many days and expire after `expireDays`. */
        infrequentAccessDays: z.number().int().min(30).default(30),
        expireDays: z.number().int().min(1).default(365),
        /** retain: buckets, feature group and registry survive `cdk destroy`; destroy: removed with their contents. */
        removalPolicy: z.enum(['retain', 'destroy']).default('retain'),
      })
      .strict()
      .default({ uploadPrefix: 'incoming', infrequentAccessDays: 30, expireDays: 365, removalPolicy: 'retain' })
      .refine((s) => s.expireDays > s.infrequentAccessDays, {
        message: 'expireDays must be later than infrequentAccessDays',
        path: ['expireDays'],
      }),
    edge: z
      .object({
        thingGroupName: z
          .string()
          .regex(/^[a-zA-Z0-9:_-]{1,128}$/, 'expected an IoT thing group name')
          .default('loupe-fleet'),
        /** Component versions for the thing group's first deployment; without them no deployment is made (`loupe publish` does it). */
        components: z.record(z.string().regex(/^loupe\.[A-Za-z]+$/, 'expected a loupe component name'), semver).optional(),
        rollout: rolloutSchema.default({}),
      })
      .strict()
      .default({ thingGroupName: 'loupe-fleet', rollout: {} }),
    labelling: z
      .object({
        workteamArn: z.string().regex(/^arn:aws[\w-]*:sagemaker:[a-z0-9-]+:\d{12}:workteam\/.+$/, 'expected a SageMaker workteam ARN'),
        workersPerImage: z.number().int().min(1).max(9).default(1),
        /** Images per labelling job. */
        cap: z.number().int().min(1).max(10000).default(500),
        schedule: schedule.default('rate(1 day)'),
        /** Start labelling as soon as this many uploads arrived (0: schedule only). */
        minUploads: z.number().int().min(0).default(100),
        pollMinutes: z.number().int().min(1).max(1440).default(15),
        /** Give up on one execution after this long (Ground Truth tasks stay available up to 10 days). */
        timeoutHours: z
          .number()
          .int()
          .min(1)
          .max(24 * 365)
          .default(24 * 11),
        taskTimeLimitSeconds: z.number().int().min(30).max(28800).default(600),
        taskAvailabilitySeconds: z.number().int().min(60).max(864000).default(864000),
      })
      .strict(),
    modelBuild: z
      .object({
        trainingInstanceType: instanceType.default('ml.g4dn.xlarge'),
        processingInstanceType: instanceType.default('ml.m5.xlarge'),
        epochs: z.number().int().min(1).default(30),
        imgsz: z.number().int().min(32).multipleOf(32).default(480),
        batch: z.number().int().min(1).default(16),
        maxRuntimeSeconds: z
          .number()
          .int()
          .min(60)
          .max(432000)
          .default(3 * 3600),
        approval: z.enum(['manual', 'auto']).default('manual'),
        gate: z
          .object({
            metric: z.enum(['map50', 'map50_95', 'precision', 'recall']).default('map50'),
            threshold: z.number().min(0).max(1).default(0.5),
            tolerance: z.number().min(0).max(1).default(0.02),
            split: z.enum(['test', 'val']).default('test'),
          })
          .strict()
          .default({ metric: 'map50', threshold: 0.5, tolerance: 0.02, split: 'test' }),
        /** Also run the pipeline on a schedule (it always runs after a labelling execution approved labels). */
        schedule: schedule.optional(),
      })
      .strict()
      .default({
        trainingInstanceType: 'ml.g4dn.xlarge',
        processingInstanceType: 'ml.m5.xlarge',
        epochs: 30,
        imgsz: 480,
        batch: 16,
        maxRuntimeSeconds: 3 * 3600,
        approval: 'manual',
        gate: { metric: 'map50', threshold: 0.5, tolerance: 0.02, split: 'test' },
      }),
    images: z
      .object({ training: image.default('asset'), cloud: image.default('asset') })
      .strict()
      .default({ training: 'asset', cloud: 'asset' }),
  })
  .strict()
  .superRefine((c, ctx) => {
    const m = /^arn:aws[\w-]*:sagemaker:([a-z0-9-]+):/.exec(c.labelling.workteamArn);
    if (m && m[1] !== c.region)
      ctx.addIssue({
        code: 'custom',
        path: ['labelling', 'workteamArn'],
        message: `the workteam is in ${m[1]}, the app in ${c.region}: Ground Truth needs both in one region`,
      });
  });

export type InfraConfig = z.infer<typeof infraConfigSchema>;
export type InfraConfigInput = z.input<typeof infraConfigSchema>;

export const DEFAULT_INFRA_CONFIG_FILE = 'loupe.infra.json';

export function parseInfraConfig(raw: unknown, source: string): InfraConfig {
  return parseJsonConfig(raw, infraConfigSchema, source, 'INFRA_BAD_CONFIG' satisfies ErrorCode);
}

export function readInfraConfig(path: string): InfraConfig {
  return readJsonConfig(path, infraConfigSchema, {
    missing: 'INFRA_NO_CONFIG' satisfies ErrorCode,
    missingMessage: 'configuration not found (see cloud/infra/README.md; an example: cloud/infra/loupe.infra.example.json)',
    invalid: 'INFRA_BAD_CONFIG' satisfies ErrorCode,
  });
}

/** The rollout policy for Greengrass deployments: loupe's defaults with the configured changes. */
export function rolloutOf(c: InfraConfig) {
  return { ...DEFAULT_ROLLOUT, ...c.edge.rollout };
}
