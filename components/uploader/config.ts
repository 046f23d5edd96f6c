import { z } from 'zod';

/** loupe.Uploader configuration (recipe DefaultConfiguration documents each key). */
const classKey = z.union([z.string().min(1), z.number().int().min(0)]);

export const policySchema = z.discriminatedUnion('type', [
  /** frames whose verdict is fail */
  z.object({ type: z.literal('failed'), name: z.string().optional() }),
  /** frames with a detection whose confidence lies in [low, high): the model is unsure */
  z
    .object({ type: z.literal('uncertain'), name: z.string().optional(), low: z.number().min(0).max(1), high: z.number().min(0).max(1) })
    .refine((p) => p.high > p.low, 'high must be greater than low'),
  /** a random share of passing frames (to catch what the model misses) */
  z.object({ type: z.literal('random'), name: z.string().optional(), share: z.number().min(0).max(1) }),
  /** frames with a detection of one of these classes */
  z.object({
    type: z.literal('classes'),
    name: z.string().optional(),
    classes: z.array(classKey).min(1),
    minConf: z.number().min(0).max(1).default(0),
  }),
]);
export type PolicyConfig = z.infer<typeof policySchema>;

export const uploaderConfigSchema = z.object({
  bucket: z.string().regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, 'must be a valid S3 bucket name'),
  prefix: z.string().default('incoming'),
  /** S3 endpoint override (the embedded object store); absent on AWS */
  endpoint: z.string().url().optional(),
  forcePathStyle: z.boolean().default(false),
  region: z.string().optional(),
  policies: z.array(policySchema).default([{ type: 'failed' }]),
  limits: z
    .object({
      perMinute: z.number().int().min(0).optional(),
      perHour: z.number().int().min(0).optional(),
      perDay: z.number().int().min(0).optional(),
    })
    .default({}),
  dedup: z
    .object({
      enabled: z.boolean().default(true),
      /** dhash / phash: perceptual (near-identical frames); exact: byte-identical frames only (look-alike parts) */
      hash: z.enum(['dhash', 'phash', 'exact']).default('dhash'),
      /** frames within this Hamming distance (of 64 bits) of a recent upload are duplicates */
      maxDistance: z.number().int().min(0).max(64).default(3),
      /** how many recent uploads per camera to compare with (kept across restarts beside the spool) */
      window: z.number().int().min(1).max(4096).default(256),
    })
    .default({ enabled: true, hash: 'dhash', maxDistance: 3, window: 256 }),
  image: z
    .object({
      maxWidth: z.number().int().min(16).default(4096),
      maxHeight: z.number().int().min(16).default(4096),
      jpegQuality: z.number().int().min(10).max(100).default(90),
      maxBytes: z
        .number()
        .int()
        .min(10_000)
        .default(4 * 1024 * 1024),
      /** always re-encode; otherwise a JPEG within the limits is uploaded byte for byte */
      reencode: z.boolean().default(false),
    })
    .default({ maxWidth: 4096, maxHeight: 4096, jpegQuality: 90, maxBytes: 4 * 1024 * 1024, reencode: false }),
  spool: z
    .object({
      dir: z.string().default('spool'),
      maxBytes: z
        .number()
        .int()
        .min(100_000)
        .default(512 * 1024 * 1024),
    })
    .default({ dir: 'spool', maxBytes: 512 * 1024 * 1024 }),
  upload: z
    .object({
      concurrency: z.number().int().min(1).max(32).default(2),
      baseDelayMs: z.number().int().min(1).default(500),
      maxDelayMs: z.number().int().min(1).default(60_000),
      timeoutMs: z.number().int().min(100).default(30_000),
    })
    .default({ concurrency: 2, baseDelayMs: 500, maxDelayMs: 60_000, timeoutMs: 30_000 }),
  /** results waiting for selection; beyond it the oldest are dropped and counted */
  backlog: z.number().int().min(1).default(256),
  telemetryIntervalS: z.number().positive().default(10),
});
export type UploaderConfig = z.infer<typeof uploaderConfigSchema>;
