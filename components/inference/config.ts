import { z } from 'zod';

/** loupe.Inference configuration (recipe DefaultConfiguration documents each key). */
const classKey = z.union([z.string().min(1), z.number().int().min(0)]);

export const verdictRuleSchema = z.object({
  name: z.string().min(1),
  /** classes that count for this rule (names or ids); absent = every class */
  classes: z.array(classKey).optional(),
  /** a detection counts only at or above this confidence (on top of the thresholds) */
  minConf: z.number().min(0).max(1).default(0),
  /** the rule fires (verdict fail) when at least this many detections count */
  minCount: z.number().int().min(1).default(1),
});

export const inferenceConfigSchema = z
  .object({
    model: z
      .object({
        /** model.onnx; normally filled from loupe.Model by the recipe ({loupe.Model:artifacts:path}) */
        path: z.string().optional(),
        sha256: z
          .string()
          .regex(/^[0-9a-f]{64}$/i, 'must be a hex SHA-256')
          .optional(),
        name: z.string().default('model'),
        version: z.string().default('0.0.0'),
      })
      .default({ name: 'model', version: '0.0.0' }),
    /** onnxruntime intra-op threads; absent = onnxruntime's choice */
    threads: z.number().int().min(1).optional(),
    /**
     * Let onnxruntime's threads spin between operators. Off by default: on a device the camera,
     * uploader and nucleus share the cores, and spin-waiting takes CPU time they need.
     */
    spinning: z.boolean().default(false),
    /**
     * Where onnxruntime runs: 'worker' (default) keeps this process's event loop free during each
     * run, so IPC, decoding hand-off, letterbox and results of other frames go on meanwhile; 'main'
     * runs it in the event loop's thread (one thread less).
     */
    sessionThread: z.enum(['worker', 'main']).default('worker'),
    /**
     * Model sessions running frames at once, each in its own thread (sessionThread 'worker';
     * `threads` is then per session, default 1). More frames/s for a continuous camera on a
     * multi-core device, at a session's memory each and a longer single frame; 1 (default) gives
     * each frame every core: the shortest latency, for a line waiting on each part's verdict.
     */
    sessions: z.number().int().min(1).max(8).default(1),
    conf: z.number().min(0).max(1).default(0.25),
    iou: z.number().min(0).max(1).default(0.7),
    maxDet: z.number().int().min(1).default(300),
    /** keep only these classes (names or ids) */
    classes: z.array(classKey).optional(),
    /** per-class confidence thresholds by class name or id (others use `conf`) */
    classConf: z.record(z.string(), z.number().min(0).max(1)).default({}),
    /** region of interest: detections whose box centre lies outside are dropped */
    roi: z
      .object({
        x1: z.number().min(0),
        y1: z.number().min(0),
        x2: z.number().min(0),
        y2: z.number().min(0),
        units: z.enum(['fraction', 'px']).default('fraction'),
      })
      .refine((r) => r.x2 > r.x1 && r.y2 > r.y1, 'x2/y2 must be greater than x1/y1')
      .optional(),
    verdict: z.object({ rules: z.array(verdictRuleSchema).min(1) }).default({ rules: [{ name: 'defect', minConf: 0, minCount: 1 }] }),
    queue: z
      .object({
        max: z.number().int().min(1).default(16),
        /** drop-oldest keeps the newest frames (live view); drop-newest keeps the backlog in order */
        dropPolicy: z.enum(['drop-oldest', 'drop-newest']).default('drop-oldest'),
      })
      .default({ max: 16, dropPolicy: 'drop-oldest' }),
    /** frames decoded/inferred at once (decode overlaps inference); at least sessions + 1 are used */
    workers: z.number().int().min(1).max(9).default(2),
    telemetryIntervalS: z.number().positive().default(10),
    publishResultsToIoTCore: z.boolean().default(true),
    /**
     * Prometheus `GET /metrics` (components/inference/metrics.ts): off unless `port` is set (0 picks
     * a free port, logged at start); bound to 127.0.0.1 unless `host` says otherwise.
     */
    metrics: z
      .object({ port: z.number().int().min(0).max(65535).optional(), host: z.string().min(1).default('127.0.0.1') })
      .default({ host: '127.0.0.1' }),
  })
  .refine((c) => c.sessions === 1 || c.sessionThread === 'worker', {
    message: "sessions above 1 need sessionThread 'worker' (a run in the event loop's thread blocks the others)",
    path: ['sessions'],
  });
export type InferenceConfig = z.infer<typeof inferenceConfigSchema>;
export type VerdictRule = z.infer<typeof verdictRuleSchema>;
