import type Database from 'better-sqlite3';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { LoupeError } from '../../../lib/errors.js';
import { silentLogger } from '../../../lib/log.js';
import type { SqliteModelRegistry } from '../../registry/sqlite-registry.js';
import type { ModelRegistryMirrorTarget, ModelStatus, ModelVersion } from '../../registry/types.js';
import { openSqlite } from '../../../lib/sqlite.js';
import type { SqliteSchema } from '../../../lib/migrate.js';

/**
 * The model registry on AWS as the loop uses it: the SQLite registry stays primary and every
 * version of the group, with its status, is mirrored into a SageMaker model package group.
 *
 * Why mirror rather than make SageMaker primary: the loop needs the champion's files on this
 * machine (warm start, evaluation, the component the fleet gets) and the local store has them
 * content-addressed and verified; the champion is "approved most recently", which the local
 * registry orders exactly and SageMaker cannot sort by (only by creation time); and `loupe
 * models` / `loupe fleet` keep working without AWS credentials. SageMaker gets every version
 * (artefacts in S3, metrics, data set, parent, gate) and status, so approvals, lineage and
 * model cards are visible there to the rest of an AWS setup.
 *
 * Idempotent across crashes: before CreateModelPackage an intent row (local ref, key, time)
 * is written; a retry that finds an intent without a package ARN first looks for the package
 * by its `loupe:idempotency-key` among the packages created since the intent, and only creates
 * one when there is none (CreateModelPackage also carries a ClientToken derived from the key).
 * Status changes made locally (`loupe models approve|reject`, `loupe fleet rollback --reject`)
 * are sent with UpdateModelPackage at the next sync.
 */
/** The SageMaker registry mirror's schema, versioned (lib/migrate.ts): append a migration for every change, never edit one. */
export const SAGEMAKER_MIRROR_SCHEMA: SqliteSchema = {
  name: 'SageMaker registry mirror',
  migrations: [
    {
      version: 1,
      description: 'sagemaker_mirror (as release 53fa33d created them)',
      up: `
CREATE TABLE IF NOT EXISTS sagemaker_mirror (
  local_ref TEXT PRIMARY KEY,
  idem_key TEXT NOT NULL,
  intent_at TEXT NOT NULL,
  arn TEXT,
  sm_ref TEXT,
  status TEXT
);`,
    },
  ],
};

interface MirrorRow {
  local_ref: string;
  idem_key: string;
  intent_at: string;
  arn: string | null;
  sm_ref: string | null;
  status: ModelStatus | null;
}

export interface MirroredVersion {
  localRef: string;
  arn: string;
  ref: string;
  status: ModelStatus;
}

/** How far before an intent a package may have been created (clock skew between here and AWS). */
const SKEW_MS = 5 * 60_000;

export class SageMakerRegistryMirror {
  private readonly db: Database.Database;

  constructor(
    private readonly local: SqliteModelRegistry,
    private readonly remote: ModelRegistryMirrorTarget,
    dir: string,
  ) {
    this.db = openSqlite(join(dir, 'sagemaker-mirror.db'), SAGEMAKER_MIRROR_SCHEMA, { durable: true });
  }

  private row(ref: string): MirrorRow | undefined {
    return this.db.prepare('SELECT * FROM sagemaker_mirror WHERE local_ref = ?').get(ref) as MirrorRow | undefined;
  }

  mirrored(ref: string): MirroredVersion | undefined {
    const r = this.row(ref);
    return r?.arn && r.sm_ref && r.status ? { localRef: r.local_ref, arn: r.arn, ref: r.sm_ref, status: r.status } : undefined;
  }

  /** The local version a model package ARN mirrors, if this mirror made it. */
  byArn(arn: string): MirroredVersion | undefined {
    const r = this.db.prepare('SELECT * FROM sagemaker_mirror WHERE arn = ?').get(arn) as MirrorRow | undefined;
    return r?.arn && r.sm_ref && r.status ? { localRef: r.local_ref, arn: r.arn, ref: r.sm_ref, status: r.status } : undefined;
  }

  /**
   * An approval made in SageMaker (Studio, or UpdateModelPackage; on AWS the model package state
   * change event says so) applied to the local version it mirrors, so the champion and the
   * fleet follow it. The one way back of this otherwise one-way mirror: only pending → approved,
   * the step a person takes between the gate and the fleet.
   */
  async adoptApproval(arn: string, by: string, log: Logger = silentLogger): Promise<ModelVersion> {
    const m = this.byArn(arn);
    if (!m) throw new LoupeError('REGISTRY_UNKNOWN_PACKAGE', 'no local model version mirrors this model package', { input: arn });
    const remote = await this.remote.get(m.ref);
    if (remote?.status !== 'approved')
      throw new LoupeError('REGISTRY_NOT_APPROVED', `the model package is ${remote?.status ?? 'gone'}, not approved`, { input: arn });
    let v = await this.local.mustGet(m.localRef);
    if (v.status === 'pending') {
      v = await this.local.setStatus(v.ref, 'approved', { by, reason: `approved in the SageMaker Model Registry (${m.ref})` });
      log.info({ model: v.ref, sagemaker: m.ref }, 'approval in the SageMaker Model Registry applied to the local version');
    }
    // A version loupe rejected (gate, or a person with `loupe models reject`) is not revived from SageMaker.
    if (v.status !== 'approved')
      throw new LoupeError('REGISTRY_NOT_APPROVED', `local version ${v.ref} is ${v.status}; approve it with loupe models approve --force`, {
        input: arn,
      });
    this.db.prepare('UPDATE sagemaker_mirror SET status = ? WHERE local_ref = ?').run('approved', v.ref);
    return v;
  }

  /** Mirror every version of the group (oldest first, so parents exist before children) and their statuses. */
  async sync(group: string, log: Logger = silentLogger): Promise<MirroredVersion[]> {
    const out: MirroredVersion[] = [];
    for (const v of await this.local.list({ group })) out.push(await this.syncVersion(v, log));
    return out;
  }

  private async syncVersion(v: ModelVersion, log: Logger): Promise<MirroredVersion> {
    let row = this.row(v.ref);
    if (row?.arn && row.sm_ref) {
      // One way: a status set in SageMaker Studio does not come back; a local pending is never pushed.
      if (row.status !== v.status && v.status !== 'pending') {
        // Only approved/rejected can be set (a version never goes back to pending).
        const target = v.status as Exclude<ModelStatus, 'pending'>;
        // The decision was taken (and, if forced, recorded) in the loupe registry; the mirror follows it.
        await this.remote.setStatus(row.sm_ref, target, {
          by: v.statusBy ?? 'loupe',
          reason: v.statusReason ?? `as ${v.ref} in the loupe registry`,
          force: true,
        });
        this.db.prepare('UPDATE sagemaker_mirror SET status = ? WHERE local_ref = ?').run(v.status, v.ref);
        log.info({ model: v.ref, sagemaker: row.sm_ref, status: v.status }, 'status mirrored to the SageMaker Model Registry');
      }
      return this.mirrored(v.ref)!;
    }
    let found: ModelVersion | undefined;
    if (row) {
      // An earlier attempt wrote its intent and may have created the package before it died.
      found = await this.remote.findByKey(v.group, v.idempotencyKey, { createdAfter: new Date(Date.parse(row.intent_at) - SKEW_MS) });
      if (found) log.info({ model: v.ref, sagemaker: found.ref }, 'found the model package an earlier attempt created');
    } else {
      this.db
        .prepare('INSERT INTO sagemaker_mirror (local_ref, idem_key, intent_at) VALUES (?, ?, ?)')
        .run(v.ref, v.idempotencyKey, new Date().toISOString());
      row = this.row(v.ref)!;
    }
    if (!found) {
      const parent = v.parentRef ? this.mirrored(v.parentRef) : undefined;
      found = await this.remote.register({
        group: v.group,
        onnx: await this.local.artefactPath(v, 'onnx'),
        ...(v.artefacts.onnxInt8 ? { onnxInt8: await this.local.artefactPath(v, 'onnxInt8'), fleetPrecision: v.fleetPrecision } : {}),
        ...(v.artefacts.pt ? { pt: await this.local.artefactPath(v, 'pt') } : {}),
        ...(v.artefacts.card ? { card: await this.local.artefactPath(v, 'card') } : {}),
        metrics: v.metrics,
        datasetVersion: v.datasetVersion,
        // The parent as SageMaker numbers it (mirrored first, oldest first); the local ref otherwise.
        parentRef: parent?.ref ?? v.parentRef,
        gate: v.gate,
        source: `${v.source} (loupe ${v.ref})`,
        idempotencyKey: v.idempotencyKey,
        status: { status: v.status, reason: v.statusReason ?? v.status, by: v.statusBy ?? 'loupe' },
      });
      log.info({ model: v.ref, sagemaker: found.ref, status: found.status }, 'model version mirrored to the SageMaker Model Registry');
    }
    this.db
      .prepare('UPDATE sagemaker_mirror SET arn = ?, sm_ref = ?, status = ? WHERE local_ref = ?')
      .run(String(found.meta.arn), found.ref, found.status, v.ref);
    if (found.status !== v.status && v.status !== 'pending') return this.syncVersion(v, log);
    return this.mirrored(v.ref)!;
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}
