import { spawn } from 'node:child_process';
import { copyFile, mkdtemp, rename, rm, stat } from 'node:fs/promises';
import { mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import type { Logger } from 'pino';
import { codeFromText } from '../../lib/error-codes.js';
import { LoupeError, errorMessage } from '../../lib/errors.js';
import { sha256File } from '../../lib/fsutil.js';
import { silentLogger } from '../../lib/log.js';
import { projectRoot } from '../../lib/paths.js';
import { Progress } from '../../lib/progress.js';
import { Detector } from '../../components/detector/detector.js';
import { ensureVenv, offlinePythonEnv, QUANTIZER_VENV, venvPython } from '../training/venv.js';
import { calibrationSet, DEFAULT_CALIBRATION_IMAGES, writeCalibrationTensors } from './calibration.js';

/**
 * `loupe quantize`: an fp32 YOLOv8 ONNX export → a QDQ int8 model the device runs about twice as
 * fast, with onnxruntime's static quantization in the trainer venv (quantize.py says what is
 * quantized and what stays float, and why). This side picks the calibration images, writes the
 * exact tensors loupe's detector would feed the model for them, runs quantize.py with progress,
 * then loads the result in loupe's detector before it replaces `out` (written atomically).
 * Deterministic: the same model and calibration images give a byte-identical file on the same
 * machine and onnxruntime build.
 *
 *   const r = await quantizeModel({ model: 'model.onnx', calib: 'data.yaml', out: 'model.int8.onnx' });
 */
export const quantizeScript = join(projectRoot, 'cloud', 'quantize', 'quantize.py');

export interface QuantizeOptions {
  model: string;
  /** data.yaml (its train split) or a folder of images. */
  calib: string;
  out: string;
  /** Calibration images (default 64). */
  images?: number;
  log?: Logger;
  progressStream?: NodeJS.WriteStream;
}

export interface QuantizeResult {
  model: string;
  out: string;
  sha256: string;
  bytes: number;
  sourceSha256: string;
  sourceBytes: number;
  calibration: { source: string; kind: 'dataset' | 'folder'; images: number; available: number };
  /** Nodes of the detection head kept in float. */
  floatNodes: number;
  quantizeLinear: number;
  onnxruntime: string;
  seconds: number;
}

interface DoneEvent {
  event: 'done';
  quantize_linear: number;
  dequantize_linear: number;
  float_nodes: number;
  onnxruntime: string;
}

export async function quantizeModel(o: QuantizeOptions): Promise<QuantizeResult> {
  const log = o.log ?? silentLogger;
  const t0 = performance.now();
  const model = resolve(o.model);
  const out = resolve(o.out);
  if (out === model)
    throw new LoupeError('QUANTIZE_BAD_OUT', 'the output would overwrite the input model; choose another --out', { input: o.out });
  // Loading it in the detector checks it is a detection export loupe can run (errors name the file).
  const det = await Detector.load(model);
  let work: string | undefined;
  try {
    if (det.info.precision === 'int8')
      throw new LoupeError('QUANTIZE_ALREADY_INT8', 'the model is already quantized (it holds QuantizeLinear/DequantizeLinear nodes)', {
        input: o.model,
      });
    if (det.info.precision === 'fp16')
      throw new LoupeError('QUANTIZE_BAD_MODEL', 'the model is a float16 export; quantize the float32 export', { input: o.model });
    // onnxruntime's calibrator observes every tensor, and an nms=True export's NMS tensors can be
    // empty (its ReduceMax fails on them): quantize the plain export instead.
    if (det.info.nmsExport)
      throw new LoupeError(
        'QUANTIZE_BAD_MODEL',
        'the model is an nms=True export; quantize the plain export (without nms), loupe runs the NMS itself',
        { input: o.model },
      );
    const set = calibrationSet(o.calib, o.images ?? DEFAULT_CALIBRATION_IMAGES);
    log.info(
      { model, calib: set.source, kind: set.kind, images: set.files.length, available: set.available },
      'quantize: calibration set chosen',
    );
    const venv = process.env[QUANTIZER_VENV.envVar] ? await ensureVenv(log, QUANTIZER_VENV) : await ensureVenv(log);
    mkdirSync(dirname(out), { recursive: true });
    work = await mkdtemp(join(tmpdir(), 'loupe-quantize-'));
    await writeCalibrationTensors(det, set, join(work, 'calib'), log, o.progressStream);
    await det.dispose();
    const sourceSha256 = await sha256File(model);
    const tmpOut = join(work, 'model.int8.onnx');
    const done = await runQuantizePy(
      venvPython(venv),
      ['--model', model, '--tensors', join(work, 'calib'), '--out', tmpOut, '--source-sha256', sourceSha256],
      set.files.length,
      log,
      o.progressStream,
    );
    // The file must load and run in loupe's detector as an int8 model before it is handed out.
    const check = await Detector.load(tmpOut).catch((e: unknown) => {
      throw new LoupeError('QUANTIZE_FAILED', `the quantized model does not load in loupe's detector (${errorMessage(e)})`, {
        input: o.model,
      });
    });
    try {
      if (check.info.precision !== 'int8')
        throw new LoupeError('QUANTIZE_FAILED', 'quantize.py wrote a model without quantized nodes', { input: o.model });
      await check.warmup();
    } finally {
      await check.dispose();
    }
    await rename(tmpOut, out).catch(async (e: NodeJS.ErrnoException) => {
      if (e.code !== 'EXDEV') throw e;
      // /tmp on another file system: copy beside the target, then rename there (still atomic).
      const beside = `${out}.tmp-${process.pid}`;
      await copyFile(tmpOut, beside);
      await rename(beside, out);
    });
    const r: QuantizeResult = {
      model,
      out,
      sha256: await sha256File(out),
      bytes: (await stat(out)).size,
      sourceSha256,
      sourceBytes: (await stat(model)).size,
      calibration: { source: set.source, kind: set.kind, images: set.files.length, available: set.available },
      floatNodes: done.float_nodes,
      quantizeLinear: done.quantize_linear,
      onnxruntime: done.onnxruntime,
      seconds: +((performance.now() - t0) / 1000).toFixed(2),
    };
    log.info({ out, sha256: r.sha256, bytes: r.bytes, seconds: r.seconds }, 'quantize: int8 model written');
    return r;
  } finally {
    await det.dispose();
    if (work) await rm(work, { recursive: true, force: true });
  }
}

/** The quantizer's record inside an int8 model (metadata `loupe_quantization`), when present. */
export async function quantizationRecord(path: string): Promise<Record<string, unknown> | undefined> {
  const det = await Detector.load(path);
  try {
    const raw = det.info.metadata.loupe_quantization;
    return raw ? (JSON.parse(raw) as Record<string, unknown>) : undefined;
  } finally {
    await det.dispose();
  }
}

function runQuantizePy(
  python: string,
  args: string[],
  total: number,
  log: Logger,
  progressStream?: NodeJS.WriteStream,
): Promise<DoneEvent> {
  return new Promise((resolveRun, reject) => {
    const child = spawn(python, [quantizeScript, ...args], { env: offlinePythonEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    const killOnExit = () => child.kill('SIGKILL');
    process.once('exit', killOnExit);
    const progress = new Progress('quantize: calibrate', total, log, { logEveryMs: 10_000, stream: progressStream });
    let done: DoneEvent | undefined;
    let refusal: { code: string; message: string } | undefined;
    let tail = '';
    const keep = (line: string) => {
      tail = (tail + line + '\n').slice(-4000);
    };
    createInterface({ input: child.stdout }).on('line', (line) => {
      if (line.startsWith('LOUPE_EVENT ')) {
        const e = JSON.parse(line.slice(12)) as { event: string; done?: number };
        if (e.event === 'calibrate') progress.update(e.done ?? 0);
        else if (e.event === 'done') done = e as unknown as DoneEvent;
      } else if (line.startsWith('LOUPE_ERROR ')) refusal = JSON.parse(line.slice(12)) as { code: string; message: string };
      else keep(line);
    });
    createInterface({ input: child.stderr }).on('line', (line) => {
      keep(line);
      log.debug({ stream: 'stderr' }, line);
    });
    child.on('error', (e) =>
      reject(
        new LoupeError('PYTHON_MISSING', `cannot run the trainer venv's python (${e.message}); run \`loupe setup python\``, {
          input: python,
        }),
      ),
    );
    child.on('close', (code, signal) => {
      process.removeListener('exit', killOnExit);
      if (refusal) {
        const r = codeFromText(refusal.code, refusal.message, 'QUANTIZE_FAILED');
        return reject(new LoupeError(r.code, r.message, { input: args[1] }));
      }
      if (code !== 0 || !done) {
        return reject(
          new LoupeError(
            'QUANTIZE_FAILED',
            `quantize.py ${signal ? `was killed by ${signal}` : `exited with status ${code}`}; its last output:\n${tail.trim()}`,
            { input: quantizeScript },
          ),
        );
      }
      progress.finish();
      resolveRun(done);
    });
  });
}
