import { describe, expect, it } from 'vitest';
import { writeFile, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { seedShippedModel, SHIPPED_MODEL_DIR } from '../../cloud/registry/seed.js';
import { sha256File } from '../../lib/fsutil.js';
import { deployedArtefact, type GateSummary } from '../../cloud/registry/types.js';
import { projectRoot } from '../../lib/paths.js';
import { useTempRegistry } from '../helpers/temp-registry.js';

const otherOnnx = join(projectRoot, 'test', 'fixtures', 'models', 'neu-det.onnx');
const otherPt = join(projectRoot, 'test', 'fixtures', 'models', 'neu-det.pt');

function gate(passed: boolean, challenger: number, champion: number | null): GateSummary {
  return {
    passed,
    metric: 'map50',
    challenger,
    champion,
    championRef: champion === null ? null : 'metal-tags:1',
    threshold: 0.5,
    tolerance: 0.02,
    reasons: [passed ? 'ok' : 'map50 0.3 < threshold 0.5'],
  };
}

describe('SQLite model registry', () => {
  const t = useTempRegistry();

  it('seeds the shipped model once, approved, as champion, with its artefacts stored by digest', async () => {
    const a = await seedShippedModel(t.reg);
    const b = await seedShippedModel(t.reg);
    expect(b.ref).toBe(a.ref);
    expect(a.ref).toBe('metal-tags:1');
    expect(a.status).toBe('approved');
    expect(a.statusBy).toBe('seed');
    expect((await t.reg.list()).length).toBe(1);
    expect((await t.reg.champion('metal-tags'))?.ref).toBe('metal-tags:1');
    const onnxSha = await sha256File(join(SHIPPED_MODEL_DIR, 'model.onnx'));
    expect(a.artefacts.onnx.sha256).toBe(onnxSha);
    const stored = await t.reg.artefactPath(a, 'onnx');
    expect(stored).toContain(onnxSha);
    expect(await sha256File(stored)).toBe(onnxSha);
    expect(a.artefacts.pt?.sha256).toBe(await sha256File(join(SHIPPED_MODEL_DIR, 'model.pt')));
    expect(a.metrics.val_map50).toBeGreaterThan(0.8);
  });

  it('refuses fleetPrecision int8 without the int8 file, and an fp32 graph given as the int8 model', async () => {
    // (int8 files themselves, which take the trainer venv to make, are in registry-int8.full.test.ts)
    await expect(
      t.reg.register({ group: 'neu-det', onnx: otherOnnx, fleetPrecision: 'int8', source: 'test', idempotencyKey: 'x' }),
    ).rejects.toThrow(/neu-det\.onnx: fleetPrecision int8 needs the int8 model/);
    await expect(
      t.reg.register({ group: 'neu-det', onnx: otherOnnx, onnxInt8: otherOnnx, source: 'test', idempotencyKey: 'y' }),
    ).rejects.toThrow(/neu-det\.onnx: given as the int8 model, but its graph is fp32/);
  });

  it('opens a registry made before int8 models: every version runs its fp32 file', async () => {
    const old = join(t.dir, 'old');
    const Database = (await import('better-sqlite3')).default;
    const { mkdirSync } = await import('node:fs');
    mkdirSync(old, { recursive: true });
    const db = new Database(join(old, 'registry.db'));
    db.exec(`CREATE TABLE models (id INTEGER PRIMARY KEY, grp TEXT NOT NULL, version INTEGER NOT NULL, status TEXT NOT NULL, status_reason TEXT, status_by TEXT, status_at TEXT NOT NULL,
      artefacts TEXT NOT NULL, metrics TEXT NOT NULL, dataset_version TEXT, parent_ref TEXT, gate TEXT, meta TEXT NOT NULL, source TEXT NOT NULL, idem_key TEXT NOT NULL UNIQUE,
      created_at TEXT NOT NULL, seq INTEGER NOT NULL, UNIQUE (grp, version))`);
    db.prepare(
      `INSERT INTO models (grp, version, status, status_at, artefacts, metrics, meta, source, idem_key, created_at, seq) VALUES ('g', 1, 'approved', 't', ?, '{}', '{}', 'seed', 'k', 't', 1)`,
    ).run(JSON.stringify({ onnx: { sha256: 'a'.repeat(64), size: 1, ext: '.onnx' } }));
    db.close();
    t.reopen({ dir: old });
    const v = await t.reg.mustGet('g:1');
    expect(v.fleetPrecision).toBe('fp32');
    expect(deployedArtefact(v).kind).toBe('onnx');
  });

  it('auto-approves a challenger that passed the gate, rejects one that failed, keeps the champion right', async () => {
    await seedShippedModel(t.reg);
    const bad = await t.reg.register({
      group: 'metal-tags',
      onnx: otherOnnx,
      metrics: { map50: 0.3 },
      datasetVersion: 'ds-1',
      parentRef: 'metal-tags:1',
      gate: gate(false, 0.3, 0.9),
      source: 'test',
    });
    expect(bad.ref).toBe('metal-tags:2');
    expect(bad.status).toBe('rejected');
    expect(bad.statusReason).toContain('gate failed');
    expect((await t.reg.champion('metal-tags'))?.ref).toBe('metal-tags:1');

    const good = await t.reg.register({
      group: 'metal-tags',
      onnx: otherOnnx,
      pt: otherPt,
      metrics: { map50: 0.91 },
      datasetVersion: 'ds-2',
      parentRef: 'metal-tags:1',
      gate: gate(true, 0.91, 0.9),
      source: 'test',
    });
    expect(good.ref).toBe('metal-tags:3');
    expect(good.status).toBe('approved');
    expect(good.parentRef).toBe('metal-tags:1');
    expect(good.datasetVersion).toBe('ds-2');
    // Same ONNX bytes as version 2: stored once.
    expect(good.artefacts.onnx.sha256).toBe(bad.artefacts.onnx.sha256);
    expect((await t.reg.champion('metal-tags'))?.ref).toBe('metal-tags:3');
    // Revoking the champion hands the title back to the previous approved version.
    await t.reg.setStatus('metal-tags:3', 'rejected', { by: 'user:test', reason: 'field complaints' });
    expect((await t.reg.champion('metal-tags'))?.ref).toBe('metal-tags:1');
    expect(t.reg.events('metal-tags:3').map((e) => [e.from, e.to, e.by])).toEqual([
      [null, 'approved', 'gate+policy'],
      ['approved', 'rejected', 'user:test'],
    ]);
  });

  it('registering the same model again (a resumed run) returns the existing version', async () => {
    await seedShippedModel(t.reg);
    const input = {
      group: 'metal-tags',
      onnx: otherOnnx,
      metrics: { map50: 0.9 },
      datasetVersion: 'ds',
      parentRef: 'metal-tags:1',
      gate: gate(true, 0.9, 0.9),
      source: 'loop run 1',
    };
    const a = await t.reg.register(input);
    const b = await t.reg.register(input);
    expect(b.ref).toBe(a.ref);
    expect((await t.reg.list({ group: 'metal-tags' })).length).toBe(2);
  });

  it('keeps gate-passing versions pending when the policy wants a person, then approves by hand', async () => {
    t.reopen({ policy: { autoApprove: false, requireGate: true } });
    await seedShippedModel(t.reg);
    const v = await t.reg.register({
      group: 'metal-tags',
      onnx: otherOnnx,
      gate: gate(true, 0.95, 0.9),
      source: 'test',
      parentRef: 'metal-tags:1',
    });
    expect(v.status).toBe('pending');
    expect((await t.reg.champion('metal-tags'))?.ref).toBe('metal-tags:1');
    const ok = await t.reg.setStatus(v.ref, 'approved', { by: 'user:qa', reason: 'looked at the report' });
    expect(ok.status).toBe('approved');
    expect((await t.reg.champion('metal-tags'))?.ref).toBe(v.ref);
    expect((await t.reg.list({ status: 'approved' })).map((x) => x.ref)).toEqual(['metal-tags:1', v.ref]);
  });

  it('refuses bad input with errors naming it, and writes nothing', async () => {
    await expect(t.reg.register({ group: 'bad group!', onnx: otherOnnx, source: 't' })).rejects.toThrow(/bad group!.*letters, digits/);
    await expect(t.reg.register({ group: 'g', onnx: join(t.dir, 'nope.onnx'), source: 't' })).rejects.toThrow(
      /nope\.onnx: artefact file not found/,
    );
    await expect(t.reg.register({ group: 'g', onnx: otherOnnx, metrics: { map50: Number.NaN }, source: 't' })).rejects.toThrow(
      /map50.*finite/,
    );
    await expect(t.reg.register({ group: 'g', onnx: otherOnnx, parentRef: 'g:9', source: 't' })).rejects.toThrow(
      /g:9: parent model version/,
    );
    const badCard = join(t.dir, 'card.json');
    await writeFile(badCard, '{not json');
    await expect(t.reg.register({ group: 'g', onnx: otherOnnx, card: badCard, source: 't' })).rejects.toThrow(
      /card\.json: model card is not valid JSON/,
    );
    expect(await t.reg.list()).toEqual([]);
    await expect(t.reg.get('nocolon')).rejects.toThrow(/nocolon: expected <group>:<version>/);
    await expect(t.reg.setStatus('g:1', 'approved', { by: 'x' })).rejects.toThrow(/g:1: no such model version/);
  });

  it('needs --force to approve a rejected version', async () => {
    const v = await t.reg.register({ group: 'g', onnx: otherOnnx, gate: gate(false, 0.1, null), source: 't' });
    expect(v.status).toBe('rejected');
    await expect(t.reg.setStatus(v.ref, 'approved', { by: 'u' })).rejects.toThrow(/rejected; approve it with --force/);
    await expect(t.reg.setStatus(v.ref, 'approved', { by: 'u', force: true })).rejects.toThrow(/forced approval needs --reason/);
    expect((await t.reg.setStatus(v.ref, 'approved', { by: 'u', force: true, reason: 'the gate data set was wrong' })).status).toBe(
      'approved',
    );
    expect(t.reg.events(v.ref).at(-1)).toMatchObject({
      from: 'rejected',
      to: 'approved',
      by: 'u',
      forced: true,
      reason: 'the gate data set was wrong',
    });
  });

  it('detects a stored artefact that no longer matches its digest', async () => {
    const v = await seedShippedModel(t.reg);
    const p = t.reg.artefacts.pathOf(v.artefacts.card ?? v.artefacts.onnx);
    const bytes = await readFile(p);
    bytes[bytes.length - 1] ^= 0xff;
    await writeFile(p, bytes);
    await expect(t.reg.artefactPath(v, v.artefacts.card ? 'card' : 'onnx')).rejects.toThrow(/does not match its digest/);
  });
});
