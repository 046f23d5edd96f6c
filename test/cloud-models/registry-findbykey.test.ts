import { describe } from 'vitest';
import { findByKeyConformance } from '../helpers/registry-conformance.js';
import { useTempRegistry } from '../helpers/temp-registry.js';

/** The findByKey contract on the SQLite registry (the SageMaker one: registry-findbykey-moto.full.test.ts). */
describe('findByKey conformance: SQLite registry', () => {
  const t = useTempRegistry({ prefix: 'lp-findbykey-', scope: 'file' });
  findByKeyConformance(() => t.reg);
});
