import { boxToGt, gtToBox } from '../../contracts/box.js';
import { makeRecord, type LabelRecord, type LabelStatus } from '../../contracts/label-record.js';
import type { LabelledImage } from '../dataset/types.js';
import { labelStudioResults, type LsTask } from '../dataset/labelstudio.js';
import { itemState } from './state.js';
import { appendNew } from './csv.js';
import type { LabelStore, StoredLabelRecord } from './types.js';

/**
 * Labelled images from another tool (a YOLO folder, a Label Studio export: cloud/dataset reads
 * them) into the label store, and the store's records out to Label Studio.
 *
 * Each image becomes one record: `source_ref` = `refPrefix` + its id (where the labelling UI and
 * snapshots will fetch it: upload the images there, e.g. `aws s3 sync`), boxes through
 * contracts/box.ts, `labeling_job` `import/<format>`, status APPROVED by default (finished labels)
 * or PENDING (pre-annotations to be checked). The event time defaults to the imported file's
 * modification time, so importing the same file twice appends nothing the second time.
 */
export interface LabelledImportOptions {
  refPrefix: string;
  format: string;
  eventTime: number;
  status?: LabelStatus;
  /** Recorded in each record's meta, for the history. */
  source: string;
}

export function recordsFromImages(images: readonly LabelledImage[], opts: LabelledImportOptions): LabelRecord[] {
  return images.map((img) =>
    makeRecord({
      source_ref: opts.refPrefix + img.id,
      image_width: img.width,
      image_height: img.height,
      annotations: img.boxes.map((b) => boxToGt(b)),
      event_time: opts.eventTime,
      labeling_job: `import/${opts.format}`,
      status: opts.status ?? 'APPROVED',
      meta: { imported_from: opts.source, image_id: img.id },
    }),
  );
}

export async function importLabelledImages(
  store: LabelStore,
  images: readonly LabelledImage[],
  opts: LabelledImportOptions,
): Promise<{ images: number; appended: number; boxes: number }> {
  const records = recordsFromImages(images, opts);
  const appended = await appendNew(store, records);
  return { images: records.length, appended, boxes: records.reduce((n, r) => n + r.annotations.length, 0) };
}

/**
 * Label Studio tasks for the latest records: `data.image` is the record's source_ref (Label Studio
 * reads s3:// refs through a cloud storage connection). Labelled records (human labels, approved
 * or awaiting verification) become the task's annotation; unlabelled ones carry the device's
 * detections, which become predictions with their scores, as Label Studio shows pre-annotations.
 * Rejected images are exported without labels, to be labelled again.
 */
export function labelStudioTasksFromRecords(records: readonly StoredLabelRecord[], names: readonly string[]): LsTask[] {
  return records.map((r, i) => {
    const boxes = r.annotations.map(gtToBox);
    const state = itemState(r);
    const results = labelStudioResults(
      boxes,
      names,
      r.image_width,
      r.image_height,
      state === 'unlabelled' ? r.annotations.map((a) => a.confidence) : undefined,
    );
    const task: LsTask = {
      id: i + 1,
      data: { image: r.source_ref, loupe_status: r.status, loupe_state: state, loupe_event_time: r.event_time },
      annotations: [],
      predictions: [],
    };
    if (state === 'approved' || state === 'awaiting-verification')
      task.annotations = [{ id: i + 1, result: results, was_cancelled: false, ground_truth: state === 'approved' }];
    else if (state === 'unlabelled' && results.length) task.predictions = [{ model_version: r.model_version || 'device', result: results }];
    return task;
  });
}
