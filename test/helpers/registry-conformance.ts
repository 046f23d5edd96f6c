import { expect, it } from 'vitest';
import { join } from 'node:path';
import { SHIPPED_MODEL_DIR } from '../../cloud/registry/seed.js';
import type { ModelVersion, RegisterInput, RegistryKeyLookup } from '../../cloud/registry/types.js';

/** A registry under test: what the conformance suite calls, whichever registry it is. */
export interface RegistryUnderTest extends RegistryKeyLookup {
  register(input: RegisterInput): Promise<ModelVersion>;
}

let groups = 0;
/** A fresh group per test, so the tests share one registry (one moto server) without seeing each other. */
const freshGroup = (): string => `conf-${process.pid}-${++groups}`;

async function registerWithKey(reg: RegistryUnderTest, group: string, idempotencyKey: string): Promise<ModelVersion> {
  return reg.register({
    group,
    onnx: join(SHIPPED_MODEL_DIR, 'model.onnx'),
    source: 'conformance',
    idempotencyKey,
    status: { status: 'pending', reason: 'conformance test', by: 'test' },
  });
}

/**
 * The findByKey contract (cloud/registry/lookup.ts) as one suite, run against every registry:
 * the SQLite registry (registry-findbykey.test.ts) and the SageMaker Model Registry adapter on
 * moto's server (registry-findbykey-moto.full.test.ts). `registry()` is called inside each test.
 */
export function findByKeyConformance(registry: () => RegistryUnderTest): void {
  it('finds the version registered with the key, in its group, with that key', async () => {
    const reg = registry();
    const group = freshGroup();
    const a = await registerWithKey(reg, group, 'loop:7:abc');
    const b = await registerWithKey(reg, group, 'loop:8:def');
    expect(a.ref).not.toBe(b.ref);
    const found = await reg.findByKey(group, 'loop:7:abc');
    expect(found).toMatchObject({ ref: a.ref, group, version: a.version, idempotencyKey: 'loop:7:abc', status: 'pending' });
    expect((await reg.findByKey(group, 'loop:8:def'))?.ref).toBe(b.ref);
  });

  it('answers undefined for an unknown key, another group, or a group that does not exist', async () => {
    const reg = registry();
    const group = freshGroup();
    const other = freshGroup();
    await registerWithKey(reg, group, 'k-1');
    await registerWithKey(reg, other, 'k-2');
    expect(await reg.findByKey(group, 'k-2')).toBeUndefined();
    expect(await reg.findByKey(other, 'k-1')).toBeUndefined();
    expect(await reg.findByKey(group, 'k-3')).toBeUndefined();
    expect(await reg.findByKey(freshGroup(), 'k-1')).toBeUndefined();
  });

  it('matches the key exactly: no prefix, case or character folding', async () => {
    const reg = registry();
    const group = freshGroup();
    const v = await registerWithKey(reg, group, 'run 3; (retry)!');
    expect(await reg.findByKey(group, 'run 3; (retry)')).toBeUndefined();
    expect(await reg.findByKey(group, 'run 3 retry')).toBeUndefined();
    expect(await reg.findByKey(group, 'RUN 3; (retry)!')).toBeUndefined();
    expect(await reg.findByKey(group, 'run')).toBeUndefined();
    expect(await reg.findByKey(group, 'run 3; (retry)!')).toMatchObject({ ref: v.ref, idempotencyKey: 'run 3; (retry)!' });
  });

  it('keeps only versions created strictly after createdAfter', async () => {
    const reg = registry();
    const group = freshGroup();
    const v = await registerWithKey(reg, group, 'k-time');
    const created = Date.parse(v.createdAt);
    expect((await reg.findByKey(group, 'k-time', { createdAfter: new Date(created - 60_000) }))?.ref).toBe(v.ref);
    expect(await reg.findByKey(group, 'k-time', { createdAfter: new Date(created + 60_000) })).toBeUndefined();
    expect((await reg.findByKey(group, 'k-time', {}))?.ref).toBe(v.ref);
  });

  it('refuses a malformed group, an empty key and an invalid date with the same codes', async () => {
    const reg = registry();
    await expect(reg.findByKey('no spaces allowed', 'k')).rejects.toMatchObject({ code: 'REGISTRY_BAD_GROUP' });
    await expect(reg.findByKey('', 'k')).rejects.toMatchObject({ code: 'REGISTRY_BAD_GROUP' });
    await expect(reg.findByKey('metal-tags', '')).rejects.toMatchObject({ code: 'REGISTRY_BAD_KEY' });
    await expect(reg.findByKey('metal-tags', 'k', { createdAfter: new Date(Number.NaN) })).rejects.toMatchObject({
      code: 'REGISTRY_BAD_KEY',
    });
  });
}
