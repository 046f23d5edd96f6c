import type Database from 'better-sqlite3';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { LoupeError } from '../../lib/errors.js';
import { sha256 } from '../../lib/fsutil.js';
import { ArtefactStore, type ArtefactRef } from './artefact-store.js';
import { checkTransition, decideApproval, DEFAULT_POLICY, type ApprovalPolicy } from './policy.js';
import type {
  ArtefactKind,
  DeployPrecision,
  ModelEvent,
  ModelRegistry,
  ModelStatus,
  ModelVersion,
  RegisterInput,
  StatusChange,
} from './types.js';
import { openSqlite } from '../../lib/sqlite.js';
import { addColumnIfMissing, type SqliteSchema } from '../../lib/migrate.js';
import { validateModelArtefacts } from './validate.js';
import { checkGroup, checkLookup, type FindByKeyOptions } from './lookup.js';

/**
 * The default model registry: one SQLite file (`<dir>/registry.db`) with the versions and an
 * append-only log of status changes, plus the content-addressed artefact store beside it
 * (`<dir>/artefacts`). Artefacts are stored before the row is written, so a row never names a
 * missing file; a crash between the two leaves only an unreferenced artefact. Version numbers
 * are allocated inside the insert's transaction, and the idempotency key is UNIQUE, so two
 * registrations of the same model (a resumed loop) yield one version.
 *
 * API: `openRegistry(dir, policy?)` → ModelRegistry (see types.ts); `registry.artefacts` is the store,
 * `registry.artefactPath(version, 'onnx')` a verified path to a version's file,
 * `registry.events(ref?)` the status history.
 */
/** The model registry's schema, versioned (lib/migrate.ts): append a migration for every change, never edit one. */
export const REGISTRY_SCHEMA: SqliteSchema = {
  name: 'model registry',
  migrations: [
    {
      version: 1,
      description: 'models, model_events (as release 53fa33d created them)',
      up: `
CREATE TABLE IF NOT EXISTS models (
  id INTEGER PRIMARY KEY,
  grp TEXT NOT NULL,
  version INTEGER NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('pending','approved','rejected')),
  status_reason TEXT,
  status_by TEXT,
  status_at TEXT NOT NULL,
  artefacts TEXT NOT NULL,
  metrics TEXT NOT NULL,
  dataset_version TEXT,
  parent_ref TEXT,
  gate TEXT,
  meta TEXT NOT NULL,
  source TEXT NOT NULL,
  idem_key TEXT NOT NULL UNIQUE,
  created_at TEXT NOT NULL,
  seq INTEGER NOT NULL,
  UNIQUE (grp, version)
);
CREATE TABLE IF NOT EXISTS model_events (
  id INTEGER PRIMARY KEY,
  model_id INTEGER NOT NULL REFERENCES models(id),
  at TEXT NOT NULL,
  from_status TEXT,
  to_status TEXT NOT NULL,
  by TEXT NOT NULL,
  reason TEXT
);
`,
    },
    {
      version: 2,
      description: 'model_events.forced: approvals without a passing gate are recorded as forced',
      up: (db) => addColumnIfMissing(db, 'model_events', 'forced', 'INTEGER NOT NULL DEFAULT 0'),
    },
    // Registries made before int8 models existed: every version they hold runs its fp32 file.
    {
      version: 3,
      description: "models.fleet_precision: which file the fleet runs ('fp32' or 'int8')",
      up: (db) =>
        addColumnIfMissing(db, 'models', 'fleet_precision', "TEXT NOT NULL DEFAULT 'fp32' CHECK (fleet_precision IN ('fp32','int8'))"),
    },
  ],
};

interface Row {
  id: number;
  grp: string;
  version: number;
  status: ModelStatus;
  status_reason: string | null;
  status_by: string | null;
  status_at: string;
  artefacts: string;
  metrics: string;
  dataset_version: string | null;
  parent_ref: string | null;
  gate: string | null;
  meta: string;
  source: string;
  idem_key: string;
  created_at: string;
  seq: number;
  fleet_precision: DeployPrecision;
}

export function parseRef(ref: string): { group: string; version: number } {
  const m = /^(.+):(\d+)$/.exec(ref);
  if (!m) throw new LoupeError('REGISTRY_BAD_REF', 'expected <group>:<version>, e.g. metal-tags:2', { input: ref });
  return { group: m[1]!, version: Number(m[2]) };
}

function toVersion(r: Row): ModelVersion {
  return {
    ref: `${r.grp}:${r.version}`,
    group: r.grp,
    version: r.version,
    status: r.status,
    statusReason: r.status_reason,
    statusBy: r.status_by,
    statusAt: r.status_at,
    artefacts: JSON.parse(r.artefacts) as ModelVersion['artefacts'],
    fleetPrecision: r.fleet_precision ?? 'fp32',
    metrics: JSON.parse(r.metrics) as Record<string, number>,
    datasetVersion: r.dataset_version,
    parentRef: r.parent_ref,
    gate: r.gate ? (JSON.parse(r.gate) as ModelVersion['gate']) : null,
    meta: JSON.parse(r.meta) as Record<string, unknown>,
    source: r.source,
    idempotencyKey: r.idem_key,
    createdAt: r.created_at,
  };
}

/** Facts worth listing from a model card, whatever else the card holds. */
function cardMeta(cardPath: string | undefined): Record<string, unknown> {
  if (!cardPath) return {};
  let card: Record<string, unknown>;
  try {
    card = JSON.parse(readFileSync(cardPath, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    throw new LoupeError('REGISTRY_BAD_CARD', `model card is not valid JSON (${(e as Error).message})`, { input: cardPath });
  }
  const out: Record<string, unknown> = {};
  for (const k of ['name', 'version', 'classes', 'names', 'imgsz', 'trainer'] as const) if (card[k] !== undefined) out[k] = card[k];
  return out;
}

export class SqliteModelRegistry implements ModelRegistry {
  readonly db: Database.Database;
  readonly artefacts: ArtefactStore;

  constructor(
    readonly dir: string,
    readonly policy: ApprovalPolicy = DEFAULT_POLICY,
  ) {
    this.db = openSqlite(join(dir, 'registry.db'), REGISTRY_SCHEMA, { durable: true });
    this.artefacts = new ArtefactStore(join(dir, 'artefacts'));
  }

  async register(input: RegisterInput): Promise<ModelVersion> {
    checkGroup(input.group);
    for (const [k, v] of Object.entries(input.metrics ?? {})) {
      if (typeof v !== 'number' || !Number.isFinite(v))
        throw new LoupeError('REGISTRY_BAD_METRIC', `metric ${k} must be a finite number, got ${String(v)}`, { input: k });
    }
    if (input.parentRef && !(await this.get(input.parentRef))) {
      throw new LoupeError('REGISTRY_NO_PARENT', 'parent model version is not in the registry', { input: input.parentRef });
    }
    const fleetPrecision = input.fleetPrecision ?? 'fp32';
    if (fleetPrecision !== 'fp32' && fleetPrecision !== 'int8')
      throw new LoupeError('REGISTRY_BAD_PRECISION', `fleetPrecision must be fp32 or int8, got ${String(fleetPrecision)}`, {
        input: input.group,
      });
    if (fleetPrecision === 'int8' && !input.onnxInt8)
      throw new LoupeError('REGISTRY_BAD_PRECISION', 'fleetPrecision int8 needs the int8 model (onnxInt8)', { input: input.onnx });
    const meta = { ...cardMeta(input.card), ...input.meta };
    // Nothing is stored for a model the device could not run (or a checkpoint/card that does not fit it).
    await validateModelArtefacts(input);
    // Store the files first (content-addressed, idempotent), then the row.
    const onnx = await this.artefacts.put(input.onnx);
    const onnxInt8 = input.onnxInt8 ? await this.artefacts.put(input.onnxInt8) : undefined;
    const pt = input.pt ? await this.artefacts.put(input.pt) : undefined;
    const card = input.card ? await this.artefacts.put(input.card) : undefined;
    const key =
      input.idempotencyKey ?? sha256(JSON.stringify([input.group, onnx.sha256, input.datasetVersion ?? null, input.parentRef ?? null]));
    const existing = this.db.prepare('SELECT * FROM models WHERE idem_key = ?').get(key) as Row | undefined;
    if (existing) return toVersion(existing);
    const decided = input.status ?? decideApproval(input.gate, this.policy);
    const artefacts: Record<string, ArtefactRef> = { onnx };
    if (onnxInt8) artefacts.onnxInt8 = onnxInt8;
    if (pt) artefacts.pt = pt;
    if (card) artefacts.card = card;
    const now = new Date().toISOString();
    const insert = this.db.transaction(() => {
      const again = this.db.prepare('SELECT * FROM models WHERE idem_key = ?').get(key) as Row | undefined;
      if (again) return again;
      const next = (
        this.db.prepare('SELECT COALESCE(MAX(version), 0) + 1 AS v FROM models WHERE grp = ?').get(input.group) as { v: number }
      ).v;
      const seq = (this.db.prepare('SELECT COALESCE(MAX(seq), 0) + 1 AS s FROM models').get() as { s: number }).s;
      const info = this.db
        .prepare(
          `INSERT INTO models (grp, version, status, status_reason, status_by, status_at, artefacts, metrics, dataset_version,
             parent_ref, gate, meta, source, idem_key, created_at, seq, fleet_precision)
           VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`,
        )
        .run(
          input.group,
          next,
          decided.status,
          decided.reason,
          decided.by,
          now,
          JSON.stringify(artefacts),
          JSON.stringify(input.metrics ?? {}),
          input.datasetVersion ?? null,
          input.parentRef ?? null,
          input.gate ? JSON.stringify(input.gate) : null,
          JSON.stringify(meta),
          input.source,
          key,
          now,
          seq,
          fleetPrecision,
        );
      this.db
        .prepare('INSERT INTO model_events (model_id, at, from_status, to_status, by, reason) VALUES (?,?,?,?,?,?)')
        .run(info.lastInsertRowid, now, null, decided.status, decided.by, decided.reason);
      return this.db.prepare('SELECT * FROM models WHERE id = ?').get(info.lastInsertRowid) as Row;
    });
    return toVersion(insert.immediate());
  }

  async get(ref: string): Promise<ModelVersion | undefined> {
    const { group, version } = parseRef(ref);
    const r = this.db.prepare('SELECT * FROM models WHERE grp = ? AND version = ?').get(group, version) as Row | undefined;
    return r ? toVersion(r) : undefined;
  }

  async mustGet(ref: string): Promise<ModelVersion> {
    const v = await this.get(ref);
    if (!v) throw new LoupeError('REGISTRY_NOT_FOUND', 'no such model version', { input: ref });
    return v;
  }

  /** See RegistryKeyLookup (lookup.ts): the same answers as the SageMaker registry's. */
  async findByKey(group: string, idempotencyKey: string, opts: FindByKeyOptions = {}): Promise<ModelVersion | undefined> {
    checkLookup(group, idempotencyKey, opts);
    const r = this.db.prepare('SELECT * FROM models WHERE grp = ? AND idem_key = ?').get(group, idempotencyKey) as Row | undefined;
    // created_at is an ISO-8601 UTC string, so the comparison is on the same clock as the Date.
    if (!r || (opts.createdAfter && !(Date.parse(r.created_at) > opts.createdAfter.getTime()))) return undefined;
    return toVersion(r);
  }

  async list(filter: { group?: string; status?: ModelStatus } = {}): Promise<ModelVersion[]> {
    const where: string[] = [];
    const args: unknown[] = [];
    if (filter.group) {
      where.push('grp = ?');
      args.push(filter.group);
    }
    if (filter.status) {
      where.push('status = ?');
      args.push(filter.status);
    }
    const rows = this.db
      .prepare(`SELECT * FROM models ${where.length ? 'WHERE ' + where.join(' AND ') : ''} ORDER BY grp, version`)
      .all(...args) as Row[];
    return rows.map(toVersion);
  }

  async setStatus(ref: string, status: Exclude<ModelStatus, 'pending'>, change: StatusChange): Promise<ModelVersion> {
    const { group, version } = parseRef(ref);
    const tx = this.db.transaction(() => {
      const r = this.db.prepare('SELECT * FROM models WHERE grp = ? AND version = ?').get(group, version) as Row | undefined;
      if (!r) throw new LoupeError('REGISTRY_NOT_FOUND', 'no such model version', { input: ref });
      const gate = r.gate ? (JSON.parse(r.gate) as ModelVersion['gate']) : null;
      const { forced } = checkTransition(ref, r.status, status, { force: change.force, reason: change.reason, gate });
      if (r.status === status) return r;
      const now = new Date().toISOString();
      const seq = (this.db.prepare('SELECT COALESCE(MAX(seq), 0) + 1 AS s FROM models').get() as { s: number }).s;
      this.db
        .prepare('UPDATE models SET status = ?, status_reason = ?, status_by = ?, status_at = ?, seq = ? WHERE id = ?')
        .run(status, change.reason ?? null, change.by, now, seq, r.id);
      this.db
        .prepare('INSERT INTO model_events (model_id, at, from_status, to_status, by, reason, forced) VALUES (?,?,?,?,?,?,?)')
        .run(r.id, now, r.status, status, change.by, change.reason ?? null, forced ? 1 : 0);
      return this.db.prepare('SELECT * FROM models WHERE id = ?').get(r.id) as Row;
    });
    return toVersion(tx.immediate());
  }

  /** The approved version approved last (ordered by a counter, not by clock, so ties cannot happen). */
  async champion(group: string): Promise<ModelVersion | undefined> {
    const r = this.db.prepare("SELECT * FROM models WHERE grp = ? AND status = 'approved' ORDER BY seq DESC LIMIT 1").get(group) as
      Row | undefined;
    return r ? toVersion(r) : undefined;
  }

  events(ref?: string): ModelEvent[] {
    const rows = this.db
      .prepare(
        `SELECT m.grp, m.version, e.at, e.from_status, e.to_status, e.by, e.reason, e.forced FROM model_events e JOIN models m ON m.id = e.model_id
         ${ref ? 'WHERE m.grp = ? AND m.version = ?' : ''} ORDER BY e.id`,
      )
      .all(...(ref ? [parseRef(ref).group, parseRef(ref).version] : [])) as {
      grp: string;
      version: number;
      at: string;
      from_status: ModelStatus | null;
      to_status: ModelStatus;
      by: string;
      reason: string | null;
      forced: number;
    }[];
    return rows.map((r) => ({
      ref: `${r.grp}:${r.version}`,
      at: r.at,
      from: r.from_status,
      to: r.to_status,
      by: r.by,
      reason: r.reason,
      forced: r.forced === 1,
    }));
  }

  /** A verified path to one of a version's artefacts. */
  async artefactPath(v: ModelVersion, kind: ArtefactKind): Promise<string> {
    const ref = v.artefacts[kind];
    if (!ref) throw new LoupeError('ARTEFACT_MISSING', `version has no ${kind} artefact`, { input: v.ref });
    return this.artefacts.verified(ref);
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}

export function openRegistry(dir: string, policy?: ApprovalPolicy): SqliteModelRegistry {
  return new SqliteModelRegistry(dir, policy);
}

export function registryExists(dir: string): boolean {
  return existsSync(join(dir, 'registry.db'));
}
