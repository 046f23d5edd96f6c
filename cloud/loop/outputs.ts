import { z } from 'zod';

/**
 * What each loop step returns, as zod schemas. The runner checks a step's output against its
 * schema before committing it (a step that returns something else fails there, naming the field)
 * and checks every committed output again when a run resumes, before any step runs: a field
 * renamed since the run was written fails the resume with the run, the step and the field, not a
 * later step with `undefined`.
 *
 * Objects are loose (fields a schema does not name are kept, not dropped), so outputs written by
 * earlier releases with extra fields still read; every field a later step or a report relies on
 * is named here and required unless some backend or an earlier release leaves it out.
 */
const count = z.number().int().nonnegative();
const num = z.number();
const featureStore = z.looseObject({ put: count, watermark: num });
/** The Ground Truth job's state as the AWS steps record it (aws/groundtruth-steps.ts). */
const groundTruth = z.looseObject({}).optional();
const metrics = z.object({ map50: num, map50_95: num, precision: num, recall: num });

export const ingestOutput = z.looseObject({
  listed: count,
  recorded: count,
  alreadyKnown: count,
  incomplete: count,
  invalid: count,
  watermark: z.string().nullable(),
  featureStore: featureStore.optional(),
});

export const labelOutput = z.looseObject({
  job: z.string(),
  items: count,
  submitted: count.optional(),
  annotations: count.optional(),
  consolidated: count.optional(),
  recorded: count.optional(),
  released: count.optional(),
  groundTruth,
  featureStore: featureStore.optional(),
});

export const verifyOutput = z.looseObject({
  job: z.string(),
  approved: count,
  rejected: count,
  unverified: count.optional(),
  /** The moment the snapshot is taken as of (epoch seconds); absent only while waiting or halted for people. */
  verifiedAt: num.optional(),
  groundTruth,
  featureStore: featureStore.optional(),
});

export const snapshotOutput = z.looseObject({
  id: z.string(),
  dir: z.string(),
  dataYaml: z.string(),
  datasetVersion: z.string(),
  asOf: num,
  counts: z.looseObject({ images: count, train: count, val: count, test: count }),
  champion: z.string(),
  championDataset: z.string().nullable(),
});

export const trainOutput = z.looseObject({
  dir: z.string(),
  backend: z.enum(['local', 'sagemaker']),
  onnx: z.string(),
  pt: z.string(),
  /** The champion the challenger was warm-started from. */
  base: z.string(),
  epochs: count,
  seconds: num,
  val: z.object({ map50: num.nullable(), map50_95: num.nullable(), precision: num.nullable(), recall: num.nullable() }),
  sagemaker: z.looseObject({ attached: z.boolean() }).optional(),
});

export const quantizeOutput = z.looseObject({
  enabled: z.boolean(),
  onnx: z.string().optional(),
  sha256: z.string().optional(),
  bytes: count.optional(),
  calibrationImages: count.optional(),
  seconds: num.optional(),
  reused: z.boolean().optional(),
});

export const evaluateOutput = z.looseObject({
  /** evaluation.json: the full scores and curves the gate reads. */
  file: z.string(),
  card: z.string(),
  challenger: metrics.extend({ images: count, instances: count }),
  challengerInt8: metrics.nullable(),
  champion: metrics.extend({ ref: z.string(), fleetPrecision: z.enum(['fp32', 'int8']).optional() }),
});

export const gateSummarySchema = z.object({
  passed: z.boolean(),
  metric: z.string(),
  challenger: num,
  champion: num.nullable(),
  championRef: z.string().nullable(),
  threshold: num,
  tolerance: num,
  reasons: z.array(z.string()),
  fleetPrecision: z.enum(['fp32', 'int8']).optional(),
  reportPath: z.string().optional(),
});

export const gateOutput = z.looseObject({
  passed: z.boolean(),
  reasons: z.array(z.string()),
  fleetPrecision: z.enum(['fp32', 'int8']),
  fleetPrecisionReason: z.string(),
  json: z.string(),
  html: z.string(),
  summary: gateSummarySchema,
});

export const registerOutput = z.looseObject({
  ref: z.string(),
  status: z.enum(['pending', 'approved', 'rejected']),
  reason: z.string().nullable().optional(),
  fleetPrecision: z.enum(['fp32', 'int8']),
  /** The file the fleet runs (what devices report in their results). */
  onnxSha256: z.string(),
  fp32Sha256: z.string(),
  int8Sha256: z.string().optional(),
  sagemaker: z
    .looseObject({ ref: z.string().nullable().optional(), arn: z.string().nullable().optional(), status: z.string().optional() })
    .optional(),
});

export const publishOutput = z.looseObject({
  component: z.string(),
  version: z.string(),
  created: z.boolean(),
  arn: z.string().nullable().optional(),
});

export const deployOutput = z.looseObject({
  name: z.string(),
  deploymentId: z.string().nullable(),
  version: z.string(),
  previousVersion: z.string().nullable(),
  state: z.enum(['in-progress', 'succeeded', 'failed']),
  detail: z.looseObject({}),
});

/** What a device runs: from the control plane (no telemetry) or from its results on MQTT. */
const controlPlaneDevice = z.object({ device: z.string(), modelVersion: z.string().nullable(), state: z.string().nullable() });
const telemetryDevice = z.object({ thing: z.string(), model: z.unknown(), results: count });

export const confirmOutput = z.looseObject({
  devices: z.array(z.union([controlPlaneDevice, telemetryDevice])),
  seconds: num.optional(),
  via: z.enum(['telemetry', 'control plane']),
});

/** Each step's output schema, by step name, in run order. */
export const STEP_OUTPUTS = {
  ingest: ingestOutput,
  label: labelOutput,
  verify: verifyOutput,
  snapshot: snapshotOutput,
  train: trainOutput,
  quantize: quantizeOutput,
  evaluate: evaluateOutput,
  gate: gateOutput,
  register: registerOutput,
  publish: publishOutput,
  deploy: deployOutput,
  confirm: confirmOutput,
} as const;

export type StepName = keyof typeof STEP_OUTPUTS;
export const STEP_NAMES = Object.keys(STEP_OUTPUTS) as StepName[];
export type StepOutputs = { [K in StepName]: z.infer<(typeof STEP_OUTPUTS)[K]> };
