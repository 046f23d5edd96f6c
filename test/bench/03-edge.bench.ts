import { copyFile, mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { projectRoot, datasetDir } from '../../lib/paths.js';
import { fixtureModel } from '../helpers/models.js';
import { Detector } from '../../components/detector/detector.js';
import { startEdgeStack, type EdgeStack } from '../../embedded/stack/edge.js';
import type { BenchEntry } from './run.js';

/**
 * The edge pipeline's throughput and memory on the local nucleus.
 *  - pipeline_fps: frames/s through loupe.Camera → loupe.Inference → loupe.Uploader, real
 *    component processes under the local nucleus, on N metal-tags images (folder camera read
 *    once, continuous trigger paced at 4 frames in flight so inference is never starved and never
 *    drops): N / (time from the first frame's capture to its last result). The uploader runs its
 *    default policies (failed, uncertain, 2% of passes) with de-dup, uploading to the embedded S3.
 *  - baseline detector_fps: the same Detector on the same images, in this process, with the
 *    same two frames in flight the inference component uses (no camera, IPC, JSON, disk).
 *    Measured before and after the pipeline; their mean is the baseline.
 *  - RSS of each component process (VmHWM, the peak, and VmRSS at the end) from /proc.
 *  - CPU ms per frame of each process (camera, inference, uploader; nucleus + broker + S3 server
 *    live in this process) over the pipeline run.
 * Both with the shipped fp32 model and with its int8 quantization (`loupe quantize`, the loupe.Model
 * the loop ships when the gate picks int8); LOUPE_BENCH_EDGE_MODELS=fp32 or int8 runs one.
 * LOUPE_BENCH_INT8_MODEL names a ready int8 file (to run this same bench on an older checkout).
 * Targets: pipeline_fps >= 0.92 x detector_fps; inference peak RSS <= 250 MB (YOLOv8n).
 * The machine is shared with other work: the load average is reported with the numbers.
 */
const N = Number(process.env.LOUPE_BENCH_EDGE_FRAMES ?? 150);

let detectorCpuPerFrame = 0;
async function detectorFps(model: string, files: string[]): Promise<number> {
  const det = await Detector.load(model);
  await det.warmup();
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  let next = 0;
  const worker = async () => {
    while (next < files.length) await det.detect(files[next++]!, { conf: 0.25, iou: 0.7 });
  };
  await Promise.all([worker(), worker()]);
  const fps = files.length / ((performance.now() - t0) / 1000);
  const c = process.cpuUsage(c0);
  detectorCpuPerFrame = (c.user + c.system) / 1e6 / files.length;
  await det.dispose();
  return fps;
}

function procMem(pid: number): Promise<{ peakMB: number; rssMB: number } | undefined> {
  return readFile(`/proc/${pid}/status`, 'utf8').then(
    (t) => ({
      peakMB: +(Number(/VmHWM:\s+(\d+)/.exec(t)?.[1] ?? 0) / 1024).toFixed(1),
      rssMB: +(Number(/VmRSS:\s+(\d+)/.exec(t)?.[1] ?? 0) / 1024).toFixed(1),
    }),
    () => undefined,
  );
}

/** CPU seconds (user + system) a process has used so far. */
async function cpuSeconds(pid: number): Promise<number> {
  const t = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  const f = t.slice(t.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11] ?? 0) + Number(f[12] ?? 0)) / 100; // utime, stime in clock ticks (USER_HZ 100)
}

/** A component's pid, from its structured log lines (pino writes the pid into each). */
async function pidOf(stack: EdgeStack, component: string): Promise<number> {
  for (let i = 0; i < 100; i++) {
    const lines = (await stack.nucleus.readLog(component)).split('\n').filter((l) => l.startsWith('{'));
    if (lines.length) return (JSON.parse(lines[lines.length - 1]!) as { pid: number }).pid;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`no log line from ${component}`);
}

const entry: BenchEntry = {
  name: '03-edge',
  async run() {
    const which = (process.env.LOUPE_BENCH_EDGE_MODELS ?? 'fp32,int8').split(',').map((x) => x.trim());
    const models: Record<string, string> = {};
    if (which.includes('fp32')) models.fp32 = join(projectRoot, 'models', 'metal-tags', 'model.onnx');
    if (which.includes('int8')) models.int8 = process.env.LOUPE_BENCH_INT8_MODEL ?? (await fixtureModel('metal-tags-int8'));
    const reports: Record<string, Awaited<ReturnType<typeof pipelineRun>>> = {};
    for (const [precision, model] of Object.entries(models)) reports[precision] = await pipelineRun(model);
    const results: Record<string, unknown> = {};
    const targets: { name: string; value: number; target: string; met: boolean }[] = [];
    for (const [precision, r] of Object.entries(reports)) {
      results[precision] = r.results;
      for (const t of r.targets) targets.push({ ...t, name: `${precision}: ${t.name}` });
    }
    return {
      entry: '03-edge',
      machine: { loadavg1_start: reports[Object.keys(reports)[0]!]?.load0, loadavg1_end: loadavg()[0] },
      results,
      targets,
    };
  },
};

async function pipelineRun(model: string) {
  const ds = datasetDir('metal-tags');
  const all = [
    ...(await readdir(join(ds, 'bad'))).map((f) => join(ds, 'bad', f)),
    ...(await readdir(join(ds, 'good'))).map((f) => join(ds, 'good', f)),
  ].sort();
  const work = await mkdtemp(join(tmpdir(), 'lbe-'));
  const folder = join(work, 'frames-in');
  await mkdir(folder);
  await mkdir(join(work, 'later'));
  const files: string[] = [];
  for (let i = 0; i < N; i++) {
    const dst = join(folder, `${String(i).padStart(5, '0')}.jpg`);
    await copyFile(all[i % all.length]!, dst);
    files.push(dst);
  }
  const load0 = loadavg()[0];
  const before = await detectorFps(model, files);
  // loupe.Model carries the file as model.onnx, as a published component version does.
  const modelDir = join(work, 'model');
  await mkdir(modelDir);
  await copyFile(model, join(modelDir, 'model.onnx'));

  const stack = await startEdgeStack({
    root: join(work, 'stack'),
    modelDir,
    // Start with the camera idle (watching an empty folder) so every component is up first.
    source: { type: 'folder', path: join(work, 'later'), mode: 'watch' },
    config: { camera: { delivery: { redeliver: true, ackTimeoutMs: 10_000, maxRedeliveries: 3, maxUnacked: 5000 } } },
  }).catch(async (e) => {
    await rm(work, { recursive: true, force: true });
    throw e;
  });
  let pipeline: Record<string, unknown>;
  const mem: Record<string, unknown> = {};
  try {
    const t0 = Date.now();
    const procs: Record<string, number> = { nucleus_and_broker_and_s3: process.pid };
    for (const c of ['loupe.Camera', 'loupe.Inference', 'loupe.Uploader']) procs[c] = await pidOf(stack, c);
    const cpu0: Record<string, number> = {};
    for (const [k, pid] of Object.entries(procs)) cpu0[k] = await cpuSeconds(pid);
    const rec = await stack.configure('loupe.Camera', {
      cameras: [{ name: 'bench', source: { type: 'folder', path: folder, mode: 'once' }, trigger: { type: 'continuous', maxInFlight: 4 } }],
    });
    if (rec.status !== 'SUCCEEDED') throw new Error(`camera reconfiguration failed: ${rec.failureCause}`);
    const deadline = Date.now() + 600_000;
    while ([...stack.results.values()].filter((r) => r.camera === 'bench').length < N && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 200));
    const results = [...stack.results.values()].filter((r) => r.camera === 'bench');
    const firstCapture = Math.min(...results.map((r) => Date.parse(r.time)));
    const lastResult = Math.max(...results.map((r) => Date.parse(r.time) + r.latencyMs));
    const fps = results.length / ((lastResult - firstCapture) / 1000);
    const cpuPerFrame: Record<string, number> = {};
    for (const [k, pid] of Object.entries(procs))
      cpuPerFrame[k] = +((((await cpuSeconds(pid)) - cpu0[k]!) / results.length) * 1000).toFixed(1);
    // Wait for the uploads of what was selected, then count them in S3.
    while (Number(stack.telemetry.uploader?.spoolPending ?? 1) > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 500));
    const s = await stack.summary();
    const inf = stack.telemetry.inference as Record<string, unknown> | undefined;
    pipeline = {
      frames: results.length,
      pipeline_fps: +fps.toFixed(2),
      seconds_to_last_result: +((lastResult - firstCapture) / 1000).toFixed(2),
      seconds_including_reconfigure: +((Date.now() - t0) / 1000).toFixed(1),
      inference_latency_ms: inf?.latencyMs,
      cpu_ms_per_frame: cpuPerFrame,
      inference_dropped: inf?.dropped,
      uploaded: s.uploaded,
      uploader: stack.telemetry.uploader
        ? {
            selected: stack.telemetry.uploader.selected,
            duplicates: stack.telemetry.uploader.duplicates,
            byReason: stack.telemetry.uploader.byReason,
          }
        : undefined,
    };
    // loupe.Model has no process (its recipe only carries the model artefact).
    for (const c of ['loupe.Camera', 'loupe.Inference', 'loupe.Uploader']) mem[c] = await procMem(await pidOf(stack, c));
    mem.nucleus_and_bench_process = await procMem(process.pid);
  } finally {
    await stack.stop();
  }
  const after = await detectorFps(model, files);
  await rm(work, { recursive: true, force: true });
  const baseline = (before + after) / 2;
  const ratio = Number(pipeline.pipeline_fps) / baseline;
  const infPeak = (mem['loupe.Inference'] as { peakMB: number } | undefined)?.peakMB ?? NaN;
  return {
    load0,
    results: {
      model,
      loadavg1: { start: load0, end: loadavg()[0] },
      ...pipeline,
      baseline_detector_fps: { before: +before.toFixed(2), after: +after.toFixed(2), mean: +baseline.toFixed(2) },
      baseline_detector_cpu_ms_per_frame: +(detectorCpuPerFrame * 1000).toFixed(1),
      ratio_pipeline_to_detector: +ratio.toFixed(3),
      rss_mb: mem,
    },
    targets: [
      { name: 'pipeline fps / detector fps', value: +ratio.toFixed(3), target: '>= 0.92', met: ratio >= 0.92 },
      { name: 'inference peak RSS (MB)', value: infPeak, target: '<= 250', met: infPeak <= 250 },
    ],
  };
}
export default entry;
