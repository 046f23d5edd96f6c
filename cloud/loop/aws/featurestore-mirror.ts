import type { Logger } from 'pino';
import { silentLogger } from '../../../lib/log.js';
import { Progress } from '../../../lib/progress.js';
import type { FeatureStoreLabelStore } from '../../labelstore/featurestore.js';
import type { SqliteLabelStore } from '../../labelstore/sqlite.js';

/**
 * The label store on AWS as the loop uses it: SQLite stays the store the loop reads and writes
 * (point-in-time reads, labelling jobs committed atomically with their records), and every
 * record is mirrored into a SageMaker Feature Store feature group with PutRecord, in append
 * order, from a watermark kept in the same SQLite file.
 *
 * Why a mirror and not Feature Store as the loop's store: the offline store (the only one that
 * keeps history, so the only one that can answer "latest as of T") lags PutRecord by up to ~15
 * minutes and is read through Athena. The loop reads right after it writes (ingest → labelling
 * → snapshot) and checks "is this image known / was this verdict recorded" to stay idempotent
 * across crashes; against a lagging store those checks would miss and records would be written
 * twice. With SQLite primary those checks are exact, and Feature Store gets the same history.
 *
 * Idempotent by record identity: a Feature Store record is identified by (source_ref,
 * event_time). The watermark moves after each accepted PutRecord, so a crash can only repeat
 * the one record whose PutRecord was accepted but not yet marked, with the same identity and
 * the same values; the offline store then holds two identical rows, and the point-in-time read
 * (latest per source_ref by event_time, then api_invocation_time) returns the same record.
 */

export class FeatureStoreMirror {
  private ensured = false;

  constructor(
    private readonly local: SqliteLabelStore,
    private readonly remote: FeatureStoreLabelStore,
    private readonly opts: { featureGroupName: string; createGroup: boolean },
  ) {}

  /** Records already mirrored: the highest local seq Feature Store accepted. */
  watermark(): number {
    const r = this.local.db.prepare('SELECT seq FROM featurestore_mirror WHERE feature_group = ?').get(this.opts.featureGroupName) as
      { seq: number } | undefined;
    return r?.seq ?? 0;
  }

  pending(): number {
    return (this.local.db.prepare('SELECT COUNT(*) AS n FROM label_records WHERE seq > ?').get(this.watermark()) as { n: number }).n;
  }

  /** Put every record appended since the watermark; returns how many went out. */
  async sync(log: Logger = silentLogger): Promise<{ put: number; watermark: number }> {
    const total = this.pending();
    if (total === 0) return { put: 0, watermark: this.watermark() };
    if (!this.ensured) {
      // With createGroup false the group must exist already; describing it is still a useful check.
      if (this.opts.createGroup) await this.remote.ensureFeatureGroup();
      this.ensured = true;
    }
    const mark = this.local.db.prepare(
      'INSERT INTO featurestore_mirror (feature_group, seq, updated_at) VALUES (?, ?, ?) ON CONFLICT(feature_group) DO UPDATE SET seq = excluded.seq, updated_at = excluded.updated_at',
    );
    const progress = new Progress('feature store', total, log, { logEveryMs: 5000 });
    let put = 0;
    let seq = this.watermark();
    for (;;) {
      const rows = this.local.appendedAfter(seq, 500);
      if (rows.length === 0) break;
      for (const { seq: s, ...record } of rows) {
        await this.remote.append([record]);
        mark.run(this.opts.featureGroupName, s, new Date().toISOString());
        seq = s;
        progress.update(++put);
      }
    }
    progress.finish();
    log.info({ featureGroup: this.opts.featureGroupName, put, watermark: seq }, 'label records mirrored to Feature Store');
    return { put, watermark: seq };
  }
}
