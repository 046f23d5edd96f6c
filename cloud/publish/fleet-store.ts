import type Database from 'better-sqlite3';
import { openSqlite } from '../../lib/sqlite.js';
import type { SqliteSchema } from '../../lib/migrate.js';

/**
 * What loupe has published and deployed, per backend and target, in one SQLite file. Every
 * control-plane call is preceded by an *intent* row naming exactly what will be created (the
 * component version, the deployment name), and followed by marking it done with what came
 * back. A process killed between the two finds the intent on resume and checks the target
 * for that exact version/name before creating anything, so a crash never yields a second
 * component version or a second deployment. The history also drives `loupe fleet rollback`
 * (redeploy the model version that ran before) and `loupe fleet status`.
 */
export type Backend = 'local' | 'aws';

export interface ComponentVersionRow {
  backend: Backend;
  component: string;
  version: string;
  modelRef: string;
  onnxSha256: string;
  recipe: Record<string, unknown>;
  state: 'intent' | 'created';
  createdAt: string;
  arn: string | null;
}

export interface DeploymentRow {
  id: number;
  backend: Backend;
  target: string;
  name: string;
  kind: 'deploy' | 'rollback';
  modelRef: string;
  component: string;
  version: string;
  previousVersion: string | null;
  components: Record<string, string>;
  state: 'intent' | 'created' | 'confirmed' | 'failed';
  deploymentId: string | null;
  detail: Record<string, unknown> | null;
  createdAt: string;
  updatedAt: string;
}

/** The fleet store's schema, versioned (lib/migrate.ts): append a migration for every change, never edit one. */
export const FLEET_STORE_SCHEMA: SqliteSchema = {
  name: 'fleet store',
  migrations: [
    {
      version: 1,
      description: 'component_versions, deployments (as release 53fa33d created them)',
      up: `
CREATE TABLE IF NOT EXISTS component_versions (
  backend TEXT NOT NULL,
  component TEXT NOT NULL,
  version TEXT NOT NULL,
  model_ref TEXT NOT NULL,
  onnx_sha256 TEXT NOT NULL,
  recipe TEXT NOT NULL,
  state TEXT NOT NULL,
  created_at TEXT NOT NULL,
  arn TEXT,
  PRIMARY KEY (backend, component, version)
);
CREATE TABLE IF NOT EXISTS deployments (
  id INTEGER PRIMARY KEY,
  backend TEXT NOT NULL,
  target TEXT NOT NULL,
  name TEXT NOT NULL,
  kind TEXT NOT NULL,
  model_ref TEXT NOT NULL,
  component TEXT NOT NULL,
  version TEXT NOT NULL,
  previous_version TEXT,
  components TEXT NOT NULL,
  state TEXT NOT NULL,
  deployment_id TEXT,
  detail TEXT,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  UNIQUE (backend, target, name)
);
`,
    },
  ],
};

type Raw = Record<string, unknown>;

export class FleetStore {
  readonly db: Database.Database;
  constructor(readonly path: string) {
    this.db = openSqlite(path, FLEET_STORE_SCHEMA, { durable: true });
  }

  close(): void {
    if (this.db.open) this.db.close();
  }

  private cv(r: Raw): ComponentVersionRow {
    return {
      backend: r.backend as Backend,
      component: r.component as string,
      version: r.version as string,
      modelRef: r.model_ref as string,
      onnxSha256: r.onnx_sha256 as string,
      recipe: JSON.parse(r.recipe as string) as Record<string, unknown>,
      state: r.state as ComponentVersionRow['state'],
      createdAt: r.created_at as string,
      arn: (r.arn as string | null) ?? null,
    };
  }

  /** The component version already chosen for this model on this backend (intent or created). */
  componentFor(backend: Backend, component: string, modelRef: string, onnxSha256: string): ComponentVersionRow | undefined {
    const r = this.db
      .prepare(
        'SELECT * FROM component_versions WHERE backend = ? AND component = ? AND model_ref = ? AND onnx_sha256 = ? ORDER BY created_at DESC LIMIT 1',
      )
      .get(backend, component, modelRef, onnxSha256) as Raw | undefined;
    return r ? this.cv(r) : undefined;
  }

  componentVersion(backend: Backend, component: string, version: string): ComponentVersionRow | undefined {
    const r = this.db
      .prepare('SELECT * FROM component_versions WHERE backend = ? AND component = ? AND version = ?')
      .get(backend, component, version) as Raw | undefined;
    return r ? this.cv(r) : undefined;
  }

  componentVersions(backend: Backend, component: string): ComponentVersionRow[] {
    return (
      this.db
        .prepare('SELECT * FROM component_versions WHERE backend = ? AND component = ? ORDER BY created_at')
        .all(backend, component) as Raw[]
    ).map((r) => this.cv(r));
  }

  recordComponentIntent(row: Omit<ComponentVersionRow, 'state' | 'createdAt' | 'arn'>): void {
    this.db
      .prepare(
        `INSERT INTO component_versions (backend, component, version, model_ref, onnx_sha256, recipe, state, created_at)
         VALUES (?, ?, ?, ?, ?, ?, 'intent', ?) ON CONFLICT DO NOTHING`,
      )
      .run(row.backend, row.component, row.version, row.modelRef, row.onnxSha256, JSON.stringify(row.recipe), new Date().toISOString());
  }

  markComponentCreated(backend: Backend, component: string, version: string, arn: string | null): void {
    this.db
      .prepare("UPDATE component_versions SET state = 'created', arn = ? WHERE backend = ? AND component = ? AND version = ?")
      .run(arn, backend, component, version);
  }

  private dep(r: Raw): DeploymentRow {
    return {
      id: r.id as number,
      backend: r.backend as Backend,
      target: r.target as string,
      name: r.name as string,
      kind: r.kind as DeploymentRow['kind'],
      modelRef: r.model_ref as string,
      component: r.component as string,
      version: r.version as string,
      previousVersion: (r.previous_version as string | null) ?? null,
      components: JSON.parse(r.components as string) as Record<string, string>,
      state: r.state as DeploymentRow['state'],
      deploymentId: (r.deployment_id as string | null) ?? null,
      detail: r.detail ? (JSON.parse(r.detail as string) as Record<string, unknown>) : null,
      createdAt: r.created_at as string,
      updatedAt: r.updated_at as string,
    };
  }

  deploymentByName(backend: Backend, target: string, name: string): DeploymentRow | undefined {
    const r = this.db.prepare('SELECT * FROM deployments WHERE backend = ? AND target = ? AND name = ?').get(backend, target, name) as
      Raw | undefined;
    return r ? this.dep(r) : undefined;
  }

  deployments(filter: { backend?: Backend; target?: string } = {}): DeploymentRow[] {
    const where: string[] = [];
    const args: unknown[] = [];
    if (filter.backend) {
      where.push('backend = ?');
      args.push(filter.backend);
    }
    if (filter.target) {
      where.push('target = ?');
      args.push(filter.target);
    }
    return (
      this.db.prepare(`SELECT * FROM deployments ${where.length ? 'WHERE ' + where.join(' AND ') : ''} ORDER BY id`).all(...args) as Raw[]
    ).map((r) => this.dep(r));
  }

  /** The newest deployment to a target that was not a failure (what the fleet should be running). */
  current(backend: Backend, target: string): DeploymentRow | undefined {
    const r = this.db
      .prepare("SELECT * FROM deployments WHERE backend = ? AND target = ? AND state IN ('created','confirmed') ORDER BY id DESC LIMIT 1")
      .get(backend, target) as Raw | undefined;
    return r ? this.dep(r) : undefined;
  }

  recordDeploymentIntent(
    row: Pick<
      DeploymentRow,
      'backend' | 'target' | 'name' | 'kind' | 'modelRef' | 'component' | 'version' | 'previousVersion' | 'components'
    >,
  ): DeploymentRow {
    const now = new Date().toISOString();
    this.db
      .prepare(
        `INSERT INTO deployments (backend, target, name, kind, model_ref, component, version, previous_version, components, state, created_at, updated_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'intent', ?, ?) ON CONFLICT DO NOTHING`,
      )
      .run(
        row.backend,
        row.target,
        row.name,
        row.kind,
        row.modelRef,
        row.component,
        row.version,
        row.previousVersion,
        JSON.stringify(row.components),
        now,
        now,
      );
    return this.deploymentByName(row.backend, row.target, row.name)!;
  }

  updateDeployment(
    id: number,
    patch: { state?: DeploymentRow['state']; deploymentId?: string | null; detail?: Record<string, unknown> },
  ): void {
    const cur = this.db.prepare('SELECT * FROM deployments WHERE id = ?').get(id) as Raw | undefined;
    if (!cur) return;
    const d = this.dep(cur);
    this.db
      .prepare('UPDATE deployments SET state = ?, deployment_id = ?, detail = ?, updated_at = ? WHERE id = ?')
      .run(
        patch.state ?? d.state,
        patch.deploymentId === undefined ? d.deploymentId : patch.deploymentId,
        JSON.stringify({ ...(d.detail ?? {}), ...(patch.detail ?? {}) }),
        new Date().toISOString(),
        id,
      );
  }
}
