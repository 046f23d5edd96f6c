import type Database from 'better-sqlite3';
import { LoupeError, errorMessage } from '../../lib/errors.js';
import { openSqlite } from '../../lib/sqlite.js';
import { LABEL_STORE_SCHEMA } from '../labelstore/schema.js';
import { SqliteLabelStore } from '../labelstore/sqlite.js';
import { itemState } from '../labelstore/state.js';
import type { LabelStore, StoredLabelRecord } from '../labelstore/types.js';
import type { LabelRecord } from '../../contracts/label-record.js';
import type { GtBox } from '../../contracts/box.js';
import { boxToGt, clipBox, gtToBox } from '../../contracts/box.js';
import type { Logger } from 'pino';
import { silentLogger } from '../../lib/log.js';
import { Consolidator } from './consolidator.js';
import { WorkerRegistry } from './workers.js';

/**
 * Labelling jobs on the embedded backend: a batch of images that need labels, the classes and
 * instructions, how many workers label each image and a cap on the batch size. Workers (people
 * in the web UI, or the simulated workforce) take tasks; when an image has its workers' labels
 * they are consolidated (consolidate.ts) and recorded in the label store as PENDING with the
 * job's name; a verifier then approves (APPROVED) or rejects with a reason (REJECTED, the image
 * becomes eligible for a later job).
 *
 * Integrity rules, whoever calls: a worker labels an image once (and may amend it until the
 * image has all its labels); at most `maxBoxes` boxes per submission; a verifier is never one
 * of the image's labellers. Who a worker is comes from their credential (workers.ts,
 * session.ts); these methods trust the id they are given, so only trusted code calls them
 * directly.
 *
 * Consolidation runs off the request path: `submit` records the boxes and returns; when the
 * image has all its labels, a worker thread consolidates them (consolidator.ts) and the PENDING
 * record is written then. The queue is the database itself (images with all their labels and
 * no consolidation), so a crash loses nothing: `settle()` finishes whatever is left, and every
 * submit schedules it. `await lab.settle()` waits until no consolidation is outstanding.
 *
 *   const lab = Labeling.open(store, dbPath?)   // SQLite store: job tables live in its database
 *   await lab.createJob({ name?, classes, instructions, workersPerImage, cap, batch?, asOf? })
 *   lab.nextTask(job, worker) → Task | null      // leases the task to the worker for leaseSeconds
 *   await lab.submit(job, sourceRef, worker, boxes, { replace? }) → { complete }
 *   await lab.settle()                            // outstanding consolidations done
 *   lab.nextVerification(job, verifier) → VerifyTask | null
 *   await lab.verify(job, sourceRef, { verdict: 'approve' | 'reject', reason?, verifier })
 *   lab.getJob(job) / lab.listJobs() / lab.items(job)
 *
 * Crash safety: with the SQLite store, each submission/verdict and its label record commit in
 * one transaction. With another store the record is appended first and the job row marked
 * after; a retried step finds the record already there (same job + status) and does not
 * append it again.
 */

/** Boxes one worker may submit for one image unless the job says otherwise (ultralytics' max_det). */
export const DEFAULT_MAX_BOXES = 300;
export const MAX_BOXES_LIMIT = 100_000;

export interface JobSpec {
  /** Job name; re-creating a job with an existing name returns it unchanged (idempotent). */
  name?: string;
  classes: string[];
  instructions?: string;
  workersPerImage?: number;
  /** At most this many images in the job (default 100). */
  cap?: number;
  /** Only these images (default: every unlabelled or rejected image). */
  batch?: string[];
  /** Pick images as the store stood at this time (default now). */
  asOf?: number;
  backend?: 'local' | 'groundtruth';
  iouThreshold?: number;
  minVotes?: number;
  /** At most this many boxes in one worker's submission for one image (default 300). */
  maxBoxes?: number;
}

export type JobStatus = 'labelling' | 'verifying' | 'done';

export interface Job {
  name: string;
  /** The value written to label records' `labeling_job` (the reference writes `labeling-job/<name>`). */
  labelingJob: string;
  created: number;
  classes: string[];
  instructions: string;
  workersPerImage: number;
  cap: number;
  backend: string;
  iouThreshold: number;
  minVotes: number | null;
  maxBoxes: number;
  /** `consolidating`: images with all their labels, waiting for (or in) consolidation. */
  counts: { items: number; annotations: number; consolidating: number; consolidated: number; approved: number; rejected: number };
  status: JobStatus;
}

export interface Task {
  job: string;
  sourceRef: string;
  width: number;
  height: number;
  classes: string[];
  instructions: string;
  /** The device's detections (or the rejected labels) to start from. */
  preAnnotations: GtBox[];
  device: string;
  captureTime: number | null;
  modelVersion: string;
  /** The record's extras (upload sidecar: camera, frame, reason). */
  meta: Record<string, unknown>;
  /** Images of the job this worker has not labelled yet, this one included. */
  remaining: number;
  /** This worker's own earlier submission for the image (going back to amend it), if any. */
  submitted?: GtBox[];
}

/** One image of a job as one worker sees it (the UI's task list). */
export interface ItemView {
  sourceRef: string;
  ord: number;
  /** to-label: this worker may label it · labelled: this worker did (amendable until complete) · taken: other workers fill it ·
   *  consolidating · awaiting-verification · approved · rejected */
  state: 'to-label' | 'labelled' | 'taken' | 'consolidating' | 'awaiting-verification' | 'approved' | 'rejected';
  labels: number;
  mine: boolean;
}

export interface VerifyTask {
  job: string;
  sourceRef: string;
  width: number;
  height: number;
  classes: string[];
  instructions: string;
  annotations: GtBox[];
  workers: string[];
  meta: Record<string, unknown>;
  remaining: number;
}

export interface ItemRow {
  sourceRef: string;
  record: LabelRecord;
  annotations: { worker: string; boxes: GtBox[] }[];
  consolidated: GtBox[] | null;
  verdict: 'APPROVED' | 'REJECTED' | null;
  reason: string | null;
}

interface JobRow {
  name: string;
  created: number;
  classes: string;
  instructions: string;
  workers_per_image: number;
  cap: number;
  backend: string;
  iou_threshold: number;
  min_votes: number | null;
  max_boxes: number | null;
}

export const labelingJobRef = (name: string): string => `labeling-job/${name}`;

export class Labeling {
  readonly db: Database.Database;
  /** The workforce's identities and credentials (same database). */
  readonly workers: WorkerRegistry;
  private readonly shared: boolean;
  private readonly now: () => number;
  private readonly leaseSeconds: number;
  private readonly log: Logger;
  private readonly consolidator = new Consolidator();
  /** The running settle pass, and whether another must follow it (a submit arrived meanwhile). */
  private settling: Promise<void> | undefined;
  private again = false;

  constructor(
    readonly store: LabelStore,
    opts: { dbPath?: string; now?: () => number; leaseSeconds?: number; log?: Logger } = {},
  ) {
    this.now = opts.now ?? (() => Date.now() / 1000);
    this.leaseSeconds = opts.leaseSeconds ?? 300;
    this.log = opts.log ?? silentLogger;
    if (store instanceof SqliteLabelStore && !opts.dbPath) {
      this.db = store.db;
      this.shared = true;
    } else {
      if (!opts.dbPath) throw new LoupeError('LABELING_NO_DB', 'a labelling database path is needed when the label store is not SQLite');
      // Its own file with the label database's schema (its label_records table stays empty).
      this.db = openSqlite(opts.dbPath, LABEL_STORE_SCHEMA);
      this.shared = false;
    }
    this.workers = new WorkerRegistry(this.db, this.now);
  }

  static open(store: LabelStore, dbPath?: string): Labeling {
    return new Labeling(store, { dbPath });
  }

  private jobRow(name: string): JobRow {
    const row = this.db.prepare('SELECT * FROM labeling_jobs WHERE name = ?').get(name) as JobRow | undefined;
    if (!row) throw new LoupeError('LABELING_NO_JOB', 'no such labelling job', { input: name });
    return row;
  }

  getJob(name: string): Job {
    const row = this.jobRow(name);
    const c = this.db
      .prepare(
        `SELECT COUNT(*) AS items,
                SUM(consolidated IS NOT NULL) AS consolidated,
                SUM(verdict = 'APPROVED') AS approved,
                SUM(verdict = 'REJECTED') AS rejected
         FROM labeling_items WHERE job = ?`,
      )
      .get(name) as { items: number; consolidated: number | null; approved: number | null; rejected: number | null };
    const a = (this.db.prepare('SELECT COUNT(*) AS n FROM labeling_annotations WHERE job = ?').get(name) as { n: number }).n;
    const consolidating = this.pendingConsolidation(name).length;
    const counts = {
      items: c.items,
      annotations: a,
      consolidating,
      consolidated: c.consolidated ?? 0,
      approved: c.approved ?? 0,
      rejected: c.rejected ?? 0,
    };
    const status: JobStatus =
      counts.consolidated < counts.items ? 'labelling' : counts.approved + counts.rejected < counts.items ? 'verifying' : 'done';
    return {
      name: row.name,
      labelingJob: labelingJobRef(row.name),
      created: row.created,
      classes: JSON.parse(row.classes),
      instructions: row.instructions,
      workersPerImage: row.workers_per_image,
      cap: row.cap,
      backend: row.backend,
      iouThreshold: row.iou_threshold,
      minVotes: row.min_votes,
      maxBoxes: row.max_boxes ?? DEFAULT_MAX_BOXES,
      counts,
      status,
    };
  }

  listJobs(): Job[] {
    return (this.db.prepare('SELECT name FROM labeling_jobs ORDER BY created, name').all() as { name: string }[]).map((r) =>
      this.getJob(r.name),
    );
  }

  /** Images that need labels as of T: latest record unlabelled or rejected, and not in an unfinished job item. */
  async eligible(asOf?: number, batch?: string[]): Promise<StoredLabelRecord[]> {
    const latest = await this.store.latest({ asOf, sourceRefs: batch });
    const busy = new Set(
      (this.db.prepare('SELECT DISTINCT source_ref FROM labeling_items WHERE verdict IS NULL').all() as { source_ref: string }[]).map(
        (r) => r.source_ref,
      ),
    );
    return latest
      .filter((r) => {
        const s = itemState(r);
        return (s === 'unlabelled' || s === 'rejected') && !busy.has(r.source_ref);
      })
      .sort((a, b) => (a.capture_time ?? a.event_time) - (b.capture_time ?? b.event_time) || (a.source_ref < b.source_ref ? -1 : 1));
  }

  async createJob(spec: JobSpec): Promise<Job> {
    const classes = spec.classes;
    if (!Array.isArray(classes) || classes.length === 0 || classes.some((c) => typeof c !== 'string' || !c)) {
      throw new LoupeError('LABELING_BAD_JOB', 'classes must be a non-empty list of names', { input: 'classes' });
    }
    const wpi = spec.workersPerImage ?? 1;
    if (!Number.isInteger(wpi) || wpi < 1 || wpi > 9)
      throw new LoupeError('LABELING_BAD_JOB', `workersPerImage must be 1..9, got ${wpi}`, { input: 'workersPerImage' });
    const cap = spec.cap ?? 100;
    if (!Number.isInteger(cap) || cap < 1)
      throw new LoupeError('LABELING_BAD_JOB', `cap must be a positive integer, got ${cap}`, { input: 'cap' });
    const iouThreshold = spec.iouThreshold ?? 0.5;
    if (!(iouThreshold > 0 && iouThreshold <= 1))
      throw new LoupeError('LABELING_BAD_JOB', `iouThreshold must be in (0, 1], got ${iouThreshold}`, { input: 'iouThreshold' });
    if (spec.minVotes !== undefined && (!Number.isInteger(spec.minVotes) || spec.minVotes < 1 || spec.minVotes > wpi)) {
      throw new LoupeError('LABELING_BAD_JOB', `minVotes must be 1..workersPerImage (${wpi}), got ${spec.minVotes}`, { input: 'minVotes' });
    }
    const maxBoxes = spec.maxBoxes ?? DEFAULT_MAX_BOXES;
    if (!Number.isInteger(maxBoxes) || maxBoxes < 1 || maxBoxes > MAX_BOXES_LIMIT) {
      throw new LoupeError('LABELING_BAD_JOB', `maxBoxes must be 1..${MAX_BOXES_LIMIT}, got ${maxBoxes}`, { input: 'maxBoxes' });
    }
    const now = this.now();
    const name =
      spec.name ??
      `loupe-${new Date(now * 1000).toISOString().replace(/[-:T]/g, '').slice(0, 14)}-${Math.random().toString(16).slice(2, 8)}`;
    if (!/^[a-zA-Z0-9](-*[a-zA-Z0-9])*$/.test(name) || name.length > 63) {
      // Ground Truth's LabelingJobName rule, so a job can move to that backend unchanged.
      throw new LoupeError('LABELING_BAD_JOB', 'job name must be letters, digits and single hyphens, at most 63 characters', {
        input: name,
      });
    }
    const existing = this.db.prepare('SELECT name FROM labeling_jobs WHERE name = ?').get(name);
    if (existing) return this.getJob(name);
    const candidates = await this.eligible(spec.asOf, spec.batch);
    let picked: StoredLabelRecord[] = [];
    const tx = this.db.transaction(() => {
      if (this.db.prepare('SELECT 1 FROM labeling_jobs WHERE name = ?').get(name)) return;
      // Re-check inside the transaction: another process may have put some of them in a job meanwhile.
      const busy = new Set(
        (this.db.prepare('SELECT DISTINCT source_ref FROM labeling_items WHERE verdict IS NULL').all() as { source_ref: string }[]).map(
          (r) => r.source_ref,
        ),
      );
      picked = candidates.filter((r) => !busy.has(r.source_ref)).slice(0, cap);
      this.db
        .prepare(
          `INSERT INTO labeling_jobs (name, created, classes, instructions, workers_per_image, cap, backend, iou_threshold, min_votes, max_boxes)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        )
        .run(
          name,
          now,
          JSON.stringify(classes),
          spec.instructions ?? '',
          wpi,
          cap,
          spec.backend ?? 'local',
          iouThreshold,
          spec.minVotes ?? null,
          maxBoxes,
        );
      const ins = this.db.prepare('INSERT INTO labeling_items (job, source_ref, ord, record) VALUES (?, ?, ?, ?)');
      picked.forEach((r, i) => {
        const { seq: _seq, ...rec } = r;
        ins.run(name, r.source_ref, i, JSON.stringify(rec));
      });
    });
    tx.immediate();
    return this.getJob(name);
  }

  private itemRecord(job: string, ref: string): { record: LabelRecord; consolidated: string | null; verdict: string | null } {
    const row = this.db
      .prepare('SELECT record, consolidated, verdict FROM labeling_items WHERE job = ? AND source_ref = ?')
      .get(job, ref) as { record: string; consolidated: string | null; verdict: string | null } | undefined;
    if (!row) throw new LoupeError('LABELING_NO_ITEM', `image is not part of job ${job}`, { input: ref });
    return { record: JSON.parse(row.record), consolidated: row.consolidated, verdict: row.verdict };
  }

  private taskOf(job: JobRow, ref: string, record: string, remaining: number, submitted?: GtBox[]): Task {
    const rec = JSON.parse(record) as LabelRecord;
    return {
      job: job.name,
      sourceRef: ref,
      width: rec.image_width,
      height: rec.image_height,
      classes: JSON.parse(job.classes),
      instructions: job.instructions,
      preAnnotations: rec.annotations,
      device: rec.device,
      captureTime: rec.capture_time,
      modelVersion: rec.model_version,
      meta: rec.meta,
      remaining,
      ...(submitted ? { submitted } : {}),
    };
  }

  private openRows(jobName: string, worker: string) {
    return this.db
      .prepare(
        `SELECT i.source_ref, i.record,
                (SELECT COUNT(*) FROM labeling_annotations a WHERE a.job = i.job AND a.source_ref = i.source_ref) AS done,
                (SELECT COUNT(*) FROM labeling_leases l WHERE l.job = i.job AND l.source_ref = i.source_ref AND l.worker <> @worker) AS leased,
                EXISTS (SELECT 1 FROM labeling_annotations a WHERE a.job = i.job AND a.source_ref = i.source_ref AND a.worker = @worker) AS mine
         FROM labeling_items i WHERE i.job = @job AND i.consolidated IS NULL ORDER BY i.ord`,
      )
      .all({ job: jobName, worker }) as { source_ref: string; record: string; done: number; leased: number; mine: number }[];
  }

  private lease(jobName: string, ref: string, worker: string, now: number): void {
    this.db
      .prepare('INSERT OR REPLACE INTO labeling_leases (job, source_ref, worker, expires) VALUES (?, ?, ?, ?)')
      .run(jobName, ref, worker, now + this.leaseSeconds);
  }

  /** The next image this worker should label, leased to them; null when they have none left. */
  nextTask(jobName: string, worker: string, opts: { skip?: ReadonlySet<string> } = {}): Task | null {
    const job = this.jobRow(jobName);
    const now = this.now();
    const pick = this.db.transaction((): Task | null => {
      this.db.prepare('DELETE FROM labeling_leases WHERE expires < ?').run(now);
      const rows = this.openRows(jobName, worker);
      const open = rows.filter((r) => !r.mine && r.done < job.workers_per_image && !opts.skip?.has(r.source_ref));
      const free = open.find((r) => r.done + r.leased < job.workers_per_image);
      if (!free) return null;
      this.lease(jobName, free.source_ref, worker, now);
      return this.taskOf(job, free.source_ref, free.record, open.length);
    });
    return pick();
  }

  /**
   * One named image for this worker (the task list, going back): leased to them when they may
   * label it; with their own boxes when they labelled it and may still amend it. Throws
   * LABEL_NOT_AVAILABLE saying why otherwise.
   */
  taskFor(jobName: string, ref: string, worker: string): Task {
    const job = this.jobRow(jobName);
    const now = this.now();
    const input = `${jobName}: ${ref}`;
    return this.db.transaction((): Task => {
      this.db.prepare('DELETE FROM labeling_leases WHERE expires < ?').run(now);
      const rows = this.openRows(jobName, worker);
      const row = rows.find((r) => r.source_ref === ref);
      if (!row) {
        this.itemRecord(jobName, ref); // LABELING_NO_ITEM when it is not in the job at all
        throw new LoupeError('LABEL_NOT_AVAILABLE', 'this image already has all its labels', { input });
      }
      const remaining = rows.filter((r) => !r.mine && r.done < job.workers_per_image).length;
      if (row.mine) {
        const mine = this.db
          .prepare('SELECT boxes FROM labeling_annotations WHERE job = ? AND source_ref = ? AND worker = ?')
          .get(jobName, ref, worker) as { boxes: string };
        if (row.done >= job.workers_per_image)
          throw new LoupeError('LABEL_NOT_AVAILABLE', 'this image has all its labels; yours can no longer be changed', { input });
        return this.taskOf(job, ref, row.record, remaining, JSON.parse(mine.boxes) as GtBox[]);
      }
      if (row.done + row.leased >= job.workers_per_image)
        throw new LoupeError('LABEL_NOT_AVAILABLE', 'other workers are labelling this image', { input });
      this.lease(jobName, ref, worker, now);
      return this.taskOf(job, ref, row.record, remaining);
    })();
  }

  /** Give a leased image back (skipped), so another worker may take it at once. */
  releaseLease(jobName: string, ref: string, worker: string): void {
    this.jobRow(jobName);
    this.db.prepare('DELETE FROM labeling_leases WHERE job = ? AND source_ref = ? AND worker = ?').run(jobName, ref, worker);
  }

  /** Every image of the job as this worker sees it (the UI's task list). */
  itemsFor(jobName: string, worker: string): ItemView[] {
    const job = this.jobRow(jobName);
    const now = this.now();
    const rows = this.db
      .prepare(
        `SELECT i.source_ref, i.ord, i.consolidated IS NOT NULL AS consolidated, i.verdict,
                (SELECT COUNT(*) FROM labeling_annotations a WHERE a.job = i.job AND a.source_ref = i.source_ref) AS done,
                (SELECT COUNT(*) FROM labeling_leases l WHERE l.job = i.job AND l.source_ref = i.source_ref AND l.worker <> @worker AND l.expires >= @now) AS leased,
                EXISTS (SELECT 1 FROM labeling_annotations a WHERE a.job = i.job AND a.source_ref = i.source_ref AND a.worker = @worker) AS mine
         FROM labeling_items i WHERE i.job = @job ORDER BY i.ord`,
      )
      .all({ job: jobName, worker, now }) as {
      source_ref: string;
      ord: number;
      consolidated: number;
      verdict: string | null;
      done: number;
      leased: number;
      mine: number;
    }[];
    return rows.map((r) => {
      const full = r.done >= job.workers_per_image;
      const state: ItemView['state'] =
        r.verdict === 'APPROVED'
          ? 'approved'
          : r.verdict === 'REJECTED'
            ? 'rejected'
            : r.consolidated
              ? 'awaiting-verification'
              : full
                ? 'consolidating'
                : r.mine
                  ? 'labelled'
                  : r.done + r.leased >= job.workers_per_image
                    ? 'taken'
                    : 'to-label';
      return { sourceRef: r.source_ref, ord: r.ord, state, labels: r.done, mine: Boolean(r.mine) };
    });
  }

  /** Check and clip a worker's boxes against the image and the job's classes. */
  private cleanBoxes(boxes: unknown, rec: LabelRecord, classes: string[], input: string): GtBox[] {
    if (!Array.isArray(boxes)) throw new LoupeError('LABEL_BAD_BOX', 'boxes must be a list', { input });
    return boxes.map((b, i) => {
      if (typeof b !== 'object' || b === null || Array.isArray(b))
        throw new LoupeError('LABEL_BAD_BOX', `box ${i} must be an object {class_id, left, top, width, height}`, { input });
      const o = b as Partial<GtBox>;
      const vals = [o.class_id, o.left, o.top, o.width, o.height];
      if (vals.some((v) => typeof v !== 'number' || !Number.isFinite(v))) {
        throw new LoupeError('LABEL_BAD_BOX', `box ${i}: class_id, left, top, width, height must be numbers`, { input });
      }
      if (!Number.isInteger(o.class_id) || o.class_id! < 0 || o.class_id! >= classes.length) {
        throw new LoupeError('LABEL_BAD_BOX', `box ${i}: class_id ${o.class_id} is not one of the job's ${classes.length} classes`, {
          input,
        });
      }
      const box = gtToBox({ class_id: o.class_id!, left: o.left!, top: o.top!, width: o.width!, height: o.height! });
      if (box.x1 < -1 || box.y1 < -1 || box.x2 > rec.image_width + 1 || box.y2 > rec.image_height + 1) {
        throw new LoupeError('LABEL_BAD_BOX', `box ${i} lies outside the ${rec.image_width}x${rec.image_height} image`, { input });
      }
      const clipped = clipBox(box, rec.image_width, rec.image_height);
      if (!clipped || o.width! <= 0 || o.height! <= 0) throw new LoupeError('LABEL_BAD_BOX', `box ${i} has no area`, { input });
      return boxToGt(clipped);
    });
  }

  /**
   * Record one worker's boxes for an image (`replace`: amend their earlier submission, allowed
   * until the image has all its labels). When the image then has all its labels, consolidation
   * is scheduled (off this call); `complete` says so.
   */
  async submit(
    jobName: string,
    ref: string,
    worker: string,
    boxes: unknown,
    opts: { replace?: boolean } = {},
  ): Promise<{ complete: boolean }> {
    const job = this.jobRow(jobName);
    const classes = JSON.parse(job.classes) as string[];
    const item = this.itemRecord(jobName, ref);
    const input = `${jobName}: ${ref} (worker ${worker})`;
    if (!worker) throw new LoupeError('LABEL_BAD_WORKER', 'worker id is empty', { input });
    const maxBoxes = job.max_boxes ?? DEFAULT_MAX_BOXES;
    // Counted before anything else is done with them: a huge list costs nothing but this check.
    if (Array.isArray(boxes) && boxes.length > maxBoxes) {
      throw new LoupeError(
        'LABEL_TOO_MANY_BOXES',
        `${boxes.length} boxes for one image; this job takes at most ${maxBoxes} (labels job create --max-boxes)`,
        { input },
      );
    }
    if (item.consolidated !== null) throw new LoupeError('LABEL_DONE', 'this image already has all its labels', { input });
    const clean = this.cleanBoxes(boxes, item.record, classes, input);
    const now = this.now();
    let complete = false;
    this.db
      .transaction(() => {
        const prior = this.db.prepare('SELECT worker FROM labeling_annotations WHERE job = ? AND source_ref = ?').all(jobName, ref) as {
          worker: string;
        }[];
        const mine = prior.some((p) => p.worker === worker);
        if (prior.length >= job.workers_per_image) throw new LoupeError('LABEL_DONE', 'this image already has all its labels', { input });
        if (mine && !opts.replace) throw new LoupeError('LABEL_DUPLICATE', 'this worker already labelled this image', { input });
        if (mine) {
          this.db
            .prepare('UPDATE labeling_annotations SET boxes = ?, submitted = ? WHERE job = ? AND source_ref = ? AND worker = ?')
            .run(JSON.stringify(clean), now, jobName, ref, worker);
        } else {
          this.db
            .prepare('INSERT INTO labeling_annotations (job, source_ref, worker, boxes, submitted) VALUES (?, ?, ?, ?, ?)')
            .run(jobName, ref, worker, JSON.stringify(clean), now);
        }
        this.db.prepare('DELETE FROM labeling_leases WHERE job = ? AND source_ref = ? AND worker = ?').run(jobName, ref, worker);
        complete = prior.length + (mine ? 0 : 1) >= job.workers_per_image;
      })
      .immediate();
    if (complete) this.scheduleSettle();
    return { complete };
  }

  /** Images of a job (or of every job) with all their labels and no consolidation yet. */
  private pendingConsolidation(jobName?: string): { job: string; source_ref: string }[] {
    return this.db
      .prepare(
        `SELECT i.job, i.source_ref FROM labeling_items i JOIN labeling_jobs j ON j.name = i.job
         WHERE i.consolidated IS NULL ${jobName ? 'AND i.job = @job' : ''}
           AND (SELECT COUNT(*) FROM labeling_annotations a WHERE a.job = i.job AND a.source_ref = i.source_ref) >= j.workers_per_image
         ORDER BY i.job, i.ord`,
      )
      .all(jobName ? { job: jobName } : {}) as { job: string; source_ref: string }[];
  }

  private scheduleSettle(): void {
    this.settle().catch((e) =>
      this.log.error({ err: errorMessage(e) }, 'labelling: consolidation failed (retried at the next submit or settle)'),
    );
  }

  /**
   * Consolidate every image that has all its labels and is not consolidated yet (also what a
   * crash left behind). One pass at a time; a call during a pass makes another pass follow.
   */
  settle(): Promise<void> {
    if (this.settling) {
      this.again = true;
      return this.settling;
    }
    const run = async () => {
      do {
        this.again = false;
        for (const p of this.pendingConsolidation()) await this.consolidateItem(p.job, p.source_ref);
      } while (this.again);
    };
    this.settling = run().finally(() => {
      this.settling = undefined;
    });
    return this.settling;
  }

  private async consolidateItem(jobName: string, ref: string): Promise<void> {
    const job = this.jobRow(jobName);
    const item = this.itemRecord(jobName, ref);
    if (item.consolidated !== null) return;
    const all = (
      this.db
        .prepare('SELECT worker, boxes FROM labeling_annotations WHERE job = ? AND source_ref = ? ORDER BY worker')
        .all(jobName, ref) as { worker: string; boxes: string }[]
    ).map((p) => ({ worker: p.worker, boxes: JSON.parse(p.boxes) as GtBox[] }));
    const t0 = performance.now();
    const boxes = await this.consolidator.run(
      all.map((a) => ({ worker: a.worker, boxes: a.boxes.map(gtToBox) })),
      { iouThreshold: job.iou_threshold, minVotes: job.min_votes ?? undefined },
    );
    const consolidated = boxes.map((b) => boxToGt(b, job.workers_per_image > 1 ? b.confidence : undefined));
    const record: LabelRecord = {
      ...item.record,
      annotations: consolidated,
      event_time: this.now(),
      labeling_job: labelingJobRef(jobName),
      status: 'PENDING',
      meta: { ...item.record.meta, workers: all.map((a) => a.worker).sort() },
    };
    let wrote = false;
    await this.commit(() => {
      // Another process (the server beside a CLI) may have consolidated it meanwhile.
      const r = this.db
        .prepare('UPDATE labeling_items SET consolidated = ? WHERE job = ? AND source_ref = ? AND consolidated IS NULL')
        .run(JSON.stringify(consolidated), jobName, ref);
      wrote = r.changes > 0;
      return wrote;
    }, record);
    if (wrote)
      this.log.info(
        {
          job: jobName,
          sourceRef: ref,
          workers: all.length,
          boxesIn: all.reduce((n, a) => n + a.boxes.length, 0),
          boxesOut: consolidated.length,
          ms: Math.round(performance.now() - t0),
        },
        'labels consolidated',
      );
  }

  /**
   * Record labels consolidated elsewhere (a Ground Truth job's ACS output) for an image of the
   * job: the same PENDING record as after a local consolidation. Idempotent per image.
   */
  async recordConsolidated(jobName: string, ref: string, boxes: GtBox[], meta: Record<string, unknown> = {}): Promise<boolean> {
    const job = this.jobRow(jobName);
    const item = this.itemRecord(jobName, ref);
    if (item.consolidated !== null) return false;
    const clean = this.cleanBoxes(boxes, item.record, JSON.parse(job.classes) as string[], `${jobName}: ${ref}`).map((b, i) =>
      boxes[i]?.confidence === undefined ? b : { ...b, confidence: boxes[i]!.confidence },
    );
    const record: LabelRecord = {
      ...item.record,
      annotations: clean,
      event_time: this.now(),
      labeling_job: labelingJobRef(jobName),
      status: 'PENDING',
      meta: { ...item.record.meta, ...meta },
    };
    await this.commit(() => {
      this.db
        .prepare('UPDATE labeling_items SET consolidated = ? WHERE job = ? AND source_ref = ?')
        .run(JSON.stringify(clean), jobName, ref);
    }, record);
    return true;
  }

  /**
   * Apply `mark` (job tables) and append `record` to the store, atomically when they share a
   * database. `mark` may return false: nothing to record (someone else got there first).
   */
  private async commit(mark: () => void | boolean, record: LabelRecord | null): Promise<void> {
    if (this.shared && this.store instanceof SqliteLabelStore) {
      const store = this.store;
      this.db
        .transaction(() => {
          if (mark() !== false && record) store.appendSync([record]);
        })
        .immediate();
      return;
    }
    if (record) {
      const hist = await this.store.history(record.source_ref);
      if (!hist.some((h) => h.labeling_job === record.labeling_job && h.status === record.status)) await this.store.append([record]);
    }
    this.db.transaction(mark)();
  }

  /**
   * Take an image out of a job before anyone labelled it (e.g. nobody can label it); it becomes
   * eligible for a later job again.
   */
  release(jobName: string, ref: string): void {
    this.jobRow(jobName);
    const item = this.itemRecord(jobName, ref);
    const n = (
      this.db.prepare('SELECT COUNT(*) AS n FROM labeling_annotations WHERE job = ? AND source_ref = ?').get(jobName, ref) as { n: number }
    ).n;
    if (n > 0 || item.consolidated !== null)
      throw new LoupeError('LABELING_RELEASE', 'image already has labels in this job', { input: `${jobName}: ${ref}` });
    this.db.transaction(() => {
      this.db.prepare('DELETE FROM labeling_leases WHERE job = ? AND source_ref = ?').run(jobName, ref);
      this.db.prepare('DELETE FROM labeling_items WHERE job = ? AND source_ref = ?').run(jobName, ref);
    })();
  }

  private labellers(jobName: string, ref: string): string[] {
    return (
      this.db.prepare('SELECT worker FROM labeling_annotations WHERE job = ? AND source_ref = ? ORDER BY worker').all(jobName, ref) as {
        worker: string;
      }[]
    ).map((w) => w.worker);
  }

  /** The next consolidated image waiting for a verdict that this verifier did not label; null when none. */
  nextVerification(jobName: string, verifier: string, opts: { skip?: ReadonlySet<string>; ref?: string } = {}): VerifyTask | null {
    const job = this.jobRow(jobName);
    const rows = (
      this.db
        .prepare(
          `SELECT i.source_ref, i.record, i.consolidated FROM labeling_items i
           WHERE i.job = ? AND i.consolidated IS NOT NULL AND i.verdict IS NULL
             AND NOT EXISTS (SELECT 1 FROM labeling_annotations a WHERE a.job = i.job AND a.source_ref = i.source_ref AND a.worker = ?)
           ORDER BY i.ord`,
        )
        .all(jobName, verifier) as { source_ref: string; record: string; consolidated: string }[]
    ).filter((r) => !opts.skip?.has(r.source_ref));
    const first = opts.ref === undefined ? rows[0] : rows.find((r) => r.source_ref === opts.ref);
    if (!first) return null;
    const rec = JSON.parse(first.record) as LabelRecord;
    return {
      job: jobName,
      sourceRef: first.source_ref,
      width: rec.image_width,
      height: rec.image_height,
      classes: JSON.parse(job.classes),
      instructions: job.instructions,
      annotations: JSON.parse(first.consolidated),
      workers: this.labellers(jobName, first.source_ref),
      meta: rec.meta,
      remaining: rows.length,
    };
  }

  /** Approve, or reject with a reason, one consolidated image: an APPROVED/REJECTED record. Its labellers may not. */
  async verify(jobName: string, ref: string, v: { verdict: 'approve' | 'reject'; reason?: string; verifier: string }): Promise<void> {
    this.jobRow(jobName);
    const item = this.itemRecord(jobName, ref);
    const input = `${jobName}: ${ref}`;
    if (v.verdict !== 'approve' && v.verdict !== 'reject')
      throw new LoupeError('VERIFY_BAD', `verdict must be approve or reject, got ${JSON.stringify(v.verdict)}`, { input });
    if (!v.verifier) throw new LoupeError('VERIFY_BAD', 'verifier id is empty', { input });
    if (item.consolidated === null) throw new LoupeError('VERIFY_NOT_READY', 'this image has not been labelled yet', { input });
    if (item.verdict !== null) throw new LoupeError('VERIFY_DONE', `this image was already verified (${item.verdict})`, { input });
    const reason = (v.reason ?? '').trim();
    if (v.verdict === 'reject' && !reason) throw new LoupeError('VERIFY_NO_REASON', 'a rejection needs a reason', { input });
    if (reason.length > 2000) throw new LoupeError('VERIFY_BAD', `the reason is ${reason.length} characters; at most 2000`, { input });
    const workers = this.labellers(jobName, ref);
    if (workers.includes(v.verifier)) {
      throw new LoupeError('VERIFY_OWN_LABEL', `${v.verifier} labelled this image and may not verify it; another verifier must`, { input });
    }
    const status = v.verdict === 'approve' ? 'APPROVED' : 'REJECTED';
    const record: LabelRecord = {
      ...item.record,
      annotations: JSON.parse(item.consolidated),
      event_time: this.now(),
      labeling_job: labelingJobRef(jobName),
      status,
      meta: { ...item.record.meta, workers, verifier: v.verifier, ...(reason ? { reason } : {}) },
    };
    await this.commit(() => {
      const r = this.db
        .prepare('UPDATE labeling_items SET verdict = ?, reason = ?, verifier = ? WHERE job = ? AND source_ref = ? AND verdict IS NULL')
        .run(status, reason || null, v.verifier, jobName, ref);
      if (r.changes === 0) throw new LoupeError('VERIFY_DONE', 'this image was already verified', { input });
    }, record);
  }

  items(jobName: string): ItemRow[] {
    this.jobRow(jobName);
    const rows = this.db.prepare('SELECT * FROM labeling_items WHERE job = ? ORDER BY ord').all(jobName) as {
      source_ref: string;
      record: string;
      consolidated: string | null;
      verdict: 'APPROVED' | 'REJECTED' | null;
      reason: string | null;
    }[];
    const ann = this.db.prepare('SELECT worker, boxes FROM labeling_annotations WHERE job = ? AND source_ref = ? ORDER BY worker');
    return rows.map((r) => ({
      sourceRef: r.source_ref,
      record: JSON.parse(r.record),
      annotations: (ann.all(jobName, r.source_ref) as { worker: string; boxes: string }[]).map((a) => ({
        worker: a.worker,
        boxes: JSON.parse(a.boxes),
      })),
      consolidated: r.consolidated ? JSON.parse(r.consolidated) : null,
      verdict: r.verdict,
      reason: r.reason,
    }));
  }

  /** Whether an image is part of any job (the UI server serves only such images). */
  hasItem(ref: string): boolean {
    return Boolean(this.db.prepare('SELECT 1 FROM labeling_items WHERE source_ref = ? LIMIT 1').get(ref));
  }

  /** Stop the consolidation thread (outstanding work stays in the database for the next settle) and close a private database. */
  close(): void {
    void this.consolidator.close();
    if (!this.shared && this.db.open) this.db.close();
  }
}
