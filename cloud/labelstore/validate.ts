import { z } from 'zod';
import { LoupeError } from '../../lib/errors.js';
import { LABEL_STATUSES, type LabelRecord } from './types.js';

/**
 * The one schema every store applies before it appends, so a bad record is refused with the
 * image and the field named, and nothing of the batch is written.
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
export function makeRecord(r: Omit<LabelRecord, 'device' | 'capture_time' | 'model_version' | 'meta' | 'image_depth'> & Partial<LabelRecord>): LabelRecord {
  return {
    image_depth: 3,
    device: '',
    capture_time: null,
    model_version: '',
    meta: {},
    ...r,
  };
}
