import { afterAll, beforeAll, describe } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openRegistry, type SqliteModelRegistry } from '../../cloud/registry/sqlite-registry.js';
import { findByKeyConformance } from '../helpers/registry-conformance.js';

/** The findByKey contract on the SQLite registry (the SageMaker one: registry-findbykey-moto.full.test.ts). */
describe('findByKey conformance: SQLite registry', () => {
  let dir: string;
  let reg: SqliteModelRegistry;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'lp-findbykey-'));
    reg = openRegistry(dir);
  });
  afterAll(async () => {
    reg?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });
  findByKeyConformance(() => reg);
});
