import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { datasetDir } from '../../lib/paths.js';
import { startBroker, type EmbeddedBroker } from '../../embedded/broker/broker.js';
import { startObjectStore, type ObjectStore } from '../../embedded/objectstore/index.js';
import { startEdgeStack, type EdgeStack } from '../../embedded/stack/edge.js';
import { STEP_NAMES } from '../../cloud/loop/steps.js';
import {
  BENCHMARK_CARD,
  DEMO_CHAMPION_DIR,
  DEMO_HISTORY_UNTIL,
  DEMO_UPLOADER,
  benchmarkImageIds,
  cameraFolder,
  imagesFirstLabelledAfter,
} from '../../cloud/loop/reference.js';
import { openRegistry } from '../../cloud/registry/sqlite-registry.js';
import { FleetStore } from '../../cloud/publish/fleet-store.js';
import type { LoopConfigInput } from '../../cloud/loop/config.js';
import type { ResultMessage } from '../../contracts/topics.js';
import { snapshotDist, type DistSnapshot } from '../helpers/dist-snapshot.js';

/**
 * The loop for real on one machine: a device (local nucleus with the loupe suite, folder camera
 * over metal-tags) runs in this test process; each loop run is a separate `loupe loop run`
 * process, so killing it (SIGKILL, no clean-up) does not touch the device, as in a plant.
 * As in the demo, the label store starts with the reference history as of DEMO_HISTORY_UNTIL minus
 * the benchmark set, the registry with the demo's starting champion (models/metal-tags-early),
 * and the camera shows the photos labelled after that time (benchmark set left out), so the
 * uploads are new data for the loop. Training is kept CI-sized: one epoch at 160 px from the
 * champion's checkpoint, which gives a challenger clearly worse than the 480 px champion. The
 * gate compares on the val split: 8 uploads leave the test split empty one time in four, and the
 * history has no test images (they are the benchmark set).
 */
// Only the loop command is loaded (see test/helpers/loop-cli.ts), from a frozen copy of dist/
// (test/helpers/dist-snapshot.ts): this test starts a dozen processes over several minutes.
let dist: DistSnapshot;

interface Child {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function loopRun(home: string, env: Record<string, string> = {}, killWhen?: { stderr: RegExp; afterMs: number }): Promise<Child> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [dist.file('test/helpers/loop-cli.js'), 'run', '--home', home, '--json'], {
      env: { ...process.env, LOUPE_NO_PROGRESS: '1', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    let armed = false;
    child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    child.stderr.on('data', (b: Buffer) => {
      stderr += b.toString();
      if (killWhen && !armed && killWhen.stderr.test(stderr)) {
        armed = true;
        setTimeout(() => child.kill('SIGKILL'), killWhen.afterMs);
      }
    });
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

describe.sequential('the loop on the local nucleus (real device, real training)', () => {
  let dir: string;
  let objectStore: ObjectStore;
  let broker: EmbeddedBroker;
  let stack: EdgeStack;
  const results: ResultMessage[] = [];

  beforeAll(async () => {
    dist = snapshotDist();
    dir = await mkdtemp(join(tmpdir(), 'loupe-lr-'));
    objectStore = await startObjectStore({ dir: join(dir, 's3'), buckets: ['loupe'] });
    broker = await startBroker();
    const metal = datasetDir('metal-tags');
    const camera = await cameraFolder(
      imagesFirstLabelledAfter(join(metal, 'labels.csv'), metal, Date.parse(DEMO_HISTORY_UNTIL) / 1000, benchmarkImageIds()),
      join(dir, 'camera'),
    );
    stack = await startEdgeStack({
      root: join(dir, 'edge'),
      thingName: 'line-7',
      bucket: 'loupe',
      objectStore,
      broker,
      source: { type: 'folder', path: camera, mode: 'loop' },
      fps: 2,
      modelDir: DEMO_CHAMPION_DIR,
      config: { uploader: DEMO_UPLOADER },
    });
    stack.on('result', (r: ResultMessage) => results.push(r));
    for (let i = 0; i < 120 && (await stack.listUploads()).filter((k) => k.endsWith('.jpg')).length < 8; i++)
      await new Promise((r) => setTimeout(r, 500));
  });
  afterAll(async () => {
    await stack?.stop();
    await broker?.stop();
    await objectStore?.stop();
    await rm(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 500 });
    dist?.remove();
  });

  async function home(name: string, gate: LoopConfigInput['gate'], int8?: LoopConfigInput['int8']): Promise<string> {
    const h = join(dir, name);
    await mkdir(h, { recursive: true });
    const metal = datasetDir('metal-tags');
    const config: LoopConfigInput = {
      storage: { endpoint: objectStore.endpoint, bucket: 'loupe', keysFile: objectStore.keysFile },
      history: { labelsCsv: join(metal, 'labels.csv'), imagesDir: metal, until: DEMO_HISTORY_UNTIL, exclude: BENCHMARK_CARD },
      seedModel: DEMO_CHAMPION_DIR,
      labeling: { backend: 'simulated', workersPerImage: 2, cap: 8, seed: 3 },
      train: { epochs: 1, imgsz: 160, batch: 16, workers: 1, device: 'cpu' },
      gate,
      ...(int8 ? { int8 } : {}),
      fleet: {
        backend: 'local',
        nucleusRoot: stack.nucleus.root,
        thingName: stack.thingName,
        mqttUrl: broker.url,
        minResults: 1,
        confirmTimeoutSeconds: 120,
      },
    };
    await writeFile(join(h, 'loop.json'), JSON.stringify(config, null, 2));
    return h;
  }

  it('a gate that rejects a worse challenger registers it as rejected and leaves the fleet untouched', async () => {
    const h = await home('reject', { metric: 'map50', threshold: 0.5, tolerance: 0.02, split: 'val' });
    const deploymentsBefore = stack.nucleus.listDeployments().length;
    const r = await loopRun(h);
    expect(r.code, r.stderr.slice(-3000)).toBe(0);
    const report = JSON.parse(r.stdout.trim().split('\n').at(-1)!);
    expect(report.status).toBe('halted');
    expect(report.halt).toMatch(/gate rejected metal-tags:2: the fleet keeps metal-tags:1/);
    expect(report.steps.map((s: { name: string; status: string }) => `${s.name}:${s.status}`)).toEqual([
      ...STEP_NAMES.slice(0, STEP_NAMES.indexOf('register') + 1).map((s) => `${s}:done`),
      'publish:skipped',
      'deploy:skipped',
      'confirm:skipped',
    ]);
    const g = report.outputs.gate;
    expect(g.passed).toBe(false);
    expect(g.summary.challenger).toBeLessThan(g.summary.champion - 0.02);
    expect(existsSync(g.html)).toBe(true);
    const reg = openRegistry(join(h, 'registry'));
    try {
      expect((await reg.list()).map((v) => `${v.ref}:${v.status}`)).toEqual(['metal-tags:1:approved', 'metal-tags:2:rejected']);
      expect((await reg.champion('metal-tags'))?.ref).toBe('metal-tags:1');
    } finally {
      reg.close();
    }
    // The fleet: no new component version, no deployment, the device still runs the shipped model.
    expect(existsSync(join(h, 'components', 'recipes'))).toBe(false);
    const fleet = new FleetStore(join(h, 'fleet.db'));
    expect(fleet.deployments()).toEqual([]);
    fleet.close();
    expect(stack.nucleus.listDeployments().length).toBe(deploymentsBefore);
    expect(stack.nucleus.status().components.find((c) => c.name === 'loupe.Model')?.version).toBe('1.0.0');
    const shipped = String(stack.nucleus.configuration('loupe.Model')?.sha256);
    await new Promise((res) => setTimeout(res, 1500));
    expect(results.at(-1)?.model.sha256).toBe(shipped);
  }, 600_000);

  it('killed after each step (and mid-training) resumes and finishes with no duplicate labels, models or deployments', async () => {
    // The gate is opened wide here so the run goes through publish, deploy and confirm with a
    // CI-sized challenger; the gate's own rule is tested above and in gate.test.ts.
    // int8 is opened wide too, so the device ends up running the challenger's int8 file.
    const h = await home('crash', { metric: 'map50', threshold: 0, tolerance: 1, split: 'val' }, { tolerance: 1 });
    const deploymentsBefore = stack.nucleus.listDeployments().length;
    const crashes: string[] = [];
    for (const step of STEP_NAMES) {
      if (step === 'train') {
        // A kill from outside while train.py is running (its child survives the SIGKILL; the resumed run stops it).
        const mid = await loopRun(h, {}, { stderr: /loop \[5\/\d+\] train/, afterMs: 4000 });
        expect(mid.signal, mid.stderr.slice(-2000)).toBe('SIGKILL');
        crashes.push('train:mid');
      }
      const c = await loopRun(h, { LOUPE_LOOP_CRASH: `${step}:after` });
      expect(c.signal, `${step}: ${c.stderr.slice(-3000)}`).toBe('SIGKILL');
      crashes.push(`${step}:after`);
    }
    const done = await loopRun(h);
    expect(done.code, done.stderr.slice(-3000)).toBe(0);
    const report = JSON.parse(done.stdout.trim().split('\n').at(-1)!);
    expect(report).toMatchObject({ run: 1, status: 'succeeded', resumed: true });
    for (const s of report.steps) expect(s.attempts, s.name).toBe(s.name === 'train' ? 3 : 2);

    // Labels: every record written once (per image, status and job), one labelling job.
    const db = new Database(join(h, 'labels.db'), { readonly: true });
    try {
      const recTable = 'label_records';
      const dups = db
        .prepare(
          `SELECT source_ref, status, labeling_job, COUNT(*) AS n FROM ${recTable} GROUP BY source_ref, status, labeling_job HAVING n > 1`,
        )
        .all();
      expect(dups).toEqual([]);
      expect((db.prepare('SELECT name FROM labeling_jobs').all() as { name: string }[]).map((j) => j.name)).toEqual(['loop-1']);
      const approved = db
        .prepare(`SELECT COUNT(*) AS n FROM ${recTable} WHERE labeling_job = 'labeling-job/loop-1' AND status = 'APPROVED'`)
        .get() as { n: number };
      expect(approved.n).toBe(report.outputs.verify.approved);
    } finally {
      db.close();
    }
    // Models: the seed and one challenger, whose int8 file the gate chose for the fleet.
    const reg = openRegistry(join(h, 'registry'));
    try {
      expect((await reg.list()).map((v) => `${v.ref}:${v.status}`)).toEqual(['metal-tags:1:approved', 'metal-tags:2:approved']);
      const v2 = await reg.mustGet('metal-tags:2');
      expect(v2.fleetPrecision).toBe('int8');
      expect(report.outputs.register).toMatchObject({ fleetPrecision: 'int8', onnxSha256: v2.artefacts.onnxInt8!.sha256 });
    } finally {
      reg.close();
    }
    // Deployments: one component version, one deployment, confirmed by the device's own results.
    const fleet = new FleetStore(join(h, 'fleet.db'));
    try {
      expect(fleet.componentVersions('local', 'loupe.Model').map((c) => `${c.version}:${c.state}`)).toEqual(['1.0.1:created']);
      expect(fleet.deployments().map((d) => `${d.name}:${d.version}:${d.state}`)).toEqual(['loupe-run-1:1.0.1:confirmed']);
    } finally {
      fleet.close();
    }
    expect(readdirSync(join(h, 'components', 'recipes'))).toEqual(['loupe.Model-1.0.1.json']);
    expect(stack.nucleus.listDeployments().length).toBe(deploymentsBefore + 1);
    expect(stack.nucleus.status().components.find((c) => c.name === 'loupe.Model')?.version).toBe('1.0.1');
    const newSha = report.outputs.register.onnxSha256;
    await new Promise((res) => setTimeout(res, 1500));
    expect(results.filter((r) => r.model.sha256 === newSha).length).toBeGreaterThan(0);
    expect(results.at(-1)?.model).toMatchObject({ version: '1.0.1', sha256: newSha, precision: 'int8' });
    // No trainer left behind by the killed attempts.
    const trainers = readdirSync('/proc')
      .filter((p) => /^\d+$/.test(p))
      .filter((p) => {
        try {
          return readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(join(h, 'runs'));
        } catch {
          return false;
        }
      });
    expect(trainers).toEqual([]);
    expect(crashes.length).toBe(STEP_NAMES.length + 1);
  }, 1_500_000);

  it('`loupe fleet status|rollback|deploy` on the device the loop just updated', async () => {
    const h = join(dir, 'crash');
    const cli = (args: string[]) =>
      new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
        const c = spawn(process.execPath, [dist.bin, ...args], {
          env: { ...process.env, LOUPE_NO_PROGRESS: '1' },
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        let stdout = '';
        let stderr = '';
        c.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
        c.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
        c.on('error', reject);
        c.on('close', (code) => resolve({ code, stdout, stderr }));
      });
    const st = await cli(['fleet', 'status', '--home', h, '--json']);
    expect(st.code, st.stderr).toBe(0);
    const status = JSON.parse(st.stdout);
    expect(status).toMatchObject({
      backend: 'local',
      target: 'line-7',
      champion: 'metal-tags:2',
      current: { name: 'loupe-run-1', version: '1.0.1', previousVersion: '1.0.0', state: 'confirmed' },
    });
    expect(status.devices).toEqual([{ device: 'line-7', modelVersion: '1.0.1', state: 'FINISHED' }]); // loupe.Model runs no program: installed and FINISHED

    const rb = await cli(['fleet', 'rollback', '--home', h, '--reject', '--reason', 'operators saw false alarms', '--json']);
    expect(rb.code, rb.stderr).toBe(0);
    expect(JSON.parse(rb.stdout)).toMatchObject({ from: '1.0.1', to: '1.0.0', model: 'component:1.0.0', state: 'succeeded' });
    expect(stack.nucleus.status().components.find((c) => c.name === 'loupe.Model')?.version).toBe('1.0.0');
    const shipped = String(stack.nucleus.configuration('loupe.Model')?.sha256);
    const n = results.length;
    for (let i = 0; i < 40 && !results.slice(n).some((r) => r.model.sha256 === shipped); i++)
      await new Promise((res) => setTimeout(res, 250));
    expect(results.slice(n).some((r) => r.model.sha256 === shipped)).toBe(true);
    const reg = openRegistry(join(h, 'registry'));
    try {
      const v2 = await reg.mustGet('metal-tags:2');
      expect(v2.status).toBe('rejected');
      expect(v2.statusReason).toBe('operators saw false alarms');
      expect((await reg.champion('metal-tags'))?.ref).toBe('metal-tags:1');
    } finally {
      reg.close();
    }
    // Deploying a rejected version is refused; approving it again (forced) and deploying reuses its component version.
    const refused = await cli(['fleet', 'deploy', 'metal-tags:2', '--home', h]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/metal-tags:2: only approved versions are deployed \(this one is rejected\)/);
    expect(
      (await cli(['models', 'approve', 'metal-tags:2', '--home', h, '--force', '--reason', 'false alarms were a lighting fault'])).code,
    ).toBe(0);
    const dep = await cli(['fleet', 'deploy', 'metal-tags:2', '--home', h, '--json']);
    expect(dep.code, dep.stderr).toBe(0);
    expect(JSON.parse(dep.stdout)).toMatchObject({ model: 'metal-tags:2', version: '1.0.1', previousVersion: '1.0.0', state: 'succeeded' });
    expect(stack.nucleus.status().components.find((c) => c.name === 'loupe.Model')?.version).toBe('1.0.1');
    const fleet = new FleetStore(join(h, 'fleet.db'));
    try {
      expect(fleet.componentVersions('local', 'loupe.Model').length).toBe(1);
      expect(fleet.deployments().map((d) => `${d.kind}:${d.previousVersion}->${d.version}`)).toEqual([
        'deploy:1.0.0->1.0.1',
        'rollback:1.0.1->1.0.0',
        'deploy:1.0.0->1.0.1',
      ]);
    } finally {
      fleet.close();
    }
  }, 600_000);
});
