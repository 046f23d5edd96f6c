import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openRegistry, type SqliteModelRegistry } from '../../cloud/registry/sqlite-registry.js';
import { seedShippedModel, SHIPPED_MODEL_DIR } from '../../cloud/registry/seed.js';
import type { GateSummary } from '../../cloud/registry/types.js';
import { LoupeError } from '../../lib/errors.js';
import { fields, lengthDelimited } from '../helpers/protobuf.js';

/**
 * Issue 14 item 10: the registry took a truncated ONNX or a text file, and `models approve`
 * made a version champion without a gate result. Registration now checks the model as the
 * detector loads it (and the checkpoint and card), and approving without a passing gate needs
 * `force` with a reason, recorded in the history.
 */
const onnx = join(SHIPPED_MODEL_DIR, 'model.onnx');
const pt = join(SHIPPED_MODEL_DIR, 'model.pt');
const card = join(SHIPPED_MODEL_DIR, 'card.json');

/** Rewrite a ModelProto's metadata_props (field 14): `edit` gets each key/value, returns the new value or null to drop it. */
function editMetadata(bytes: Uint8Array, edit: (key: string, value: string) => string | null): Buffer {
  const parts: Uint8Array[] = [];
  for (const [field, , start, body, end] of fields(bytes)) {
    if (field !== 14) {
      parts.push(bytes.subarray(start, end)); // the graph is megabytes: kept as a slice
      continue;
    }
    const entry = bytes.subarray(body, end);
    let key = '';
    let value = '';
    for (const [f, , , b, e] of fields(entry)) {
      const s = Buffer.from(entry.subarray(b, e)).toString('utf8');
      if (f === 1) key = s;
      else if (f === 2) value = s;
    }
    const nv = edit(key, value);
    if (nv !== null)
      parts.push(Buffer.from(lengthDelimited(14, [...lengthDelimited(1, Buffer.from(key)), ...lengthDelimited(2, Buffer.from(nv))])));
  }
  return Buffer.concat(parts);
}

const gate = (passed: boolean): GateSummary => ({
  passed,
  metric: 'map50',
  challenger: passed ? 0.9 : 0.3,
  champion: 0.89,
  championRef: 'metal-tags:1',
  threshold: 0.5,
  tolerance: 0.02,
  reasons: [passed ? 'map50 0.9 >= 0.87' : 'map50 0.3 < threshold 0.5'],
});

async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(LoupeError);
    return `${(e as LoupeError).code}: ${(e as LoupeError).message}`;
  }
  throw new Error('accepted, but should have been refused');
}

describe('model registry: validation at register, forced approval recorded', () => {
  let dir: string;
  let reg: SqliteModelRegistry;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'loupe-regval-'));
    reg = openRegistry(join(dir, 'registry'));
  });
  afterEach(async () => {
    reg.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('refuses what the detector could not run, and stores nothing', async () => {
    const bytes = await readFile(onnx);
    const bad: Record<string, Buffer | string> = {
      'text.onnx': 'this is not a model\n',
      'head.onnx': bytes.subarray(0, 50_000),
      'tail-cut.onnx': bytes.subarray(0, bytes.length - 1_000_000),
      'no-names.onnx': editMetadata(bytes, (k, v) => (k === 'names' ? null : v)),
      'segment.onnx': editMetadata(bytes, (k, v) => (k === 'task' ? 'segment' : v)),
      'two-names.onnx': editMetadata(bytes, (k, v) => (k === 'names' ? "{0: 'scratch', 1: 'dent'}" : v)),
    };
    const want: Record<string, RegExp> = {
      'text.onnx': /not an ONNX model/,
      'head.onnx': /not an ONNX model/,
      'tail-cut.onnx': /not an ONNX model/,
      'no-names.onnx': /no class names/,
      'segment.onnx': /task is 'segment'/,
      'two-names.onnx': /1 class score rows, but 2 class name/,
    };
    for (const [name, content] of Object.entries(bad)) {
      const p = join(dir, name);
      await writeFile(p, content);
      const msg = await code(reg.register({ group: 'metal-tags', onnx: p, source: 'test' }));
      expect(msg, name).toMatch(/^REGISTRY_BAD_MODEL: /);
      expect(msg, name).toContain(p);
      expect(msg, name).toMatch(want[name]!);
    }
    expect(await reg.list()).toEqual([]);
    expect(await readdir(join(dir, 'registry', 'artefacts', 'sha256')).catch(() => [])).toEqual([]);
  });

  it('checks the checkpoint and the card against the model', async () => {
    const ptBytes = await readFile(pt);
    await writeFile(join(dir, 'cut.pt'), ptBytes.subarray(0, ptBytes.length >> 1));
    expect(await code(reg.register({ group: 'metal-tags', onnx, pt: join(dir, 'cut.pt'), source: 'test' }))).toMatch(
      /^REGISTRY_BAD_CHECKPOINT: .*cut\.pt: not a PyTorch checkpoint/,
    );
    await writeFile(join(dir, 'notes.pt'), 'weights go here');
    expect(await code(reg.register({ group: 'metal-tags', onnx, pt: join(dir, 'notes.pt'), source: 'test' }))).toMatch(
      /REGISTRY_BAD_CHECKPOINT/,
    );

    const c = JSON.parse(await readFile(card, 'utf8')) as { files: { onnx: { sha256: string } }; classes: string[] };
    await writeFile(
      join(dir, 'other-digest.json'),
      JSON.stringify({ ...c, files: { ...c.files, onnx: { ...c.files.onnx, sha256: 'f'.repeat(64) } } }),
    );
    expect(await code(reg.register({ group: 'metal-tags', onnx, card: join(dir, 'other-digest.json'), source: 'test' }))).toMatch(
      /^REGISTRY_CARD_MISMATCH: .*other-digest\.json: the card describes an ONNX with sha256 ffff.*, not this one \(8b1c23a3/,
    );
    await writeFile(join(dir, 'other-classes.json'), JSON.stringify({ ...c, classes: ['dent'] }));
    expect(await code(reg.register({ group: 'metal-tags', onnx, card: join(dir, 'other-classes.json'), source: 'test' }))).toMatch(
      /REGISTRY_CARD_MISMATCH: .*card classes \["dent"\] differ from the model's \["scratch"\]/,
    );
    expect(await reg.list()).toEqual([]);
    // the real thing passes
    const v = await reg.register({ group: 'metal-tags', onnx, pt, card, source: 'test' });
    expect(v).toMatchObject({ status: 'pending', meta: { classes: ['scratch'] } });
  });

  it('approving without a passing gate needs force and a reason, recorded with who and when', async () => {
    await seedShippedModel(reg);
    const none = await reg.register({ group: 'metal-tags', onnx, pt, source: 'cli', idempotencyKey: 'a' });
    expect(none.status).toBe('pending');
    expect(await code(reg.setStatus(none.ref, 'approved', { by: 'user:mallory' }))).toMatch(
      /^REGISTRY_NO_GATE: metal-tags:2: no passing gate result/,
    );
    expect(await code(reg.setStatus(none.ref, 'approved', { by: 'user:mallory', force: true }))).toMatch(/^REGISTRY_FORCE_REASON: /);
    expect((await reg.champion('metal-tags'))!.ref).toBe('metal-tags:1');

    const failed = await reg.register({ group: 'metal-tags', onnx, gate: gate(false), source: 'loop', idempotencyKey: 'b' });
    expect(failed.status).toBe('rejected');
    expect(await code(reg.setStatus(failed.ref, 'approved', { by: 'user:ann' }))).toMatch(/REGISTRY_BAD_STATUS|REGISTRY_NO_GATE/);

    const t0 = Date.now();
    const forced = await reg.setStatus(none.ref, 'approved', {
      by: 'user:ann',
      force: true,
      reason: 'line 3 down, shipping the hand-checked model',
    });
    expect(forced).toMatchObject({ status: 'approved', statusBy: 'user:ann' });
    expect((await reg.champion('metal-tags'))!.ref).toBe(none.ref);
    const last = reg.events(none.ref).at(-1)!;
    expect(last).toMatchObject({
      from: 'pending',
      to: 'approved',
      by: 'user:ann',
      forced: true,
      reason: 'line 3 down, shipping the hand-checked model',
    });
    expect(Date.parse(last.at)).toBeGreaterThanOrEqual(t0 - 1000);
    expect(reg.events(none.ref)[0]!.forced).toBe(false);

    // with a passing gate no force is needed
    const good = await reg.register({
      group: 'metal-tags',
      onnx,
      gate: gate(true),
      source: 'loop',
      idempotencyKey: 'c',
      status: { status: 'pending', reason: 'manual', by: 'policy' },
    });
    expect((await reg.setStatus(good.ref, 'approved', { by: 'user:qa' })).status).toBe('approved');
    expect(reg.events(good.ref).at(-1)!.forced).toBe(false);
  });
});
