import type Database from 'better-sqlite3';
import { openSqlite } from '../../lib/sqlite.js';
import { LABEL_STORE_SCHEMA } from './schema.js';
import type { LabelStore, LatestQuery, StoredLabelRecord } from './types.js';
import type { LabelRecord, LabelStatus } from '../../contracts/label-record.js';
import { validateRecord } from '../../contracts/label-record.js';

/**
 * The embedded label store: one SQLite table, append-only (triggers refuse UPDATE and DELETE),
 * WAL mode so the labelling server, the loop and the CLI can share it (schema: ./schema.ts).
 *
 * Point-in-time read: the latest record per image with event_time ≤ T, ties broken by the
 * insertion sequence: ROW_NUMBER() OVER (PARTITION BY source_ref ORDER BY event_time DESC, seq DESC).
 */

interface Row {
  seq: number;
  source_ref: string;
  image_width: number;
  image_height: number;
  image_depth: number;
  annotations: string;
  event_time: number;
  labeling_job: string;
  status: LabelStatus;
  device: string;
  capture_time: number | null;
  model_version: string;
  meta: string;
}

function fromRow(r: Row): StoredLabelRecord {
  return { ...r, annotations: JSON.parse(r.annotations), meta: JSON.parse(r.meta) };
}

export class SqliteLabelStore implements LabelStore {
  readonly kind = 'sqlite';
  readonly db: Database.Database;
  private readonly insert: Database.Statement;

  constructor(readonly path: string) {
    this.db = openSqlite(path, LABEL_STORE_SCHEMA);
    this.insert = this.db.prepare(
      `INSERT INTO label_records (source_ref, image_width, image_height, image_depth, annotations, event_time, labeling_job, status, device, capture_time, model_version, meta)
       VALUES (@source_ref, @image_width, @image_height, @image_depth, @annotations, @event_time, @labeling_job, @status, @device, @capture_time, @model_version, @meta)`,
    );
  }

  /** Synchronous append (one transaction); `append` wraps it for the async interface. */
  appendSync(records: LabelRecord[]): void {
    const valid = records.map((r, i) => validateRecord(r, i));
    const tx = this.db.transaction((rs: LabelRecord[]) => {
      for (const r of rs) this.insert.run({ ...r, annotations: JSON.stringify(r.annotations), meta: JSON.stringify(r.meta) });
    });
    tx(valid);
  }

  async append(records: LabelRecord[]): Promise<void> {
    this.appendSync(records);
  }

  latestSync(query: LatestQuery = {}): StoredLabelRecord[] {
    const asOf = query.asOf ?? Number.MAX_VALUE;
    const statuses = query.status === undefined ? undefined : Array.isArray(query.status) ? query.status : [query.status];
    const params: unknown[] = [asOf];
    let refFilter = '';
    if (query.sourceRefs) {
      if (query.sourceRefs.length === 0) return [];
      refFilter = ` AND source_ref IN (SELECT value FROM json_each(?))`;
      params.push(JSON.stringify(query.sourceRefs));
    }
    let statusFilter = '';
    if (statuses) {
      statusFilter = ` AND status IN (SELECT value FROM json_each(?))`;
      params.push(JSON.stringify(statuses));
    }
    const rows = this.db
      .prepare(
        `SELECT * FROM (
           SELECT *, ROW_NUMBER() OVER (PARTITION BY source_ref ORDER BY event_time DESC, seq DESC) AS rn
           FROM label_records WHERE event_time <= ?${refFilter}
         ) WHERE rn = 1${statusFilter} ORDER BY source_ref`,
      )
      .all(...params) as (Row & { rn: number })[];
    return rows.map(({ rn: _rn, ...r }) => fromRow(r));
  }

  async latest(query: LatestQuery = {}): Promise<StoredLabelRecord[]> {
    return this.latestSync(query);
  }

  /** Records in append order after `seq` (at most `limit`): for mirrors that follow the store. */
  appendedAfter(seq: number, limit: number): StoredLabelRecord[] {
    return (this.db.prepare('SELECT * FROM label_records WHERE seq > ? ORDER BY seq LIMIT ?').all(seq, limit) as Row[]).map(fromRow);
  }

  async history(sourceRef: string): Promise<StoredLabelRecord[]> {
    const rows = this.db.prepare('SELECT * FROM label_records WHERE source_ref = ? ORDER BY event_time, seq').all(sourceRef) as Row[];
    return rows.map(fromRow);
  }

  async known(sourceRefs: string[]): Promise<Set<string>> {
    if (sourceRefs.length === 0) return new Set();
    const rows = this.db
      .prepare('SELECT DISTINCT source_ref FROM label_records WHERE source_ref IN (SELECT value FROM json_each(?))')
      .all(JSON.stringify(sourceRefs)) as { source_ref: string }[];
    return new Set(rows.map((r) => r.source_ref));
  }

  /** Number of records (all versions). */
  count(): number {
    return (this.db.prepare('SELECT COUNT(*) AS n FROM label_records').get() as { n: number }).n;
  }

  async close(): Promise<void> {
    if (this.db.open) this.db.close();
  }
}

export function openSqliteLabelStore(path: string): SqliteLabelStore {
  return new SqliteLabelStore(path);
}
