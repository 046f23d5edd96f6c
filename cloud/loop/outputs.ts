import { z } from 'zod';

/**
 * What each loop step returns, as zod schemas. The runner checks a step's output against its
 * schema before committing it (a step that returns something else fails there, naming the field)
 * and checks every committed output again when a run resumes, before any step runs: a field
 * renamed since the run was written fails the resume with the run, the step and the field, not a
 * later step with `undefined`.
 *
 * Objects are strict: a field a schema does not name is refused (LOOP_OUTPUT_INVALID naming it),
 * when a step returns it and when a stored output holds it. That is what catches a renamed
 * *optional* field: the old name is unknown (strict), where a missing optional field alone would
 * read as undefined. So every field a step returns is named here, required unless some backend
 * or an earlier release leaves it out. Outputs of earlier releases that hold fields named
 * differently are migrated explicitly (store.ts, loop store migration 3). Only bags that record
 * another system's state as it came (Ground Truth's job, the SageMaker job, a deployment's
 * detail, the snapshot's counts) stay loose.
 */
const count = z.number().int().nonnegative();
const num = z.number();
const featureStore = z.strictObject({ put: count, watermark: num });
/** The Ground Truth job's state as the AWS steps record it (aws/groundtruth-steps.ts). */
const groundTruth = z.looseObject({}).optional();
const metrics = z.strictObject({ map50: num, map50_95: num, precision: num, recall: num });

export const ingestOutput = z.strictObject({
  listed: count,
  recorded: count,
  alreadyKnown: count,
  incomplete: count,
  invalid: count,
  watermark: z.string().nullable(),
  featureStore: featureStore.optional(),
});

export const labelOutput = z.strictObject({
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

export const verifyOutput = z.strictObject({
  job: z.string(),
  approved: count,
  rejected: count,
  unverified: count.optional(),
  /** The moment the snapshot is taken as of (epoch seconds); absent only while waiting or halted for people. */
  verifiedAt: num.optional(),
  groundTruth,
  featureStore: featureStore.optional(),
});

export const snapshotOutput = z.strictObject({
  id: z.string(),
  dir: z.string(),
  dataYaml: z.string(),
  datasetVersion: z.string(),
  asOf: num,
  counts: z.looseObject({ images: count, train: count, val: count, test: count }),
  champion: z.string(),
  championDataset: z.string().nullable(),
});

export const trainOutput = z.strictObject({
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

export const quantizeOutput = z.strictObject({
  enabled: z.boolean(),
  onnx: z.string().optional(),
  sha256: z.string().optional(),
  bytes: count.optional(),
  calibrationImages: count.optional(),
  seconds: num.optional(),
  reused: z.boolean().optional(),
});

export const evaluateOutput = z.strictObject({
  /** evaluation.json: the full scores and curves the gate reads. */
  file: z.string(),
  card: z.string(),
  challenger: metrics.extend({ images: count, instances: count }),
  challengerInt8: metrics.nullable(),
  champion: metrics.extend({ ref: z.string(), fleetPrecision: z.enum(['fp32', 'int8']).optional() }),
});

export const gateSummarySchema = z.strictObject({
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

export const gateOutput = z.strictObject({
  passed: z.boolean(),
  reasons: z.array(z.string()),
  fleetPrecision: z.enum(['fp32', 'int8']),
  fleetPrecisionReason: z.string(),
  json: z.string(),
  html: z.string(),
  summary: gateSummarySchema,
});

export const registerOutput = z.strictObject({
  ref: z.string(),
  status: z.enum(['pending', 'approved', 'rejected']),
  reason: z.string().nullable().optional(),
  fleetPrecision: z.enum(['fp32', 'int8']),
  /** The file the fleet runs (what devices report in their results). */
  onnxSha256: z.string(),
  fp32Sha256: z.string(),
  int8Sha256: z.string().optional(),
  sagemaker: z
    .strictObject({ ref: z.string().nullable().optional(), arn: z.string().nullable().optional(), status: z.string().optional() })
    .optional(),
});

export const publishOutput = z.strictObject({
  component: z.string(),
  version: z.string(),
  created: z.boolean(),
  arn: z.string().nullable().optional(),
});

export const deployOutput = z.strictObject({
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

export const confirmOutput = z.strictObject({
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
