import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, rm, writeFile, mkdir } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { S3Client } from '@aws-sdk/client-s3';
import { parseLoopConfig, readLoopConfig, loopHome } from '../../cloud/loop/config.js';
import { LoopEnv } from '../../cloud/loop/env.js';
import { LoopStore } from '../../cloud/loop/store.js';
import { checkTriggers, championTrainedAsOf } from '../../cloud/loop/triggers.js';
import { ingestIncoming } from '../../cloud/ingest/index.js';
import { startObjectStore, type ObjectStore } from '../../embedded/objectstore/index.js';
import { silentLogger } from '../../lib/log.js';
import { datasetDir } from '../../lib/paths.js';
import { runCli } from '../helpers/cli.js';
import { putUpload } from '../helpers/uploads.js';

describe('loop configuration', () => {
  it('fills defaults and resolves paths against the file', () => {
    const c = parseLoopConfig(
      {
        history: { labelsCsv: 'labels.csv' },
        fleet: { backend: 'local', nucleusRoot: 'gg', thingName: 't', mqttUrl: 'mqtt://127.0.0.1:1883' },
      },
      'x',
      '/srv/loupe',
    );
    expect(c.group).toBe('metal-tags');
    expect(c.gate).toEqual({ metric: 'map50', threshold: 0.5, tolerance: 0.02, split: 'test' });
    expect(c.history.labelsCsv).toBe('/srv/loupe/labels.csv');
    expect(c.fleet).toMatchObject({ backend: 'local', nucleusRoot: '/srv/loupe/gg', deployTimeoutSeconds: 300, minResults: 1 });
  });

  it.each([
    [{ gate: { threshold: 2 } }, /gate\.threshold: .*<=1 \(got 2\)/],
    [{ train: { imgsz: 500 } }, /train\.imgsz: .*multiple of 32.* \(got 500\)/],
    [{ labeling: { backend: 'mturk' } }, /labeling\.backend: .*\(got "mturk"\)/],
    [{ fleet: { backend: 'local', nucleusRoot: 'gg', thingName: 't', mqttUrl: 'http://x' } }, /fleet\.mqttUrl/],
    [{ trainEpochs: 3 }, /\(root\): .*trainEpochs/],
  ])('names the key and the bad value: %j', (raw, re) => {
    expect(() => parseLoopConfig(raw, '/h/loop.json')).toThrow(re);
    expect(() => parseLoopConfig(raw, '/h/loop.json')).toThrow(/^\/h\/loop\.json: /);
  });

  it('`loupe loop run` without a configuration or with broken JSON fails naming the file', async () => {
    const h = await mkdtemp(join(tmpdir(), 'loupe-lc-'));
    try {
      const a = await runCli(['loop', 'run', '--home', h]);
      expect(a.code).toBe(1);
      expect(a.stderr).toContain(`${join(h, 'loop.json')}: loop configuration not found`);
      await writeFile(join(h, 'loop.json'), '{"group": ');
      const b = await runCli(['loop', 'run', '--home', h]);
      expect(b.code).toBe(1);
      expect(b.stderr).toMatch(/loop\.json: not valid JSON/);
      const c = await runCli(['loop', 'status', '--home', h]);
      expect(c.code).toBe(1);
      expect(c.stderr).toContain('no loop has run here yet');
    } finally {
      await rm(h, { recursive: true, force: true });
    }
  });
});

describe('loop triggers (real label store, registry and object store)', () => {
  let dir: string;
  let os: ObjectStore;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'loupe-trig-'));
    os = await startObjectStore({ dir: join(dir, 's3'), buckets: ['loupe'] });
  });
  afterAll(async () => {
    await os.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('is due when enough uploads wait for labelling, or when the schedule says so', async () => {
    const metal = datasetDir('metal-tags');
    const home = loopHome(join(dir, 'home'));
    await mkdir(home.dir, { recursive: true });
    const config = parseLoopConfig(
      {
        storage: { endpoint: os.endpoint, bucket: 'loupe', credentials: os.clientConfig.credentials },
        history: { labelsCsv: join(metal, 'labels.csv'), imagesDir: metal },
        trigger: { minNewLabels: 3, everyMinutes: 60 },
      },
      'test',
    );
    const env = await LoopEnv.open(config, home, silentLogger);
    const store = new LoopStore(home.loopDb);
    try {
      // The shipped model was trained on the whole history: nothing is new yet.
      const history = await env.labels.latest({ status: 'APPROVED' });
      expect(await championTrainedAsOf(env)).toBe(Math.max(...history.map((r) => r.event_time)));
      store.set('schedule.lastRunAt', Date.now());
      let t = await checkTriggers(env, store);
      expect(t).toMatchObject({ due: false, newApproved: 0, unlabelled: 0, scheduleDue: false });
      // Two device uploads: not enough.
      const s3 = new S3Client(os.clientConfig);
      const bad = [
        'bad/image-2020-04-22-10-51-14-06-cropped-left-top.jpg',
        'bad/image-2020-04-22-10-51-26-67-cropped-left-bottom.jpg',
        'bad/image-2020-04-22-10-51-51-85-cropped-left-top.jpg',
      ];
      const put = async (i: number) => {
        const key = `incoming/line-1/2024/06/01/f${i}`;
        await putUpload(s3, 'loupe', key, readFileSync(join(metal, bad[i]!)), { device: 'line-1', seq: i });
      };
      await put(0);
      await put(1);
      await ingestIncoming({ s3: env.s3, bucket: 'loupe', store: env.labels, statePath: home.ingestState });
      t = await checkTriggers(env, store);
      expect(t).toMatchObject({ due: false, unlabelled: 2 });
      await put(2);
      await ingestIncoming({ s3: env.s3, bucket: 'loupe', store: env.labels, statePath: home.ingestState });
      t = await checkTriggers(env, store);
      expect(t).toMatchObject({ due: true, unlabelled: 3, reason: 'labels: 0 new approved + 3 to label >= 3' });
      // The schedule alone: an hour after the last scheduled run.
      const later = await checkTriggers(env, store, Date.now() + 61 * 60_000);
      expect(later.scheduleDue).toBe(true);
      s3.destroy();
    } finally {
      store.close();
      await env.close();
    }
    // `loupe loop watch --once` says the same from the CLI (and runs nothing when not due).
    const cfgPath = join(dir, 'home', 'loop.json');
    await writeFile(cfgPath, JSON.stringify({ ...JSON.parse(JSON.stringify(config)), trigger: { minNewLabels: 50 } }));
    const r = await runCli(['loop', 'watch', '--once', '--home', join(dir, 'home'), '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ due: false, unlabelled: 3 });
    expect(readLoopConfig(cfgPath).trigger.minNewLabels).toBe(50);
  });
});
