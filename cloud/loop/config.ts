import { existsSync, readFileSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { z } from 'zod';
import { LoupeError } from '../../components/common/errors.js';

/**
 * The loop's configuration: one JSON file (`<home>/loop.json` by default), validated once here;
 * an error names the key and the bad value. Relative paths are relative to the file. The
 * defaults are the embedded stack's (local S3 store, simulated labelling, local trainer, local
 * nucleus); AWS counterparts are chosen per section.
 */
const num01 = z.number().min(0).max(1);

export const loopConfigSchema = z
  .object({
    /** Model group in the registry (and the model's name). */
    group: z.string().regex(/^[A-Za-z0-9](-*[A-Za-z0-9]){0,62}$/).default('metal-tags'),
    classes: z.array(z.string().min(1)).min(1).default(['scratch']),
    storage: z
      .object({
        endpoint: z.string().url().optional(),
        region: z.string().default('us-east-1'),
        bucket: z.string().min(3).default('loupe'),
        prefix: z.string().default('incoming/'),
        forcePathStyle: z.boolean().default(true),
        credentials: z.object({ accessKeyId: z.string(), secretAccessKey: z.string() }).optional(),
      })
      .strict()
      .default({ region: 'us-east-1', bucket: 'loupe', prefix: 'incoming/', forcePathStyle: true }),
    history: z
      .object({
        /** A feature-store CSV imported once as the label history (the reference's labels.csv). */
        labelsCsv: z.string().optional(),
        /** Folder its source_refs map onto (last two path parts). */
        imagesDir: z.string().optional(),
      })
      .strict()
      .default({}),
    labeling: z
      .object({
        backend: z.enum(['simulated', 'ui']).default('simulated'),
        workersPerImage: z.number().int().min(1).max(9).default(3),
        cap: z.number().int().min(1).default(100),
        noise: num01.default(0.03),
        missRate: num01.default(0.05),
        falsePositiveRate: num01.default(0.05),
        seed: z.number().int().default(1),
        /** ui backend: how long the label/verify steps wait for people before the run halts. */
        waitMinutes: z.number().min(0).default(0),
      })
      .strict()
      .default({ backend: 'simulated', workersPerImage: 3, cap: 100, noise: 0.03, missRate: 0.05, falsePositiveRate: 0.05, seed: 1, waitMinutes: 0 }),
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
        epochs: z.number().int().min(1).default(3),
        imgsz: z.number().int().min(32).multipleOf(32).default(480),
        batch: z.number().int().min(1).default(16),
        patience: z.number().int().min(1).default(50),
        seed: z.number().int().min(0).default(0),
        timeMinutes: z.number().positive().optional(),
        workers: z.number().int().min(0).default(2),
        device: z.string().default('cpu'),
      })
      .strict()
      .default({ epochs: 3, imgsz: 480, batch: 16, patience: 50, seed: 0, workers: 2, device: 'cpu' }),
    gate: z
      .object({
        metric: z.enum(['map50', 'map50_95', 'precision', 'recall']).default('map50'),
        threshold: num01.default(0.5),
        tolerance: num01.default(0.02),
        split: z.enum(['test', 'val', 'train']).default('test'),
      })
      .strict()
      .default({ metric: 'map50', threshold: 0.5, tolerance: 0.02, split: 'test' }),
    policy: z
      .object({ autoApprove: z.boolean().default(true), requireGate: z.boolean().default(true) })
      .strict()
      .default({ autoApprove: true, requireGate: true }),
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
            region: z.string(),
            thingGroupArn: z.string(),
            bucket: z.string(),
            things: z.array(z.string()).default([]),
            mqttUrl: z.string().regex(/^mqtts?:\/\//).optional(),
            baseRecipe: z.string().optional(),
            deployTimeoutSeconds: z.number().positive().default(1800),
            confirmTimeoutSeconds: z.number().positive().default(1800),
            minResults: z.number().int().min(0).default(1),
          })
          .strict(),
      ])
      .optional(),
  })
  .strict();

export type LoopConfig = z.infer<typeof loopConfigSchema>;
export type LoopConfigInput = z.input<typeof loopConfigSchema>;

function resolvePaths(c: LoopConfig, base: string): LoopConfig {
  const abs = (p: string | undefined) => (p === undefined ? p : isAbsolute(p) ? p : resolve(base, p));
  const out = structuredClone(c);
  out.history.labelsCsv = abs(out.history.labelsCsv);
  out.history.imagesDir = abs(out.history.imagesDir);
  if (out.fleet) {
    out.fleet.baseRecipe = abs(out.fleet.baseRecipe);
    if (out.fleet.backend === 'local') out.fleet.nucleusRoot = abs(out.fleet.nucleusRoot)!;
  }
  return out;
}

export function parseLoopConfig(raw: unknown, source: string, base = process.cwd()): LoopConfig {
  const r = loopConfigSchema.safeParse(raw);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    const key = issue.path.join('.') || '(root)';
    let value: unknown = raw;
    for (const p of issue.path) value = value && typeof value === 'object' ? (value as Record<string | number, unknown>)[p as string] : undefined;
    throw new LoupeError('LOOP_BAD_CONFIG', `${key}: ${issue.message}${value !== undefined && typeof value !== 'object' ? ` (got ${JSON.stringify(value)})` : ''}`, { input: source });
  }
  return resolvePaths(r.data, base);
}

export function readLoopConfig(path: string): LoopConfig {
  if (!existsSync(path)) throw new LoupeError('LOOP_NO_CONFIG', 'loop configuration not found (the demo writes one; or write it by hand, see cloud/loop/config.ts)', { input: path });
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new LoupeError('LOOP_BAD_CONFIG', `not valid JSON (${(e as Error).message})`, { input: path });
  }
  return parseLoopConfig(raw, path, dirname(resolve(path)));
}

/** Where one loop installation keeps its state (LOUPE_HOME, or ./.loupe). */
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
  const d = resolve(dir ?? process.env.LOUPE_HOME ?? join(process.cwd(), '.loupe'));
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
