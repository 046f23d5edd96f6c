import { z } from 'zod';
import { LoupeError } from '../lib/errors.js';

/**
 * The upload sidecar: the JSON object loupe.Uploader puts next to each uploaded frame
 * (`<prefix><thing>/<yyyy>/<mm>/<dd>/<frameId>.json` beside `<frameId>.jpg`) and cloud ingest
 * reads. One schema for both sides: the uploader builds it through `uploadSidecar` (checked
 * before it is spooled), ingest reads it through `parseUploadSidecar`, which refuses a
 * `schema` it does not know, naming the file and the value. A change to the fields is a new
 * version (`loupe.upload/2`) that the reader learns before any writer sends it.
 */
export const UPLOAD_SCHEMA_V1 = 'loupe.upload/1';

/** Versions this code reads. */
export const UPLOAD_SCHEMAS: readonly string[] = [UPLOAD_SCHEMA_V1];

const detection = z.strictObject({
  xyxy: z.tuple([z.number(), z.number(), z.number(), z.number()]),
  conf: z.number(),
  cls: z.number().int().min(0),
  name: z.string(),
});

export const uploadSidecarV1 = z.strictObject({
  schema: z.literal(UPLOAD_SCHEMA_V1),
  /** thing name of the device */
  device: z.string().min(1),
  camera: z.string().min(1),
  /** `<camera>-<run>-<seq>`, the frame's id on the device (contracts/topics.ts FrameMessage) */
  frameId: z.string().min(1),
  seq: z.number().int().nonnegative(),
  /** capture time, ISO-8601 */
  time: z.iso.datetime({ offset: true }),
  trigger: z.enum(['interval', 'continuous', 'ipc', 'mqtt']),
  /** part serial carried by an external trigger */
  serial: z.string().optional(),
  /** the upload policy that selected the frame */
  reason: z.string().min(1),
  /** the verdict rules that fired on the device */
  reasons: z.array(z.string()),
  verdict: z.enum(['pass', 'fail', 'error']),
  model: z.strictObject({ name: z.string(), version: z.string(), sha256: z.string() }),
  image: z.strictObject({
    key: z.string().min(1),
    /** size of the uploaded JPEG (may be resized from the original) */
    width: z.number().int().positive(),
    height: z.number().int().positive(),
    originalWidth: z.number().int().positive(),
    originalHeight: z.number().int().positive(),
    bytes: z.number().int().positive(),
    sha256: z.string().regex(/^[0-9a-f]{64}$/),
    contentType: z.literal('image/jpeg'),
  }),
  /** the device's detections in the uploaded image's pixels: the pre-annotations for labelling */
  detections: z.array(detection),
});

export type UploadSidecar = z.infer<typeof uploadSidecarV1>;

function firstIssue(e: z.ZodError): string {
  const i = e.issues[0]!;
  return `${i.path.join('.') || 'sidecar'}: ${i.message}`;
}

/** The sidecar for one upload, checked against the schema (the writer's side). */
export function uploadSidecar(fields: Omit<UploadSidecar, 'schema'>): UploadSidecar {
  const res = uploadSidecarV1.safeParse({ schema: UPLOAD_SCHEMA_V1, ...fields });
  if (!res.success) throw new LoupeError('SIDECAR_BAD', firstIssue(res.error), { input: `upload sidecar of frame ${fields.frameId}` });
  return res.data;
}

/** A sidecar's text, read and checked (the reader's side). `input` names the file in errors. */
export function parseUploadSidecar(text: string, input: string): UploadSidecar {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new LoupeError('SIDECAR_BAD', `not JSON (${(e as Error).message})`, { input });
  }
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) throw new LoupeError('SIDECAR_BAD', 'is not a JSON object', { input });
  const schema = (raw as { schema?: unknown }).schema;
  if (schema === undefined)
    throw new LoupeError('SIDECAR_SCHEMA', `has no "schema" field (this loupe reads ${UPLOAD_SCHEMAS.join(', ')})`, { input });
  if (typeof schema !== 'string' || !UPLOAD_SCHEMAS.includes(schema)) {
    throw new LoupeError(
      'SIDECAR_SCHEMA',
      `schema ${JSON.stringify(schema)} is not one this loupe reads (${UPLOAD_SCHEMAS.join(', ')}); upgrade the cloud side first`,
      { input },
    );
  }
  const res = uploadSidecarV1.safeParse(raw);
  if (!res.success) throw new LoupeError('SIDECAR_BAD', firstIssue(res.error), { input });
  return res.data;
}
