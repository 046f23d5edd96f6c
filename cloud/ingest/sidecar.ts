import { z } from 'zod';
import { LoupeError } from '../../lib/errors.js';
import type { GtBox } from '../../contracts/box.js';

/**
 * The JSON sidecar loupe.Uploader writes next to each uploaded frame
 * (`incoming/<thing>/<yyyy>/<mm>/<dd>/<frameId>.json`): device, camera, frame, time, model
 * version, the device's detections (the pre-annotations) and why the frame was uploaded.
 * Read tolerantly (camelCase or snake_case; time as ISO text or epoch seconds/milliseconds),
 * because devices in the field run older uploader versions; what is required is named in errors.
 */
const detection = z.object({
  xyxy: z.tuple([z.number(), z.number(), z.number(), z.number()]),
  conf: z.number().optional(),
  cls: z.number().int().min(0),
  name: z.string().optional(),
});

const sidecarSchema = z
  .object({
    device: z.string().optional(),
    thing: z.string().optional(),
    thingName: z.string().optional(),
    camera: z.string().optional(),
    frame: z.union([z.string(), z.number(), z.record(z.string(), z.unknown())]).optional(),
    frameId: z.string().optional(),
    time: z.union([z.string(), z.number()]).optional(),
    capturedAt: z.union([z.string(), z.number()]).optional(),
    modelVersion: z.string().optional(),
    model_version: z.string().optional(),
    model: z.object({ version: z.string().optional(), name: z.string().optional() }).passthrough().optional(),
    detections: z.array(detection).default([]),
    reason: z.union([z.string(), z.array(z.string())]).optional(),
    width: z.number().int().positive().optional(),
    height: z.number().int().positive().optional(),
    image: z.object({ width: z.number().int().positive().optional(), height: z.number().int().positive().optional() }).passthrough().optional(),
    verdict: z.string().optional(),
    origin: z.string().optional(),
  })
  .passthrough();

export interface Sidecar {
  device: string;
  camera: string;
  frame: unknown;
  captureTime: number | null;
  modelVersion: string;
  detections: { xyxy: [number, number, number, number]; conf?: number; cls: number; name?: string }[];
  reason: string;
  width?: number;
  height?: number;
  verdict?: string;
  /** Where the camera got the frame (file path, URL). */
  origin?: string;
}

function toEpochSeconds(v: string | number | undefined, input: string): number | null {
  if (v === undefined) return null;
  if (typeof v === 'number') return v > 1e11 ? v / 1000 : v;
  const t = Date.parse(v);
  if (Number.isNaN(t)) throw new LoupeError('SIDECAR_BAD', `time ${JSON.stringify(v)} is neither ISO-8601 nor epoch`, { input });
  return t / 1000;
}

export function parseSidecar(text: string, input: string): Sidecar {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new LoupeError('SIDECAR_BAD', `not JSON (${(e as Error).message})`, { input });
  }
  const res = sidecarSchema.safeParse(raw);
  if (!res.success) {
    const i = res.error.issues[0]!;
    throw new LoupeError('SIDECAR_BAD', `${i.path.join('.') || 'sidecar'}: ${i.message}`, { input });
  }
  const s = res.data;
  return {
    device: s.device ?? s.thing ?? s.thingName ?? '',
    camera: s.camera ?? '',
    frame: s.frame ?? s.frameId ?? null,
    captureTime: toEpochSeconds(s.time ?? s.capturedAt, input),
    modelVersion: s.modelVersion ?? s.model_version ?? s.model?.version ?? '',
    detections: s.detections,
    reason: Array.isArray(s.reason) ? s.reason.join(',') : (s.reason ?? ''),
    width: s.width ?? s.image?.width,
    height: s.height ?? s.image?.height,
    verdict: s.verdict,
    origin: s.origin,
  };
}

/** Detections (corner boxes in image pixels) → Ground Truth boxes clipped to the image; empty ones dropped. */
export function detectionsToGt(dets: Sidecar['detections'], width: number, height: number): GtBox[] {
  const out: GtBox[] = [];
  for (const d of dets) {
    const x1 = Math.max(0, Math.min(width, d.xyxy[0]));
    const y1 = Math.max(0, Math.min(height, d.xyxy[1]));
    const x2 = Math.max(0, Math.min(width, d.xyxy[2]));
    const y2 = Math.max(0, Math.min(height, d.xyxy[3]));
    if (x2 - x1 <= 0 || y2 - y1 <= 0) continue;
    const r = (v: number) => Math.round(v * 10) / 10;
    const box: GtBox = { class_id: d.cls, left: r(x1), top: r(y1), width: r(x2 - x1), height: r(y2 - y1) };
    if (d.conf !== undefined) box.confidence = Math.round(Math.max(0, Math.min(1, d.conf)) * 1000) / 1000;
    out.push(box);
  }
  return out;
}
