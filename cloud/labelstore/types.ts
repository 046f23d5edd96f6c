/**
 * What a label store is (the port the SQLite store and the Feature Store adapter both offer).
 * The label record itself is a contract: contracts/label-record.ts.
 */
import type { LabelRecord, LabelStatus } from '../../contracts/label-record.js';

// Re-exported while other branches still import these from here; new code imports contracts/.
export type { GtBox } from '../../contracts/box.js';
export { LABEL_STATUSES, type LabelRecord, type LabelStatus } from '../../contracts/label-record.js';

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
 * What a store that mirrors the loop's label store offers (SageMaker Feature Store): appends.
 * Its reads (the offline store, through Athena) lag the writes by up to ~15 minutes, so it
 * cannot answer the loop's read-after-write checks and is not a LabelStore; the compiler keeps
 * one from being passed as one (test/types/mirror-types.ts).
 */
export interface LabelStoreMirrorTarget {
  readonly kind: string;
  /** Append records (never updates or deletes). Validates every record first. */
  append(records: LabelRecord[]): Promise<void>;
  close(): Promise<void>;
}

/**
 * What every label store offers: reads that see every append made before them. Async so that
 * a store over a network can offer it too.
 */
export interface LabelStore extends LabelStoreMirrorTarget {
  /** Append records (never updates or deletes). Validates every record first; all or nothing. */
  append(records: LabelRecord[]): Promise<void>;
  /** Latest record per image with event_time ≤ asOf (ties: the later append wins). */
  latest(query?: LatestQuery): Promise<StoredLabelRecord[]>;
  /** Every record of one image, oldest first. */
  history(sourceRef: string): Promise<StoredLabelRecord[]>;
  /** Whether any record exists for these images (ingest's idempotency check); returns those found. */
  known(sourceRefs: string[]): Promise<Set<string>>;
}
