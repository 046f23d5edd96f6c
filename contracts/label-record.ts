import { z } from 'zod';
import { LoupeError } from '../lib/errors.js';
import type { GtBox } from './box.js';

/**
 * Label records in the reference solution's feature-store layout (`source_ref, image_width,
 * image_height, image_depth, annotations, event_time, labeling_job, status`), extended with
 * where the image came from (device, capture time, model version) and a free `meta` object
 * (the upload sidecar's extras: camera, frame, upload reason; a rejection's reason).
 *
 * The store is append-only: a new record for an image supersedes older ones without
 * deleting them, so "what did we know at time T" is always answerable.
 *
 * Lifecycle of one image, as the label store sees it:
 *   PENDING, labeling_job ''      ingested, unlabelled; annotations = the device's detections
 *   PENDING, labeling_job <job>   labelled and consolidated in <job>, awaiting verification
 *   APPROVED                      verified; the only records a data set snapshot takes
 *   REJECTED                      verification refused it (meta.reason); eligible for relabelling
 */

export const LABEL_STATUSES = ['PENDING', 'APPROVED', 'REJECTED'] as const;
export type LabelStatus = (typeof LABEL_STATUSES)[number];

export interface LabelRecord {
  /** The image's URI (s3://bucket/key); the record identifier. */
  source_ref: string;
  image_width: number;
  image_height: number;
  image_depth: number;
  annotations: GtBox[];
  /** Epoch seconds (fractional allowed): when this record became true. */
  event_time: number;
  /** `labeling-job/<name>` for human labels, '' for ingested items. */
  labeling_job: string;
  status: LabelStatus;
  /** Thing name of the device that uploaded the image ('' when unknown, e.g. imported history). */
  device: string;
  /** Epoch seconds when the device captured the frame (null when unknown). */
  capture_time: number | null;
  /** Version of the model that produced the pre-annotations ('' when unknown). */
  model_version: string;
  /** Extras: camera, frame id, upload reason, rejection reason, worker ids... */
  meta: Record<string, unknown>;
}

/**
 * The one schema of a label record: every store applies it before it appends (a bad record is
 * refused with the image and the field named, and nothing of the batch is written), and the
 * labels.csv reader (contracts/labels-csv.ts) applies it to every row.
 */
const gtBox = z.object({
  class_id: z.number().int().min(0),
  left: z.number().finite(),
  top: z.number().finite(),
  width: z.number().finite().positive(),
  height: z.number().finite().positive(),
  confidence: z.number().min(0).max(1).optional(),
});

export const labelRecordSchema = z.object({
  source_ref: z.string().min(1),
  image_width: z.number().int().positive(),
  image_height: z.number().int().positive(),
  image_depth: z.number().int().positive(),
  annotations: z.array(gtBox),
  event_time: z.number().finite().nonnegative(),
  labeling_job: z.string(),
  status: z.enum(LABEL_STATUSES),
  device: z.string(),
  capture_time: z.number().finite().nullable(),
  model_version: z.string(),
  meta: z.record(z.string(), z.unknown()),
});

export function validateRecord(r: unknown, index: number): LabelRecord {
  const res = labelRecordSchema.safeParse(r);
  const ref = (r as { source_ref?: unknown } | null)?.source_ref;
  const input = `label record #${index}${typeof ref === 'string' ? ` (${ref})` : ''}`;
  if (!res.success) {
    const issue = res.error.issues[0]!;
    throw new LoupeError('LABEL_BAD_RECORD', `${issue.path.join('.') || 'record'}: ${issue.message}`, { input });
  }
  const rec = res.data as LabelRecord;
  rec.annotations.forEach((b, i) => {
    // Ground Truth boxes may touch the border; more than a pixel outside is a labelling bug.
    if (b.left < -1 || b.top < -1 || b.left + b.width > rec.image_width + 1 || b.top + b.height > rec.image_height + 1) {
      throw new LoupeError(
        'LABEL_BAD_RECORD',
        `annotations.${i}: box (left ${b.left}, top ${b.top}, ${b.width}x${b.height}) lies outside the ${rec.image_width}x${rec.image_height} image`,
        { input },
      );
    }
  });
  return rec;
}

/** A record with defaults for the extension fields (imported history has no device etc.). */
export function makeRecord(
  r: Omit<LabelRecord, 'device' | 'capture_time' | 'model_version' | 'meta' | 'image_depth'> & Partial<LabelRecord>,
): LabelRecord {
  return {
    image_depth: 3,
    device: '',
    capture_time: null,
    model_version: '',
    meta: {},
    ...r,
  };
}
