import { afterAll, afterEach, beforeAll, beforeEach } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ApprovalPolicy } from '../../cloud/registry/policy.js';
import { openRegistry, type SqliteModelRegistry } from '../../cloud/registry/sqlite-registry.js';

/** A SQLite model registry in a temp folder of its own, made by `useTempRegistry`. */
export interface TempRegistry {
  /** The temp folder (the registry's, unless reopened elsewhere). */
  readonly dir: string;
  /** The registry open now. */
  readonly reg: SqliteModelRegistry;
  /** Close the registry and open one again: on `dir` (default: the temp folder), with `policy` (default: the registry's). */
  reopen(o?: { dir?: string; policy?: ApprovalPolicy }): SqliteModelRegistry;
}

/**
 * Registers the hooks that give each test (`scope: 'test'`, the default) or the whole file
 * (`'file'`) a fresh registry in a new temp folder, and close and remove it afterwards.
 */
export function useTempRegistry(o: { prefix?: string; scope?: 'test' | 'file' } = {}): TempRegistry {
  let dir: string | undefined;
  let reg: SqliteModelRegistry | undefined;
  const t: TempRegistry = {
    get dir() {
      if (!dir) throw new Error('the temp registry exists only inside its tests');
      return dir;
    },
    get reg() {
      if (!reg) throw new Error('the temp registry exists only inside its tests');
      return reg;
    },
    reopen(r = {}) {
      reg?.close();
      reg = openRegistry(r.dir ?? t.dir, r.policy);
      return reg;
    },
  };
  const [before, after] = o.scope === 'file' ? [beforeAll, afterAll] : [beforeEach, afterEach];
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), o.prefix ?? 'loupe-reg-'));
    reg = openRegistry(dir);
  });
  after(async () => {
    reg?.close();
    reg = undefined;
    if (dir) await rm(dir, { recursive: true, force: true });
    dir = undefined;
  });
  return t;
}
