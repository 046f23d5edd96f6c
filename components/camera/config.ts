import { z } from 'zod';
import { sourceSchema } from './sources/index.js';
import { triggerSchema } from './triggers.js';

/** loupe.Camera configuration (recipe DefaultConfiguration documents each key). */
export const cameraSchema = z.object({
  name: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'letters, digits, _ and - only (it names folders and frame ids)'),
  enabled: z.boolean().default(true),
  source: sourceSchema,
  trigger: triggerSchema.default({ type: 'interval', fps: 1 }),
});

export const cameraConfigSchema = z.object({
  cameras: z
    .array(cameraSchema)
    .min(1, 'at least one camera is needed')
    .refine((cs) => new Set(cs.map((c) => c.name)).size === cs.length, 'camera names must be unique'),
  frameStore: z
    .object({
      dir: z.string().default('frames'),
      maxFrames: z.number().int().min(1).default(2000),
      maxBytes: z
        .number()
        .int()
        .min(1024)
        .default(1024 * 1024 * 1024),
    })
    .default({ dir: 'frames', maxFrames: 2000, maxBytes: 1024 * 1024 * 1024 }),
  backoff: z
    .object({ initialMs: z.number().int().min(10).default(500), maxMs: z.number().int().min(10).default(30_000) })
    .default({ initialMs: 500, maxMs: 30_000 }),
  /** at-least-once hand-over to inference (see delivery.ts) */
  delivery: z
    .object({
      redeliver: z.boolean().default(true),
      ackTimeoutMs: z.number().int().min(100).default(5000),
      maxRedeliveries: z.number().int().min(0).default(3),
      maxUnacked: z.number().int().min(1).default(5000),
      /**
       * Whose word ends a frame's delivery: `inference` (its result) or `uploader` (the result is
       * spooled or not selected, loupe/uploader/handled), so that a result the uploader missed
       * while restarting, or could not spool on a full disk, comes round again. `uploader` only
       * where a loupe.Uploader runs (the suite's recipe sets it).
       */
      ackBy: z.enum(['inference', 'uploader']).default('inference'),
    })
    .default({ redeliver: true, ackTimeoutMs: 5000, maxRedeliveries: 3, maxUnacked: 5000, ackBy: 'inference' }),
  healthIntervalS: z.number().positive().default(10),
  publishToIoTCore: z.boolean().default(true),
});
export type CameraComponentConfig = z.infer<typeof cameraConfigSchema>;
export type CameraConfig = z.infer<typeof cameraSchema>;
