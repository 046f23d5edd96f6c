import { cpSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { projectRoot } from '../../lib/paths.js';
import { latestVersion, schemaVersion, type SqliteSchema } from '../../lib/migrate.js';
import { openLabelStore } from '../../cloud/labelstore/index.js';
import { LABEL_STORE_SCHEMA } from '../../cloud/labelstore/schema.js';
import { Labeling } from '../../cloud/labeling/jobs.js';
import { makeRecord } from '../../contracts/label-record.js';
import { FeatureStoreMirror } from '../../cloud/loop/aws/featurestore-mirror.js';
import type { FeatureStoreLabelStore } from '../../cloud/labelstore/featurestore.js';
import { openRegistry, REGISTRY_SCHEMA } from '../../cloud/registry/sqlite-registry.js';
import { SageMakerRegistryMirror, SAGEMAKER_MIRROR_SCHEMA } from '../../cloud/loop/aws/registry-mirror.js';
import type { SageMakerModelRegistry } from '../../cloud/registry/sagemaker-registry.js';
import { FleetStore, FLEET_STORE_SCHEMA } from '../../cloud/publish/fleet-store.js';
import { LoopStore, LOOP_STORE_SCHEMA } from '../../cloud/loop/store.js';

/**
 * Stores written by the previous, unversioned release (53fa33d; test/fixtures/previous-release
 * says how they were made) open with today's code: their schema is brought to the current
 * version, their data reads back through the stores' own APIs, and they keep working. Each test
 * opens a copy: opening migrates, and the fixtures must stay as that release left them.
 */
const fixtures = join(projectRoot, 'test', 'fixtures', 'previous-release');
const tmp = mkdtempSync(join(tmpdir(), 'loupe-prev-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
let n = 0;
function copy(rel: string): string {
  const dst = join(tmp, String(++n));
  cpSync(join(fixtures, rel), dst, { recursive: true });
  return dst;
}
function versionOf(path: string): number {
  const db = new Database(path, { readonly: true });
  try {
    return schemaVersion(db);
  } finally {
    db.close();
  }
}

describe('stores written by the previous release open, migrate and keep working', () => {
  it('label store + labelling jobs + Feature Store watermark (labels.db)', async () => {
    const facts = JSON.parse(readFileSync(join(fixtures, 'stores', 'labels.json'), 'utf8')) as {
      records: number;
      job: { approved: number };
      mirror: { watermark: number };
    };
    const dir = copy('stores');
    expect(versionOf(join(dir, 'labels.db'))).toBe(0);
    const store = openLabelStore(join(dir, 'labels.db'));
    try {
      expect(schemaVersion(store.db)).toBe(latestVersion(LABEL_STORE_SCHEMA));
      expect(store.count()).toBe(facts.records);
      const latest = await store.latest();
      expect(latest.filter((r) => r.status === 'APPROVED').length).toBe(44 + facts.job.approved);
      const upload = (await store.history('s3://loupe/incoming/line-1/2024/06/01/image-2020-04-22-10-51-14-06-cropped-left-top.jpg'))[0]!;
      expect(upload).toMatchObject({
        status: 'PENDING',
        device: 'line-1',
        model_version: '1.0.0',
        meta: { camera: 'cam1', reason: 'failed' },
      });
      expect(upload.annotations).toEqual([{ class_id: 0, left: 81, top: 123, width: 82, height: 97, confidence: 0.62 }]);
      // still append-only (the old triggers), still appendable
      expect(() => store.db.prepare('DELETE FROM label_records').run()).toThrow(/append-only/);
      await store.append([
        makeRecord({
          source_ref: 's3://loupe/new.jpg',
          image_width: 450,
          image_height: 300,
          annotations: [],
          event_time: 1_800_000_000,
          labeling_job: '',
          status: 'PENDING',
        }),
      ]);
      expect(store.count()).toBe(facts.records + 1);
      // the labelling job of that release, and a new one beside it
      const lab = new Labeling(store);
      expect(lab.getJob('prev-job')).toMatchObject({ classes: ['scratch'], workersPerImage: 2, counts: { approved: facts.job.approved } });
      await lab.createJob({ name: 'after-upgrade', classes: ['scratch'], workersPerImage: 1, cap: 5 });
      expect(
        lab
          .listJobs()
          .map((j) => j.name)
          .sort(),
      ).toEqual(['after-upgrade', 'prev-job']);
      // the Feature Store mirror's watermark survived (its remote is AWS: not called here)
      const mirror = new FeatureStoreMirror(store, {} as FeatureStoreLabelStore, { featureGroupName: 'loupe-labels', createGroup: false });
      expect(mirror.watermark()).toBe(facts.mirror.watermark);
      expect(mirror.pending()).toBe(1);
    } finally {
      await store.close();
    }
    // opened again: nothing left to migrate
    expect(versionOf(join(dir, 'labels.db'))).toBe(latestVersion(LABEL_STORE_SCHEMA));
  });

  it('model registry (registry/) and its SageMaker mirror (sagemaker-mirror.db)', async () => {
    const dir = copy('stores');
    const reg = openRegistry(join(dir, 'registry'));
    try {
      expect(schemaVersion(reg.db)).toBe(latestVersion(REGISTRY_SCHEMA));
      const versions = await reg.list();
      expect(versions.map((v) => `${v.ref}:${v.status}`)).toEqual(['metal-tags:1:approved', 'metal-tags:2:approved']);
      expect(versions[1]).toMatchObject({ parentRef: 'metal-tags:1', datasetVersion: 'ds-2', metrics: { map50: 0.91 } });
      expect((await reg.champion('metal-tags'))?.ref).toBe('metal-tags:2');
      expect(reg.events('metal-tags:2').map((e) => `${e.from}->${e.to}:${e.by}`)).toEqual([
        'null->pending:policy',
        'pending->approved:operator',
      ]);
      // artefacts verified against their digests
      expect(readFileSync(await reg.artefactPath(versions[0]!, 'onnx'), 'utf8')).toMatch(/not a real ONNX/);
      const mirror = new SageMakerRegistryMirror(reg, {} as SageMakerModelRegistry, dir);
      try {
        expect(mirror.mirrored('metal-tags:2')).toMatchObject({
          ref: 'metal-tags/2',
          status: 'approved',
          arn: expect.stringMatching(/model-package\/metal-tags\/2$/),
        });
      } finally {
        mirror.close();
      }
      expect(versionOf(join(dir, 'sagemaker-mirror.db'))).toBe(latestVersion(SAGEMAKER_MIRROR_SCHEMA));
    } finally {
      reg.close();
    }
  });

  it('fleet store (fleet.db)', () => {
    const dir = copy('stores');
    const fleet = new FleetStore(join(dir, 'fleet.db'));
    try {
      expect(schemaVersion(fleet.db)).toBe(latestVersion(FLEET_STORE_SCHEMA));
      expect(fleet.current('local', 'thing/line-1')).toMatchObject({
        version: '1.0.1',
        previousVersion: '1.0.0',
        state: 'confirmed',
        deploymentId: 'dep-1',
        components: { 'loupe.Model': '1.0.1' },
      });
      expect(fleet.componentVersions('local', 'loupe.Model').map((c) => `${c.version}:${c.state}`)).toEqual([
        '1.0.1:created',
        '1.0.2:intent',
      ]);
      fleet.markComponentCreated('local', 'loupe.Model', '1.0.2', null);
      expect(fleet.componentVersion('local', 'loupe.Model', '1.0.2')?.state).toBe('created');
    } finally {
      fleet.close();
    }
  });

  it('loop store (loop.db): finished and unfinished runs, kv, a stale lock taken over', () => {
    const dir = copy('stores');
    const loop = new LoopStore(join(dir, 'loop.db'));
    try {
      expect(schemaVersion(loop.db)).toBe(latestVersion(LOOP_STORE_SCHEMA));
      expect(
        loop
          .listRuns()
          .map((r) => `${r.id}:${r.status}`)
          .sort(),
      ).toEqual(['1:succeeded', '2:running']);
      const open = loop.unfinishedRun()!;
      expect(open.id).toBe(2);
      expect(loop.steps(2).map((s) => `${s.name}:${s.status}`)).toEqual(['ingest:done', 'label:running']);
      expect(loop.steps(2)[0]!.output).toEqual({ recorded: 2, watermark: '2024-06-01T08:00:00.000Z' });
      expect(loop.get('triggers.lastApprovedSeq')).toBe(46);
      expect(loop.lockOwner()?.pid).toBe(2_147_483_000);
      expect(loop.acquireLock().tookOverFrom?.pid).toBe(2_147_483_000);
      loop.releaseLock();
    } finally {
      loop.close();
    }
  });

  it('a run interrupted by that release (killed after its snapshot step ran): the home reads with today’s code', () => {
    const dir = copy('interrupted');
    const loop = new LoopStore(join(dir, 'loop.db'));
    try {
      const run = loop.unfinishedRun()!;
      expect(run.status).toBe('running');
      const steps = loop.steps(run.id);
      expect(steps.map((s) => `${s.name}:${s.status}`)).toEqual(['ingest:done', 'label:done', 'verify:done', 'snapshot:running']);
      expect(steps[0]!.output).toMatchObject({ recorded: 4 });
    } finally {
      loop.close();
    }
    const store = openLabelStore(join(dir, 'labels.db'));
    try {
      expect(store.count()).toBeGreaterThan(12);
    } finally {
      void store.close();
    }
  });

  const stores: [string, SqliteSchema, (p: string) => { close(): unknown }][] = [
    ['labels.db', LABEL_STORE_SCHEMA, (p) => openLabelStore(p)],
    ['registry/registry.db', REGISTRY_SCHEMA, (p) => openRegistry(join(p, '..'))],
    [
      'sagemaker-mirror.db',
      SAGEMAKER_MIRROR_SCHEMA,
      (p) => new SageMakerRegistryMirror(openRegistry(join(p, '..', 'registry')), {} as SageMakerModelRegistry, join(p, '..')),
    ],
    ['fleet.db', FLEET_STORE_SCHEMA, (p) => new FleetStore(p)],
    ['loop.db', LOOP_STORE_SCHEMA, (p) => new LoopStore(p)],
  ];
  for (const [file, schema, open] of stores) {
    it(`${file}: a store newer than the code is refused, naming the file`, () => {
      const path = join(copy('stores'), file);
      const raw = new Database(path);
      raw.pragma(`user_version = ${latestVersion(schema) + 1}`);
      raw.close();
      expect(() => open(path).close()).toThrow(
        `${path}: ${schema.name} has schema version ${latestVersion(schema) + 1}, newer than this loupe knows (${latestVersion(schema)})`,
      );
      expect(versionOf(path)).toBe(latestVersion(schema) + 1);
    });
  }
});
