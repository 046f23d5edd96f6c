import { copyFile, mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256File } from '../../lib/fsutil.js';
import { silentLogger } from '../../lib/log.js';
import { projectRoot } from '../../lib/paths.js';
import { loupeEvaluator } from '../../cloud/gate/evaluator.js';
import { parseLoopConfig, loopHome, type LoopConfigInput } from '../../cloud/loop/config.js';
import { LoopEnv } from '../../cloud/loop/env.js';
import { done, runLoop, type LoopStep } from '../../cloud/loop/runner.js';
import { loopSteps } from '../../cloud/loop/steps.js';
import { snapshotOutput, trainOutput } from '../../cloud/loop/outputs.js';
import { LoopStore } from '../../cloud/loop/store.js';
import { openRegistry } from '../../cloud/registry/sqlite-registry.js';
import { deployedArtefact } from '../../cloud/registry/types.js';
import { modelCardSchema } from '../../cloud/training/card.js';
import { yoloDataset } from '../helpers/datasets.js';

/**
 * The loop's int8 path with real models: the loop's own quantize, evaluate, gate and register
 * steps run on the NEU-DET model (its int8 file loses ~0.005 mAP50 on the test split), once with
 * the default tolerance (0.015: the gate picks int8) and once with a tight one (0: the fleet keeps
 * fp32). Training is not what is tested here, so the snapshot and train steps are replaced by
 * steps that hand over the NEU-DET data set and checkpoint (train.py's own metrics.json with it).
 * The full loop with training, deployment and the device running the int8 file is in
 * loop-real.test.ts.
 */
const NEU = join(projectRoot, 'test', 'fixtures', 'models');
const CLASSES = ['crazing', 'inclusion', 'patches', 'pitted_surface', 'rolled-in_scale', 'scratches'];

let dir: string;
let data: string;
let trainDir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'loupe-loop-int8-'));
  data = await yoloDataset('neu-det');
  // One "training output" for both runs: the second finds the int8 file the first made and keeps it.
  trainDir = join(dir, 'train');
  await mkdir(trainDir);
  await copyFile(join(NEU, 'neu-det.onnx'), join(trainDir, 'model.onnx'));
  await copyFile(join(NEU, 'neu-det.pt'), join(trainDir, 'best.pt'));
  await copyFile(join(NEU, 'neu-det.train-metrics.json'), join(trainDir, 'metrics.json'));
}, 600_000);

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function loopRun(name: string, int8: LoopConfigInput['int8']) {
  const home = loopHome(join(dir, name));
  await mkdir(home.dir, { recursive: true });
  // The champion: the NEU-DET fp32 model, as the fleet runs it today.
  const reg = openRegistry(home.registryDir);
  await reg.register({
    group: 'neu-det',
    onnx: join(NEU, 'neu-det.onnx'),
    pt: join(NEU, 'neu-det.pt'),
    source: 'seed',
    status: { status: 'approved', reason: 'test champion', by: 'test' },
  });
  reg.close();
  const config = parseLoopConfig(
    {
      group: 'neu-det',
      classes: CLASSES,
      storage: { endpoint: 'http://127.0.0.1:9', bucket: 'loupe', credentials: { accessKeyId: 'a', secretAccessKey: 'b' } },
      gate: { metric: 'map50', threshold: 0.3, tolerance: 0.02, split: 'test' },
      int8,
    },
    'test',
  );
  const env = await LoopEnv.open(config, home, silentLogger, { evaluate: loupeEvaluator });
  const store = new LoopStore(home.loopDb);
  try {
    const real = loopSteps({ ports: env.ports, config: env.config });
    const counts = { images: 0, train: 0, val: 0, test: 0 };
    const val = { map50: null, map50_95: null, precision: null, recall: null };
    const given: LoopStep[] = [
      {
        name: 'snapshot',
        title: 'the NEU-DET data set',
        output: snapshotOutput,
        run: async () =>
          done({
            id: 'neu-det',
            dir: data,
            dataYaml: data,
            datasetVersion: 'neu-det-fixture',
            asOf: 0,
            counts,
            champion: 'neu-det:1',
            championDataset: null,
          }),
      },
      {
        name: 'train',
        title: 'the NEU-DET checkpoint',
        output: trainOutput,
        run: async () =>
          done({
            dir: trainDir,
            backend: 'local',
            onnx: join(trainDir, 'model.onnx'),
            pt: join(trainDir, 'best.pt'),
            base: 'neu-det:1',
            epochs: 51,
            seconds: 245.9,
            val,
          }),
      },
    ];
    const steps = [...given, ...['quantize', 'evaluate', 'gate', 'register'].map((n) => real.find((s) => s.name === n)!)];
    const report = await runLoop({
      store,
      steps,
      trigger: 'test',
      config: config as unknown as Record<string, unknown>,
      runsDir: home.runsDir,
    });
    const reg2 = openRegistry(home.registryDir);
    try {
      return {
        report,
        v2: await reg2.mustGet('neu-det:2'),
        card: modelCardSchema.parse(JSON.parse(await readFile(await reg2.artefactPath(await reg2.mustGet('neu-det:2'), 'card'), 'utf8'))),
      };
    } finally {
      reg2.close();
    }
  } finally {
    store.close();
    await env.close();
  }
}

describe('the loop picks the file the fleet runs: int8 within tolerance of fp32, else fp32', () => {
  it('default tolerance 0.015: the gate picks int8; registry and card record both files with their scores and digests', async () => {
    const { report, v2, card } = await loopRun('default', undefined);
    expect(report.status, JSON.stringify(report.steps)).toBe('succeeded');
    const q = report.outputs.quantize!;
    expect(q).toMatchObject({ enabled: true, onnx: join(trainDir, 'model.int8.onnx'), calibrationImages: 64, reused: false });
    const ev = report.outputs.evaluate! as {
      challenger: { map50: number };
      challengerInt8: { map50: number };
      champion: { map50: number; fleetPrecision: string };
    };
    const loss = ev.challenger.map50 - ev.challengerInt8.map50;
    expect(loss).toBeGreaterThan(0); // int8 loses a little on NEU-DET ...
    expect(loss).toBeLessThanOrEqual(0.015); // ... within the default tolerance
    expect(ev.champion.fleetPrecision).toBe('fp32');
    const g = report.outputs.gate! as { passed: boolean; fleetPrecision: string; fleetPrecisionReason: string; json: string; html: string };
    expect(g).toMatchObject({ passed: true, fleetPrecision: 'int8' });
    expect(g.fleetPrecisionReason).toMatch(/^int8 map50 0\.\d{4} >= fp32 0\.\d{4} - tolerance 0\.0150$/);
    // The gate compared the file the fleet will run: the int8 one.
    const gate = JSON.parse(await readFile(g.json, 'utf8')) as {
      challenger: { ref: string; model: string; eval: { map50: number } };
      fleetPrecision: { deployed: string; int8Model: string };
    };
    expect(gate.challenger).toMatchObject({ ref: 'run 1 (int8)', model: q.onnx, eval: { map50: ev.challengerInt8.map50 } });
    expect(await readFile(g.html, 'utf8')).toContain('The fleet runs the <b>int8</b> file');

    expect(v2).toMatchObject({
      status: 'approved',
      fleetPrecision: 'int8',
      metrics: { map50: ev.challenger.map50, int8_map50: ev.challengerInt8.map50 },
    });
    expect(v2.artefacts.onnxInt8!.sha256).toBe(q.sha256);
    expect(v2.artefacts.onnx.sha256).toBe(await sha256File(join(NEU, 'neu-det.onnx')));
    expect(deployedArtefact(v2).ref.sha256).toBe(q.sha256);
    expect(report.outputs.register).toMatchObject({
      fleetPrecision: 'int8',
      onnxSha256: q.sha256,
      fp32Sha256: v2.artefacts.onnx.sha256,
      int8Sha256: q.sha256,
    });

    expect(card.files.onnxInt8).toMatchObject({ file: 'model.int8.onnx', sha256: q.sha256 });
    expect(card.metrics.int8).toMatchObject({ map50: ev.challengerInt8.map50, evaluator: 'loupe eval', split: 'test', images: 257 });
    expect(card.fleetPrecision).toMatchObject({ deployed: 'int8', metric: 'map50', tolerance: 0.015 });
    expect(card.fleetPrecision!.quantization).toMatchObject({
      format: 'QDQ',
      calibration: { images: 64 },
      source_sha256: v2.artefacts.onnx.sha256,
    });
  }, 1_800_000);

  it('tight tolerance 0: any int8 loss keeps fp32 for the fleet; the int8 file is still recorded', async () => {
    const { report, v2, card } = await loopRun('tight', { tolerance: 0 });
    expect(report.status, JSON.stringify(report.steps)).toBe('succeeded');
    expect(report.outputs.quantize).toMatchObject({ enabled: true, reused: true });
    const g = report.outputs.gate! as { passed: boolean; fleetPrecision: string; fleetPrecisionReason: string };
    expect(g).toMatchObject({ passed: true, fleetPrecision: 'fp32' });
    expect(g.fleetPrecisionReason).toMatch(/^int8 map50 0\.\d{4} < fp32 0\.\d{4} - tolerance 0\.0000 = 0\.\d{4}: the fleet keeps fp32$/);
    expect(v2.fleetPrecision).toBe('fp32');
    expect(v2.artefacts.onnxInt8).toBeDefined();
    expect(report.outputs.register).toMatchObject({ fleetPrecision: 'fp32', onnxSha256: v2.artefacts.onnx.sha256 });
    expect(card.fleetPrecision).toMatchObject({ deployed: 'fp32', tolerance: 0 });
  }, 1_800_000);
});
