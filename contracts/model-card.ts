import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { LoupeError } from '../lib/errors.js';
import { writeFileAtomic } from '../lib/fsutil.js';

/**
 * The model card: what a model is, what it was trained on, how well it scores and how to make it
 * again. One schema for the shipped model, every `loupe train` run and the registry (which stores
 * the card beside the ONNX and reads `metrics.test` and `dataset.versionId` from it).
 *
 * `metrics.test` comes from loupe's own evaluator on the data set's test split: the number the
 * gate compares. `metrics.val` is the trainer's own validation (ultralytics, best epoch); both are
 * kept, named apart, so the two are never confused.
 *
 * Written only through `writeModelCard` and read through `readModelCard` / `parseModelCard`,
 * which refuse a `schema` version this code does not know, naming the file and the value.
 */
const metricSet = z.object({
  map50: z.number().min(0).max(1),
  map50_95: z.number().min(0).max(1),
  precision: z.number().min(0).max(1).optional(),
  recall: z.number().min(0).max(1).optional(),
});

const testMetricSet = metricSet.extend({ evaluator: z.string(), split: z.string(), images: z.number().int(), instances: z.number().int() });

const fileRef = z.object({ file: z.string(), sha256: z.string().regex(/^[0-9a-f]{64}$/), bytes: z.number().int().nonnegative() });

export const MODEL_CARD_SCHEMA_V1 = 'loupe.model-card/1';

/** Versions this code reads. */
export const MODEL_CARD_SCHEMAS: readonly string[] = [MODEL_CARD_SCHEMA_V1];

export const modelCardSchema = z.object({
  schema: z.literal(MODEL_CARD_SCHEMA_V1),
  name: z.string().min(1),
  version: z.string().min(1),
  created: z.string(),
  task: z.literal('detect'),
  classes: z.array(z.string()).min(1),
  imgsz: z.number().int().positive(),
  /** `onnx` is the fp32 export; `onnxInt8` its int8 quantization (`loupe quantize`), when made. */
  files: z.object({ onnx: fileRef, onnxInt8: fileRef.optional(), pt: fileRef.optional() }),
  trainer: z.object({
    name: z.string(),
    version: z.string(),
    torch: z.string().optional(),
    script: z.string(),
    backend: z.string(),
    device: z.string().optional(),
    base: z.string(),
    epochsRequested: z.number().int().optional(),
    epochsRun: z.number().int().optional(),
    seconds: z.number().optional(),
    secondsPerEpoch: z.number().nullable().optional(),
    hyperparameters: z.record(z.string(), z.unknown()),
  }),
  dataset: z.object({
    source: z.string(),
    versionId: z.string(),
    splitRule: z.string(),
    counts: z.record(z.string(), z.object({ images: z.number().int(), boxes: z.number().int() })),
    testImages: z.array(z.string()),
  }),
  metrics: z.object({
    test: testMetricSet.nullable(),
    val: metricSet.extend({ source: z.string(), images: z.number().int().optional() }).nullable(),
    /** The int8 file's scores on the same split by the same evaluator. */
    int8: testMetricSet.nullable().optional(),
  }),
  /** Which file the fleet runs (fp32 or int8), and the rule that chose it. */
  fleetPrecision: z
    .object({
      deployed: z.enum(['fp32', 'int8']),
      metric: z.string(),
      tolerance: z.number(),
      reason: z.string(),
      /** The quantizer's record from the int8 model (method, calibration set digest, float nodes). */
      quantization: z.record(z.string(), z.unknown()).optional(),
    })
    .optional(),
  /** The `loupe train` command that reproduces the model. */
  command: z.string(),
  /** The trainer's own command line, when the model was trained by running train.py directly. */
  trainerCommand: z.string().optional(),
  notes: z.array(z.string()).optional(),
});

export type ModelCard = z.infer<typeof modelCardSchema>;
export type TestMetrics = NonNullable<ModelCard['metrics']['test']>;
export type ValMetrics = NonNullable<ModelCard['metrics']['val']>;

/** A model card already parsed from JSON, checked (`input` names it in errors). */
export function parseModelCard(raw: unknown, input: string): ModelCard {
  const schema = raw && typeof raw === 'object' && !Array.isArray(raw) ? (raw as { schema?: unknown }).schema : undefined;
  if (schema === undefined)
    throw new LoupeError('CARD_BAD', `model card has no "schema" field (this loupe reads ${MODEL_CARD_SCHEMAS.join(', ')})`, { input });
  if (typeof schema !== 'string' || !MODEL_CARD_SCHEMAS.includes(schema)) {
    throw new LoupeError(
      'CARD_SCHEMA',
      `model card schema ${JSON.stringify(schema)} is not one this loupe reads (${MODEL_CARD_SCHEMAS.join(', ')})`,
      { input },
    );
  }
  const parsed = modelCardSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new LoupeError('CARD_BAD', `model card field ${issue?.path.join('.') || '(root)'}: ${issue?.message}`, { input });
  }
  return parsed.data;
}

export async function readModelCard(path: string): Promise<ModelCard> {
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(path, 'utf8'));
  } catch (e) {
    throw new LoupeError('CARD_BAD', `not a readable JSON model card (${(e as Error).message})`, { input: path });
  }
  return parseModelCard(raw, path);
}

export async function writeModelCard(path: string, card: ModelCard): Promise<void> {
  await writeFileAtomic(path, JSON.stringify(modelCardSchema.parse(card), null, 2) + '\n');
}
