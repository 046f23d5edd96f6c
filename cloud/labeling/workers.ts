import type Database from 'better-sqlite3';
import { createHash, randomBytes } from 'node:crypto';
import { LoupeError } from '../../lib/errors.js';

/**
 * The labelling workforce's identities: one credential per person (or simulated worker), issued
 * by `loupe labels workers add`, stored only as its SHA-256. A request's worker is whoever owns
 * the credential it presents; nothing a client sends can name another worker. Roles say what a
 * worker may do: `label` (draw boxes) and `verify` (approve or reject consolidated labels).
 *
 *   const workers = new WorkerRegistry(db)         // the labelling database (labels.db)
 *   const { token } = workers.add('alice', ['label'])   // shown once, never stored
 *   workers.authenticate(token) → Worker | null      // null: unknown or revoked
 *   workers.rotate('alice') / workers.revoke('alice') / workers.list()
 *
 * Why SHA-256 and not a slow password hash: the tokens are 256 random bits, so there is nothing
 * to brute-force; a fast hash keeps per-request checks cheap (GitHub stores its tokens the same
 * way). A lookup by hash leaks nothing an attacker can use.
 */
export type WorkerRole = 'label' | 'verify';
export const WORKER_ROLES: readonly WorkerRole[] = ['label', 'verify'];

export interface Worker {
  id: string;
  roles: WorkerRole[];
  created: number;
  revoked: number | null;
  /** Who issued it (`user:<login>`, `simulated workforce`). */
  issuedBy: string;
}

export interface IssuedCredential {
  worker: Worker;
  /** The credential itself: shown once; only its hash is kept. */
  token: string;
}

const ID_RE = /^[A-Za-z0-9][\w.@-]{0,63}$/;
const TOKEN_PREFIX = 'loupe_w_';

interface Row {
  id: string;
  roles: string;
  token_sha256: string;
  created: number;
  revoked: number | null;
  issued_by: string;
}

const toWorker = (r: Row): Worker => ({
  id: r.id,
  roles: JSON.parse(r.roles) as WorkerRole[],
  created: r.created,
  revoked: r.revoked,
  issuedBy: r.issued_by,
});
const hashToken = (t: string) => createHash('sha256').update(t, 'utf8').digest('hex');

export function checkWorkerId(id: unknown): string {
  if (typeof id !== 'string' || !ID_RE.test(id)) {
    throw new LoupeError('WORKER_BAD_ID', 'a worker id is 1-64 letters, digits, . _ @ - (starting with a letter or digit)', {
      input: String(id),
    });
  }
  return id;
}

export function parseRoles(v: string | readonly string[]): WorkerRole[] {
  const list = (typeof v === 'string' ? v.split(',') : [...v]).map((s) => s.trim()).filter(Boolean);
  if (list.length === 0)
    throw new LoupeError('WORKER_BAD_ROLE', `a worker needs at least one role (${WORKER_ROLES.join(', ')})`, { input: String(v) });
  for (const r of list) {
    if (!WORKER_ROLES.includes(r as WorkerRole))
      throw new LoupeError('WORKER_BAD_ROLE', `unknown role "${r}" (roles: ${WORKER_ROLES.join(', ')})`, { input: String(v) });
  }
  return WORKER_ROLES.filter((r) => list.includes(r));
}

export class WorkerRegistry {
  constructor(
    private readonly db: Database.Database,
    private readonly now: () => number = () => Date.now() / 1000,
  ) {}

  private row(id: string): Row | undefined {
    return this.db.prepare('SELECT * FROM labeling_workers WHERE id = ?').get(id) as Row | undefined;
  }

  get(id: string): Worker | undefined {
    const r = this.row(id);
    return r ? toWorker(r) : undefined;
  }

  list(): Worker[] {
    return (this.db.prepare('SELECT * FROM labeling_workers ORDER BY id').all() as Row[]).map(toWorker);
  }

  /** Issue a credential to a new worker. An existing active id is refused (rotate it instead); a revoked one is re-instated. */
  add(id: string, roles: readonly WorkerRole[] | string = ['label', 'verify'], issuedBy = 'cli'): IssuedCredential {
    checkWorkerId(id);
    const r = parseRoles(roles);
    const token = TOKEN_PREFIX + randomBytes(32).toString('base64url');
    const tx = this.db.transaction(() => {
      const existing = this.row(id);
      if (existing && existing.revoked === null) {
        throw new LoupeError('WORKER_EXISTS', 'this worker already has a credential; `loupe labels workers rotate` issues a new one', {
          input: id,
        });
      }
      this.db
        .prepare(
          'INSERT OR REPLACE INTO labeling_workers (id, roles, token_sha256, created, revoked, issued_by) VALUES (?, ?, ?, ?, NULL, ?)',
        )
        .run(id, JSON.stringify(r), hashToken(token), this.now(), issuedBy);
    });
    tx.immediate();
    return { worker: this.get(id)!, token };
  }

  /** A new credential for an existing worker; the old one stops working at once. */
  rotate(id: string, opts: { roles?: readonly WorkerRole[] | string } = {}): IssuedCredential {
    const existing = this.row(checkWorkerId(id));
    if (!existing) throw new LoupeError('WORKER_UNKNOWN', 'no such worker', { input: id });
    const token = TOKEN_PREFIX + randomBytes(32).toString('base64url');
    const roles = opts.roles === undefined ? (JSON.parse(existing.roles) as WorkerRole[]) : parseRoles(opts.roles);
    this.db
      .prepare('UPDATE labeling_workers SET token_sha256 = ?, roles = ?, revoked = NULL WHERE id = ?')
      .run(hashToken(token), JSON.stringify(roles), id);
    return { worker: this.get(id)!, token };
  }

  /** Add the worker, or rotate its credential when it exists (what the simulated workforce does each run). */
  issue(id: string, roles: readonly WorkerRole[] | string, issuedBy: string): IssuedCredential {
    return this.row(checkWorkerId(id)) ? this.rotate(id, { roles }) : this.add(id, roles, issuedBy);
  }

  revoke(id: string): Worker {
    const existing = this.row(checkWorkerId(id));
    if (!existing) throw new LoupeError('WORKER_UNKNOWN', 'no such worker', { input: id });
    if (existing.revoked === null) this.db.prepare('UPDATE labeling_workers SET revoked = ? WHERE id = ?').run(this.now(), id);
    return this.get(id)!;
  }

  /** The active worker owning this credential, or null. */
  authenticate(token: unknown): Worker | null {
    if (typeof token !== 'string' || !token.startsWith(TOKEN_PREFIX) || token.length > 200) return null;
    const r = this.db.prepare('SELECT * FROM labeling_workers WHERE token_sha256 = ? AND revoked IS NULL').get(hashToken(token)) as
      Row | undefined;
    return r ? toWorker(r) : null;
  }

  /** The worker by id if still active (sessions re-check this on every request, so a revocation applies at once). */
  active(id: string): Worker | null {
    const r = this.row(id);
    return r && r.revoked === null ? toWorker(r) : null;
  }

  activeCount(): number {
    return (this.db.prepare('SELECT COUNT(*) AS n FROM labeling_workers WHERE revoked IS NULL').get() as { n: number }).n;
  }
}

/** Throws a LoupeError (mapped to 403 by the server) unless the worker has the role. */
export function requireRole(w: Worker, role: WorkerRole): void {
  if (!w.roles.includes(role)) {
    throw new LoupeError(
      'WORKER_FORBIDDEN',
      `worker ${w.id} may not ${role} (roles: ${w.roles.join(', ')}); \`loupe labels workers rotate ${w.id} --roles …\` changes them`,
      {
        input: w.id,
      },
    );
  }
}
