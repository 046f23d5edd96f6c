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

import type { GtBox } from '../../contracts/box.js';

/** GtBox lives in contracts/box.ts; re-exported while other branches still import it from here. */
export type { GtBox };

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

/** A record as read back, with the store's insertion sequence (ties on event_time break by it). */
export interface StoredLabelRecord extends LabelRecord {
  seq: number;
}

export interface LatestQuery {
  /** Point in time (epoch seconds, inclusive); default: now (everything). */
  asOf?: number;
  /** Keep only images whose latest record (as of T) has one of these statuses. */
  status?: LabelStatus | LabelStatus[];
  /** Keep only these images. */
  sourceRefs?: string[];
}

/**
 * What every label store offers. Async so that the SQLite default and the SageMaker Feature
 * Store adapter are interchangeable.
 */
export interface LabelStore {
  readonly kind: string;
  /** Append records (never updates or deletes). Validates every record first; all or nothing. */
  append(records: LabelRecord[]): Promise<void>;
  /** Latest record per image with event_time ≤ asOf (ties: the later append wins). */
  latest(query?: LatestQuery): Promise<StoredLabelRecord[]>;
  /** Every record of one image, oldest first. */
  history(sourceRef: string): Promise<StoredLabelRecord[]>;
  /** Whether any record exists for these images (ingest's idempotency check); returns those found. */
  known(sourceRefs: string[]): Promise<Set<string>>;
  close(): Promise<void>;
}
