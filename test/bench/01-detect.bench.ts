import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { sharedDataset } from '../../components/common/paths.js';
import { decodeImage } from '../../components/detector/decode.js';
import { Detector } from '../../components/detector/detector.js';
import { inputPlan, TensorWriter } from '../../components/detector/letterbox.js';
import { fixtureModel } from '../helpers/models.js';
import { runPython } from '../helpers/python.js';
import type { BenchEntry, BenchReport } from './run.js';

/**
 * Bench 01: loupe detect's pipeline (decode, letterbox, inference, NMS, scale back) against
 * - bare onnxruntime `session.run` on a ready input tensor (the limit: no decode, no pre/post), and
 * - ultralytics `predict` with the same ONNX model on the same images (Python, pinned venv),
 * measured in one run on this machine, in alternating rounds so background load hits all three
 * alike; each figure is the median over rounds. Targets: loupe's images/s within 8% of bare
 * session.run, and at least 1.2x ultralytics' images/s.
 */

const ROUNDS = Number(process.env.LOUPE_BENCH_ROUNDS ?? 3);
const IMAGES = Number(process.env.LOUPE_BENCH_IMAGES ?? 40);

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

async function bareRun(model: string, files: string[]): Promise<number> {
  // Same session options as the Detector; one real image as the ready tensor.
  const session = await ort.InferenceSession.create(model, { executionProviders: ['cpu'], graphOptimizationLevel: 'all' });
  try {
    const det = await Detector.load(model);
    const info = det.info;
    await det.dispose();
    const img = await decodeImage(files[0]);
    const plan = inputPlan(img.width, img.height, info, 'predict');
    const data = new Float32Array(3 * plan.geometry.outW * plan.geometry.outH);
    new TensorWriter().write(img, plan.geometry, data);
    const t = new ort.Tensor('float32', data, [1, 3, plan.geometry.outH, plan.geometry.outW]);
    for (let i = 0; i < 3; i++) await session.run({ [info.inputName]: t });
    const t0 = performance.now();
    for (let i = 0; i < files.length; i++) await session.run({ [info.inputName]: t });
    return (performance.now() - t0) / files.length;
  } finally {
    await session.release();
  }
}

/** Serial latency (one image at a time) and pipelined throughput (next image decoding meanwhile). */
async function loupe(model: string, files: string[]): Promise<{ latencyMs: number; pipelinedMs: number; stages: Record<string, number> }> {
  const det = await Detector.load(model);
  try {
    await det.warmup();
    for (const f of files.slice(0, 3)) await det.detect(f);
    const stages = { decodeMs: 0, preprocessMs: 0, inferenceMs: 0, postprocessMs: 0 };
    let t0 = performance.now();
    for (const f of files) {
      const r = await det.detect(f);
      for (const k of Object.keys(stages) as Array<keyof typeof stages>) stages[k] += r.timings[k] / files.length;
    }
    const latencyMs = (performance.now() - t0) / files.length;
    // As `loupe detect` and the inference component run it: the next image decodes while one infers.
    t0 = performance.now();
    let next = det.detect(files[0]);
    for (let i = 0; i < files.length; i++) {
      const cur = next;
      if (i + 1 < files.length) next = det.detect(files[i + 1]);
      await cur;
    }
    const pipelinedMs = (performance.now() - t0) / files.length;
    return { latencyMs, pipelinedMs, stages };
  } finally {
    await det.dispose();
  }
}

async function ultralyticsPredict(model: string, files: string[]): Promise<{ perImageMs: number; speed: Record<string, number> }> {
  const code = `
import json, time, sys
from ultralytics import YOLO
files = json.loads(${JSON.stringify(JSON.stringify(files))})
m = YOLO(${JSON.stringify(model)}, task='detect')
for f in files[:3]:
    m.predict(f, verbose=False)
sp = {'preprocess': 0.0, 'inference': 0.0, 'postprocess': 0.0}
t0 = time.perf_counter()
for f in files:
    r = m.predict(f, verbose=False)[0]
    for k in sp:
        sp[k] += r.speed[k] / len(files)
dt = (time.perf_counter() - t0) / len(files) * 1000
sys.stdout.write('\\n@@' + json.dumps({'perImageMs': dt, 'speed': sp}) + '\\n')
`;
  const out = await runPython(code, { timeoutMs: 1_800_000, cwd: '/tmp', env: { YOLO_OFFLINE: 'true', YOLO_AUTOINSTALL: 'false', YOLO_VERBOSE: 'false' } });
  return JSON.parse(out.slice(out.lastIndexOf('\n@@') + 3)) as { perImageMs: number; speed: Record<string, number> };
}

const entry: BenchEntry = {
  name: '01-detect',
  async run(): Promise<BenchReport> {
    const model = await fixtureModel('metal-tags');
    const dir = join(sharedDataset('metal-tags'), 'bad');
    const files = readdirSync(dir)
      .sort()
      .slice(0, IMAGES)
      .map((f) => join(dir, f));
    const bare: number[] = [];
    const lat: number[] = [];
    const pipe: number[] = [];
    const ultra: number[] = [];
    let stages: Record<string, number> = {};
    let ultraSpeed: Record<string, number> = {};
    for (let r = 0; r < ROUNDS; r++) {
      bare.push(await bareRun(model, files));
      const l = await loupe(model, files);
      lat.push(l.latencyMs);
      pipe.push(l.pipelinedMs);
      stages = l.stages;
      const u = await ultralyticsPredict(model, files);
      ultra.push(u.perImageMs);
      ultraSpeed = u.speed;
      process.stderr.write(`bench 01-detect round ${r + 1}/${ROUNDS}: bare ${bare[r].toFixed(1)} ms, loupe ${lat[r].toFixed(1)} ms serial / ${pipe[r].toFixed(1)} ms pipelined, ultralytics ${ultra[r].toFixed(1)} ms\n`);
    }
    const ips = (ms: number): number => +(1000 / ms).toFixed(2);
    const bareMs = median(bare);
    const pipeMs = median(pipe);
    const latMs = median(lat);
    const ultraMs = median(ultra);
    const vsBare = ips(pipeMs) / ips(bareMs);
    const vsUltra = ips(pipeMs) / ips(ultraMs);
    return {
      entry: '01-detect',
      machine: { onnxruntimeNode: ort.env.versions?.node ?? 'unknown', model: 'models/metal-tags/model.onnx (YOLOv8n, 480x480, float32)', images: `${files.length} metal-tags images (450x300 JPEG)`, rounds: ROUNDS },
      results: {
        bareSessionRun: { msPerImage: +bareMs.toFixed(2), imagesPerS: ips(bareMs), rounds: bare.map((v) => +v.toFixed(2)) },
        loupeDetectPipelined: { msPerImage: +pipeMs.toFixed(2), imagesPerS: ips(pipeMs), rounds: pipe.map((v) => +v.toFixed(2)) },
        loupeDetectSerialLatency: { msPerImage: +latMs.toFixed(2), imagesPerS: ips(latMs), stagesMs: Object.fromEntries(Object.entries(stages).map(([k, v]) => [k, +v.toFixed(2)])), rounds: lat.map((v) => +v.toFixed(2)) },
        ultralyticsPredict: { msPerImage: +ultraMs.toFixed(2), imagesPerS: ips(ultraMs), speedMs: Object.fromEntries(Object.entries(ultraSpeed).map(([k, v]) => [k, +v.toFixed(2)])), rounds: ultra.map((v) => +v.toFixed(2)) },
        ratios: {
          loupeVsBareImagesPerS: +vsBare.toFixed(3),
          loupeSerialLatencyOverBare: +(latMs / bareMs).toFixed(3),
          loupeVsUltralyticsImagesPerS: +vsUltra.toFixed(3),
        },
      },
      targets: [
        { name: 'loupe detect images/s relative to bare session.run', value: +vsBare.toFixed(3), target: '>= 0.92 (within 8%)', met: vsBare >= 0.92 },
        { name: 'loupe detect images/s relative to ultralytics predict', value: +vsUltra.toFixed(3), target: '>= 1.2', met: vsUltra >= 1.2 },
      ],
    };
  },
};

export default entry;
