import { cpSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../lib/log.js';
import { datasetDir, projectRoot } from '../../lib/paths.js';
import { startObjectStore, type ObjectStore } from '../../embedded/objectstore/index.js';
import { loopHome, parseLoopConfig } from '../../cloud/loop/config.js';
import { runLoopOnce } from '../../cloud/loop/loop.js';
import { LoopStore } from '../../cloud/loop/store.js';
import { STEP_NAMES } from '../../cloud/loop/steps.js';
import { openRegistry } from '../../cloud/registry/sqlite-registry.js';
import { SHIPPED_MODEL_DIR } from '../../cloud/registry/seed.js';

/**
 * A loop run the previous release (53fa33d) started and that was killed after its snapshot step
 * ran (test/fixtures/previous-release/interrupted; ingest, label, verify committed with that
 * release's outputs), resumed by today's loop: the stores migrate, the committed outputs are
 * checked against today's step schemas and handed to the steps that need them, the snapshot step
 * runs again (as of the moment that release's verify step fixed), then real training (1 epoch at
 * 160 px), evaluation, the gate and the registry. The policy asks for a person's approval, so
 * the run ends (halted) before the fleet: the fixture's nucleus is not part of it.
 *
 * What the fixture leaves out is restored as its README says: the object store with the four
 * uploads (same photos, same keys, the fixture's keys), the registry's artefact files (the
 * shipped model, content-addressed), loop.json's machine paths.
 */
const fixture = join(projectRoot, 'test', 'fixtures', 'previous-release', 'interrupted');
const dir = mkdtempSync(join(tmpdir(), 'loupe-resume-prev-'));
let store: ObjectStore | undefined;
afterAll(async () => {
  await store?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('a loop run interrupted by the previous release', () => {
  it('resumes with today’s typed steps and ports, from the step that was in flight', async () => {
    const home = loopHome(join(dir, 'home'));
    cpSync(fixture, home.dir, { recursive: true });
    const metal = datasetDir('metal-tags');
    const raw = JSON.parse(readFileSync(join(home.dir, 'loop.json'), 'utf8')) as {
      storage: { credentials: { accessKeyId: string; secretAccessKey: string } };
    };
    store = await startObjectStore({ dir: join(dir, 's3'), buckets: ['loupe'], credentials: raw.storage.credentials });
    // The four uploads, as make-interrupted.mjs put them.
    const s3 = new S3Client({ ...store.clientConfig });
    try {
      const photos = readdirSync(join(metal, 'bad'))
        .sort()
        .filter((f) => f.includes('cropped'))
        .slice(-4);
      for (const [i, f] of photos.entries()) {
        await s3.send(
          new PutObjectCommand({
            Bucket: 'loupe',
            Key: `incoming/line-1/2024/06/01/cam1-r1-000000${i}.jpg`,
            Body: readFileSync(join(metal, 'bad', f)),
          }),
        );
      }
    } finally {
      s3.destroy();
    }
    const reg = openRegistry(home.registryDir);
    try {
      for (const f of ['model.onnx', 'model.pt', 'card.json']) await reg.artefacts.put(join(SHIPPED_MODEL_DIR, f));
    } finally {
      reg.close();
    }
    // The killed attempt's snapshot folder names its own absolute path in data.yaml: where the
    // fixture was made, another machine. This home has moved; the resumed snapshot step reuses the
    // folder and must point data.yaml here, or training would read (or miss) the old place.
    const snaps = readdirSync(home.snapshotsDir).filter((d) => d.startsWith('snap-'));
    expect(snaps).toHaveLength(1);
    const yamlPath = (snap: string) => readFileSync(join(home.snapshotsDir, snap, 'data.yaml'), 'utf8').match(/^path: (.*)$/m)?.[1];
    expect(yamlPath(snaps[0]!)).not.toBe(join(home.snapshotsDir, snaps[0]!));
    const text = readFileSync(join(home.dir, 'loop.json'), 'utf8')
      .replaceAll('${METAL_TAGS}', metal)
      .replaceAll('${OBJECT_STORE}', store.endpoint)
      .replaceAll('${NUCLEUS_ROOT}', join(dir, 'nucleus'));
    const cfg = {
      ...(JSON.parse(text) as Record<string, unknown>),
      policy: { autoApprove: false },
      gate: { split: 'val', threshold: 0, tolerance: 1 },
      int8: { enabled: false },
    };
    writeFileSync(home.config, JSON.stringify(cfg, null, 2));
    const config = parseLoopConfig(cfg, home.config, home.dir);

    const before = new LoopStore(home.loopDb);
    const committed = Object.fromEntries(
      before
        .steps(1)
        .filter((s) => s.status === 'done')
        .map((s) => [s.name, s.output]),
    );
    before.close();

    const report = await runLoopOnce({ config, home, trigger: 'manual', log: silentLogger });
    expect(report).toMatchObject({ run: 1, resumed: true, status: 'halted' });
    expect(report.halt).toMatch(/^metal-tags:2 awaits approval/);
    const byName = Object.fromEntries(report.steps.map((s) => [s.name, s]));
    // Done by the previous release: not run again, their outputs as that release wrote them.
    for (const s of ['ingest', 'label', 'verify']) expect(byName[s]).toMatchObject({ status: 'done', attempts: 1 });
    for (const s of ['ingest', 'label', 'verify']) expect(report.outputs[s]).toEqual(committed[s]);
    // In flight when it was killed: run again.
    expect(byName.snapshot).toMatchObject({ status: 'done', attempts: 2 });
    // The snapshot as of the moment the previous release's verify step fixed.
    expect(report.outputs.snapshot).toMatchObject({ asOf: committed.verify!.verifiedAt });
    for (const s of STEP_NAMES.slice(STEP_NAMES.indexOf('train'), STEP_NAMES.indexOf('register') + 1))
      expect(byName[s]).toMatchObject({ status: 'done', attempts: 1 });
    for (const s of ['publish', 'deploy', 'confirm']) expect(byName[s]!.status).toBe('skipped');
    expect(report.outputs.train).toMatchObject({ backend: 'local', base: 'metal-tags:1', epochs: 1 });
    // Reused where it is now, and trained from there.
    expect(report.outputs.snapshot).toMatchObject({ id: snaps[0], dir: join(home.snapshotsDir, snaps[0]!) });
    expect(yamlPath(snaps[0]!)).toBe(join(home.snapshotsDir, snaps[0]!));
    expect(report.outputs.register).toMatchObject({ ref: 'metal-tags:2', status: 'pending', fleetPrecision: 'fp32' });
    const after = new LoopStore(home.loopDb);
    try {
      expect(after.steps(1).find((s) => s.name === 'register')?.halt).toBe(report.halt);
    } finally {
      after.close();
    }
  }, 900_000);
});
