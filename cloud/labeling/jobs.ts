import type Database from 'better-sqlite3';
import { LoupeError } from '../../lib/errors.js';
import { openSqlite } from '../../lib/sqlite.js';
import { LABEL_STORE_SCHEMA } from '../labelstore/schema.js';
import { SqliteLabelStore } from '../labelstore/sqlite.js';
import { itemState } from '../labelstore/state.js';
import type { LabelStore, StoredLabelRecord } from '../labelstore/types.js';
import type { LabelRecord } from '../../contracts/label-record.js';
import type { GtBox } from '../../contracts/box.js';
import { boxToGt, clipBox, gtToBox } from '../../contracts/box.js';
import { consolidate } from './consolidate.js';

/**
 * Labelling jobs on the embedded backend: a batch of images that need labels, the classes and
 * instructions, how many workers label each image and a cap on the batch size. Workers (people
 * in the web UI, or the simulated workforce) take tasks; when an image has its workers' labels
 * they are consolidated (consolidate.ts) and recorded in the label store as PENDING with the
 * job's name; a verifier then approves (APPROVED) or rejects with a reason (REJECTED, the image
 * becomes eligible for a later job).
 *
 *   const lab = Labeling.open(store, dbPath?)   // SQLite store: job tables live in its database
 *   await lab.createJob({ name?, classes, instructions, workersPerImage, cap, batch?, asOf? })
 *   lab.nextTask(job, worker) → Task | null      // leases the task to the worker for leaseSeconds
 *   await lab.submit(job, sourceRef, worker, boxes)
 *   lab.nextVerification(job, verifier) → VerifyTask | null
 *   await lab.verify(job, sourceRef, { verdict: 'approve' | 'reject', reason?, verifier })
 *   lab.getJob(job) / lab.listJobs() / lab.items(job)
 *
 * Crash safety: with the SQLite store, each submission/verdict and its label record commit in
 * one transaction. With another store the record is appended first and the job row marked
 * after; a retried step finds the record already there (same job + status) and does not
 * append it again.
 */

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
  counts: { items: number; annotations: number; consolidated: number; approved: number; rejected: number };
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
}

export const labelingJobRef = (name: string): string => `labeling-job/${name}`;

export class Labeling {
  readonly db: Database.Database;
  private readonly shared: boolean;
  private readonly now: () => number;
  private readonly leaseSeconds: number;

  constructor(
    readonly store: LabelStore,
    opts: { dbPath?: string; now?: () => number; leaseSeconds?: number } = {},
  ) {
    this.now = opts.now ?? (() => Date.now() / 1000);
    this.leaseSeconds = opts.leaseSeconds ?? 300;
    if (store instanceof SqliteLabelStore && !opts.dbPath) {
      this.db = store.db;
      this.shared = true;
    } else {
      if (!opts.dbPath) throw new LoupeError('LABELING_NO_DB', 'a labelling database path is needed when the label store is not SQLite');
      // Its own file with the label database's schema (its label_records table stays empty).
      this.db = openSqlite(opts.dbPath, LABEL_STORE_SCHEMA);
      this.shared = false;
    }
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
    const counts = { items: c.items, annotations: a, consolidated: c.consolidated ?? 0, approved: c.approved ?? 0, rejected: c.rejected ?? 0 };
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
      counts,
      status,
    };
  }

  listJobs(): Job[] {
    return (this.db.prepare('SELECT name FROM labeling_jobs ORDER BY created, name').all() as { name: string }[]).map((r) => this.getJob(r.name));
  }

  /** Images that need labels as of T: latest record unlabelled or rejected, and not in an unfinished job item. */
  async eligible(asOf?: number, batch?: string[]): Promise<StoredLabelRecord[]> {
    const latest = await this.store.latest({ asOf, sourceRefs: batch });
    const busy = new Set(
      (this.db.prepare('SELECT DISTINCT source_ref FROM labeling_items WHERE verdict IS NULL').all() as { source_ref: string }[]).map((r) => r.source_ref),
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
    if (!Number.isInteger(wpi) || wpi < 1 || wpi > 9) throw new LoupeError('LABELING_BAD_JOB', `workersPerImage must be 1..9, got ${wpi}`, { input: 'workersPerImage' });
    const cap = spec.cap ?? 100;
    if (!Number.isInteger(cap) || cap < 1) throw new LoupeError('LABELING_BAD_JOB', `cap must be a positive integer, got ${cap}`, { input: 'cap' });
    const iouThreshold = spec.iouThreshold ?? 0.5;
    if (!(iouThreshold > 0 && iouThreshold <= 1)) throw new LoupeError('LABELING_BAD_JOB', `iouThreshold must be in (0, 1], got ${iouThreshold}`, { input: 'iouThreshold' });
    if (spec.minVotes !== undefined && (!Number.isInteger(spec.minVotes) || spec.minVotes < 1 || spec.minVotes > wpi)) {
      throw new LoupeError('LABELING_BAD_JOB', `minVotes must be 1..workersPerImage (${wpi}), got ${spec.minVotes}`, { input: 'minVotes' });
    }
    const now = this.now();
    const name = spec.name ?? `loupe-${new Date(now * 1000).toISOString().replace(/[-:T]/g, '').slice(0, 14)}-${Math.random().toString(16).slice(2, 8)}`;
    if (!/^[a-zA-Z0-9](-*[a-zA-Z0-9])*$/.test(name) || name.length > 63) {
      // Ground Truth's LabelingJobName rule, so a job can move to that backend unchanged.
      throw new LoupeError('LABELING_BAD_JOB', 'job name must be letters, digits and single hyphens, at most 63 characters', { input: name });
    }
    const existing = this.db.prepare('SELECT name FROM labeling_jobs WHERE name = ?').get(name);
    if (existing) return this.getJob(name);
    const candidates = await this.eligible(spec.asOf, spec.batch);
    let picked: StoredLabelRecord[] = [];
    const tx = this.db.transaction(() => {
      if (this.db.prepare('SELECT 1 FROM labeling_jobs WHERE name = ?').get(name)) return;
      // Re-check inside the transaction: another process may have put some of them in a job meanwhile.
      const busy = new Set(
        (this.db.prepare('SELECT DISTINCT source_ref FROM labeling_items WHERE verdict IS NULL').all() as { source_ref: string }[]).map((r) => r.source_ref),
      );
      picked = candidates.filter((r) => !busy.has(r.source_ref)).slice(0, cap);
      this.db
        .prepare(
          `INSERT INTO labeling_jobs (name, created, classes, instructions, workers_per_image, cap, backend, iou_threshold, min_votes)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        )
        .run(name, now, JSON.stringify(classes), spec.instructions ?? '', wpi, cap, spec.backend ?? 'local', iouThreshold, spec.minVotes ?? null);
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
    const row = this.db.prepare('SELECT record, consolidated, verdict FROM labeling_items WHERE job = ? AND source_ref = ?').get(job, ref) as
      | { record: string; consolidated: string | null; verdict: string | null }
      | undefined;
    if (!row) throw new LoupeError('LABELING_NO_ITEM', `image is not part of job ${job}`, { input: ref });
    return { record: JSON.parse(row.record), consolidated: row.consolidated, verdict: row.verdict };
  }

  /** The next image this worker should label, leased to them; null when they have none left. */
  nextTask(jobName: string, worker: string, opts: { skip?: ReadonlySet<string> } = {}): Task | null {
    const job = this.jobRow(jobName);
    const now = this.now();
    const pick = this.db.transaction((): Task | null => {
      this.db.prepare('DELETE FROM labeling_leases WHERE expires < ?').run(now);
      const rows = this.db
        .prepare(
          `SELECT i.source_ref, i.record,
                  (SELECT COUNT(*) FROM labeling_annotations a WHERE a.job = i.job AND a.source_ref = i.source_ref) AS done,
                  (SELECT COUNT(*) FROM labeling_leases l WHERE l.job = i.job AND l.source_ref = i.source_ref AND l.worker <> @worker) AS leased,
                  EXISTS (SELECT 1 FROM labeling_annotations a WHERE a.job = i.job AND a.source_ref = i.source_ref AND a.worker = @worker) AS mine
           FROM labeling_items i WHERE i.job = @job AND i.consolidated IS NULL ORDER BY i.ord`,
        )
        .all({ job: jobName, worker }) as { source_ref: string; record: string; done: number; leased: number; mine: number }[];
      const open = rows.filter((r) => !r.mine && r.done < job.workers_per_image && !opts.skip?.has(r.source_ref));
      const free = open.find((r) => r.done + r.leased < job.workers_per_image);
      if (!free) return null;
      this.db
        .prepare('INSERT OR REPLACE INTO labeling_leases (job, source_ref, worker, expires) VALUES (?, ?, ?, ?)')
        .run(jobName, free.source_ref, worker, now + this.leaseSeconds);
      const rec = JSON.parse(free.record) as LabelRecord;
      return {
        job: jobName,
        sourceRef: free.source_ref,
        width: rec.image_width,
        height: rec.image_height,
        classes: JSON.parse(job.classes),
        instructions: job.instructions,
        preAnnotations: rec.annotations,
        device: rec.device,
        captureTime: rec.capture_time,
        modelVersion: rec.model_version,
        meta: rec.meta,
        remaining: open.length,
      };
    });
    return pick();
  }

  /** Check and clip a worker's boxes against the image and the job's classes. */
  private cleanBoxes(boxes: unknown, rec: LabelRecord, classes: string[], input: string): GtBox[] {
    if (!Array.isArray(boxes)) throw new LoupeError('LABEL_BAD_BOX', 'boxes must be a list', { input });
    return boxes.map((b, i) => {
      const o = b as Partial<GtBox>;
      const vals = [o.class_id, o.left, o.top, o.width, o.height];
      if (vals.some((v) => typeof v !== 'number' || !Number.isFinite(v))) {
        throw new LoupeError('LABEL_BAD_BOX', `box ${i}: class_id, left, top, width, height must be numbers`, { input });
      }
      if (!Number.isInteger(o.class_id) || o.class_id! < 0 || o.class_id! >= classes.length) {
        throw new LoupeError('LABEL_BAD_BOX', `box ${i}: class_id ${o.class_id} is not one of the job's ${classes.length} classes`, { input });
      }
      const box = gtToBox(o as GtBox);
      if (box.x1 < -1 || box.y1 < -1 || box.x2 > rec.image_width + 1 || box.y2 > rec.image_height + 1) {
        throw new LoupeError('LABEL_BAD_BOX', `box ${i} lies outside the ${rec.image_width}x${rec.image_height} image`, { input });
      }
      const clipped = clipBox(box, rec.image_width, rec.image_height);
      if (!clipped || o.width! <= 0 || o.height! <= 0) throw new LoupeError('LABEL_BAD_BOX', `box ${i} has no area`, { input });
      return boxToGt(clipped);
    });
  }

  /**
   * Record one worker's boxes for an image. When the image then has its workers' labels they
   * are consolidated and a PENDING record with the job's name goes to the label store.
   */
  async submit(jobName: string, ref: string, worker: string, boxes: unknown): Promise<{ consolidated: GtBox[] | null }> {
    const job = this.jobRow(jobName);
    const classes = JSON.parse(job.classes) as string[];
    const item = this.itemRecord(jobName, ref);
    const input = `${jobName}: ${ref} (worker ${worker})`;
    if (!worker) throw new LoupeError('LABEL_BAD_WORKER', 'worker id is empty', { input });
    if (item.consolidated !== null) throw new LoupeError('LABEL_DONE', 'this image already has all its labels', { input });
    const clean = this.cleanBoxes(boxes, item.record, classes, input);
    const now = this.now();
    const prior = this.db.prepare('SELECT worker, boxes FROM labeling_annotations WHERE job = ? AND source_ref = ?').all(jobName, ref) as { worker: string; boxes: string }[];
    if (prior.some((p) => p.worker === worker)) throw new LoupeError('LABEL_DUPLICATE', 'this worker already labelled this image', { input });
    if (prior.length >= job.workers_per_image) throw new LoupeError('LABEL_DONE', 'this image already has all its labels', { input });
    const all = [...prior.map((p) => ({ worker: p.worker, boxes: JSON.parse(p.boxes) as GtBox[] })), { worker, boxes: clean }];
    let consolidated: GtBox[] | null = null;
    let record: LabelRecord | null = null;
    if (all.length >= job.workers_per_image) {
      consolidated = consolidate(
        all.map((a) => ({ worker: a.worker, boxes: a.boxes.map(gtToBox) })),
        { iouThreshold: job.iou_threshold, minVotes: job.min_votes ?? undefined },
      ).map((b) => boxToGt(b, job.workers_per_image > 1 ? b.confidence : undefined));
      record = {
        ...item.record,
        annotations: consolidated,
        event_time: now,
        labeling_job: labelingJobRef(jobName),
        status: 'PENDING',
        meta: { ...item.record.meta, workers: all.map((a) => a.worker).sort() },
      };
    }
    const mark = () => {
      this.db.prepare('INSERT INTO labeling_annotations (job, source_ref, worker, boxes, submitted) VALUES (?, ?, ?, ?, ?)').run(jobName, ref, worker, JSON.stringify(clean), now);
      this.db.prepare('DELETE FROM labeling_leases WHERE job = ? AND source_ref = ? AND worker = ?').run(jobName, ref, worker);
      if (consolidated) this.db.prepare('UPDATE labeling_items SET consolidated = ? WHERE job = ? AND source_ref = ?').run(JSON.stringify(consolidated), jobName, ref);
    };
    await this.commit(mark, record);
    return { consolidated };
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
      this.db.prepare('UPDATE labeling_items SET consolidated = ? WHERE job = ? AND source_ref = ?').run(JSON.stringify(clean), jobName, ref);
    }, record);
    return true;
  }

  /** Apply `mark` (job tables) and append `record` to the store, atomically when they share a database. */
  private async commit(mark: () => void, record: LabelRecord | null): Promise<void> {
    if (this.shared && this.store instanceof SqliteLabelStore) {
      const store = this.store;
      this.db.transaction(() => {
        mark();
        if (record) store.appendSync([record]);
      })();
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
    const n = (this.db.prepare('SELECT COUNT(*) AS n FROM labeling_annotations WHERE job = ? AND source_ref = ?').get(jobName, ref) as { n: number }).n;
    if (n > 0 || item.consolidated !== null) throw new LoupeError('LABELING_RELEASE', 'image already has labels in this job', { input: `${jobName}: ${ref}` });
    this.db.transaction(() => {
      this.db.prepare('DELETE FROM labeling_leases WHERE job = ? AND source_ref = ?').run(jobName, ref);
      this.db.prepare('DELETE FROM labeling_items WHERE job = ? AND source_ref = ?').run(jobName, ref);
    })();
  }

  nextVerification(jobName: string, _verifier: string, opts: { skip?: ReadonlySet<string> } = {}): VerifyTask | null {
    const job = this.jobRow(jobName);
    const rows = (
      this.db
        .prepare('SELECT source_ref, record, consolidated FROM labeling_items WHERE job = ? AND consolidated IS NOT NULL AND verdict IS NULL ORDER BY ord')
        .all(jobName) as { source_ref: string; record: string; consolidated: string }[]
    ).filter((r) => !opts.skip?.has(r.source_ref));
    const first = rows[0];
    if (!first) return null;
    const rec = JSON.parse(first.record) as LabelRecord;
    const workers = (this.db.prepare('SELECT worker FROM labeling_annotations WHERE job = ? AND source_ref = ? ORDER BY worker').all(jobName, first.source_ref) as { worker: string }[]).map(
      (w) => w.worker,
    );
    return {
      job: jobName,
      sourceRef: first.source_ref,
      width: rec.image_width,
      height: rec.image_height,
      classes: JSON.parse(job.classes),
      instructions: job.instructions,
      annotations: JSON.parse(first.consolidated),
      workers,
      meta: rec.meta,
      remaining: rows.length,
    };
  }

  /** Approve, or reject with a reason, one consolidated image: an APPROVED/REJECTED record. */
  async verify(jobName: string, ref: string, v: { verdict: 'approve' | 'reject'; reason?: string; verifier: string }): Promise<void> {
    this.jobRow(jobName);
    const item = this.itemRecord(jobName, ref);
    const input = `${jobName}: ${ref}`;
    if (v.verdict !== 'approve' && v.verdict !== 'reject') throw new LoupeError('VERIFY_BAD', `verdict must be approve or reject, got ${JSON.stringify(v.verdict)}`, { input });
    if (!v.verifier) throw new LoupeError('VERIFY_BAD', 'verifier id is empty', { input });
    if (item.consolidated === null) throw new LoupeError('VERIFY_NOT_READY', 'this image has not been labelled yet', { input });
    if (item.verdict !== null) throw new LoupeError('VERIFY_DONE', `this image was already verified (${item.verdict})`, { input });
    const reason = (v.reason ?? '').trim();
    if (v.verdict === 'reject' && !reason) throw new LoupeError('VERIFY_NO_REASON', 'a rejection needs a reason', { input });
    const status = v.verdict === 'approve' ? 'APPROVED' : 'REJECTED';
    const workers = (this.db.prepare('SELECT worker FROM labeling_annotations WHERE job = ? AND source_ref = ? ORDER BY worker').all(jobName, ref) as { worker: string }[]).map((w) => w.worker);
    const record: LabelRecord = {
      ...item.record,
      annotations: JSON.parse(item.consolidated),
      event_time: this.now(),
      labeling_job: labelingJobRef(jobName),
      status,
      meta: { ...item.record.meta, workers, verifier: v.verifier, ...(reason ? { reason } : {}) },
    };
    await this.commit(() => {
      this.db.prepare('UPDATE labeling_items SET verdict = ?, reason = ?, verifier = ? WHERE job = ? AND source_ref = ?').run(status, reason || null, v.verifier, jobName, ref);
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
      annotations: (ann.all(jobName, r.source_ref) as { worker: string; boxes: string }[]).map((a) => ({ worker: a.worker, boxes: JSON.parse(a.boxes) })),
      consolidated: r.consolidated ? JSON.parse(r.consolidated) : null,
      verdict: r.verdict,
      reason: r.reason,
    }));
  }

  /** Whether an image is part of any job (the UI server serves only such images). */
  hasItem(ref: string): boolean {
    return Boolean(this.db.prepare('SELECT 1 FROM labeling_items WHERE source_ref = ? LIMIT 1').get(ref));
  }

  close(): void {
    if (!this.shared && this.db.open) this.db.close();
  }
}
