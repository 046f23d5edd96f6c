/**
 * loupe's YOLOv8 detector on ONNX Runtime: the one implementation behind `loupe detect`, the edge
 * inference component and the cloud evaluator/gate, so the numbers the cloud gates on come from
 * the code the device runs. It reproduces ultralytics 8.3.253 exactly: predict (and val) pre- and
 * postprocessing, see letterbox.ts, resize.ts, decode.ts and postprocess.ts.
 *
 * API (kept stable for the inference component and the gate):
 *
 *   const det = await Detector.load('model.onnx', { imgsz?, names?, threads?, spinning?,
 *                                                    sessionThread?, sessions? });
 *   det.info        // names, imgsz [h, w], stride, dynamic, nmsExport, fp16, precision, inputName, ...
 *   await det.warmup();
 *   const r = await det.detect('frame.jpg' | buffer, { conf: 0.25, iou: 0.7, maxDet: 300,
 *                              classes: ['scratch'], classConf: { scratch: 0.4 }, mode: 'predict' });
 *   // r = { width, height, detections: [{ xyxy: [x1, y1, x2, y2], conf, cls, name }], timings }
 *   det.validateOptions(opts);   // throws LoupeError for unknown classes, out-of-range thresholds
 *   await det.dispose();
 *
 * - Boxes are in original-image pixels (after EXIF orientation), clipped to the image.
 * - `mode: 'predict'` (default) is ultralytics `predict` (conf 0.25, best class per box);
 *   `mode: 'val'` is what `val` does per image (its loader's resize, multi-label NMS, conf 0.001).
 * - `classes` filters by class id or name; `classConf` sets per-class thresholds (others use conf).
 * - Safe to call concurrently: decoding runs in parallel (sharp's thread pool); tensor fill and
 *   NMS run one frame at a time because their buffers are reused across frames; inference runs
 *   one frame at a time per session (`sessions`, default 1).
 * - Bad models, images and options raise LoupeError naming the file or option.
 */
import { readFile } from 'node:fs/promises';
import * as ort from 'onnxruntime-node';
import { LoupeError, errorMessage } from '../../lib/errors.js';
import { decodeImage, type RgbImage } from './decode.js';
import { halfToFloat } from './fp16.js';
import { inputPlan, TensorWriter, type LetterboxGeometry } from './letterbox.js';
import { modelInfoFromBytes, type ModelInfo, type ModelOverrides } from './model-info.js';
import { WaitPool } from './wait-pool.js';
import { Postprocessor, scaleBoxes, type NmsOptions, type RawBoxes, type ScaleBack } from './postprocess.js';
import { createSessionRunner, inferenceFailed, type RunOutput, type SessionRunner, type SessionThread } from './session-runner.js';

export type { ModelInfo, ModelPrecision } from './model-info.js';
export type { RgbImage } from './decode.js';
export type { SessionThread } from './session-runner.js';

export interface DetectorLoadOptions extends ModelOverrides {
  /** onnxruntime intra-op threads (default: onnxruntime's choice, all cores). */
  threads?: number;
  /**
   * Let onnxruntime's worker threads spin between runs (default false; onnxruntime's own default is
   * true). Spinning is ~7-10% faster on a quiet device (dev box: 45.7 vs 50.4 ms per 480 px frame),
   * but when anything else competes for the cores it costs up to 2x (same box under load: 164 vs
   * 82 ms; bare session.run at load 1.5: 79 vs 42 ms), so it is opt-in for hosts known to be quiet.
   */
  spinning?: boolean;
  /**
   * Where onnxruntime runs (session-runner.ts): 'main' (default) blocks this thread for each run;
   * 'worker' runs it in a worker thread, so letterbox and post-processing of other frames, and the
   * rest of the program, go on meanwhile.
   */
  sessionThread?: SessionThread;
  /**
   * Sessions of the model that run at once, each in its own worker thread (session-runner.ts,
   * PoolRunner): default 1. With more than 1, `threads` is per session and defaults to 1, and
   * sessionThread must be 'worker' (the default then). More frames per second on a busy
   * continuous line, at a session's memory each and a longer single run.
   */
  sessions?: number;
}

/** The onnxruntime session options the detector uses (the bench's bare session uses the same). */
export function detectorSessionOptions(opts: Pick<DetectorLoadOptions, 'threads' | 'spinning'> = {}): ort.InferenceSession.SessionOptions {
  return {
    executionProviders: ['cpu'],
    graphOptimizationLevel: 'all',
    ...(opts.threads ? { intraOpNumThreads: opts.threads, interOpNumThreads: 1 } : {}),
    extra: {
      session: { intra_op: { allow_spinning: opts.spinning ? '1' : '0' }, inter_op: { allow_spinning: opts.spinning ? '1' : '0' } },
    },
  };
}

export type DetectMode = 'predict' | 'val';

export interface DetectOptions {
  /** Confidence threshold, strictly greater passes (default 0.25 predict, 0.001 val). */
  conf?: number;
  /** NMS IoU threshold, strictly greater suppresses (default 0.7). */
  iou?: number;
  /** Most detections per image (default 300). */
  maxDet?: number;
  /** Keep only these classes (ids or names). */
  classes?: ReadonlyArray<number | string>;
  /** Per-class confidence thresholds by class name or id. */
  classConf?: Readonly<Record<string, number>>;
  mode?: DetectMode;
}

export interface Detection {
  xyxy: [number, number, number, number];
  conf: number;
  cls: number;
  name: string;
}

export interface DetectTimings {
  decodeMs: number;
  preprocessMs: number;
  inferenceMs: number;
  postprocessMs: number;
  totalMs: number;
}

export interface DetectResult {
  width: number;
  height: number;
  detections: Detection[];
  timings: DetectTimings;
}

/** Model-input-space output, for the evaluator (ultralytics' validator matches in that space). */
export interface RawDetectResult {
  width: number;
  height: number;
  /** Boxes in model-input pixels (copies). */
  xyxy: Float32Array;
  conf: Float32Array;
  cls: Int32Array;
  /** Where the image sits in the input, and the size it had before padding. */
  geometry: LetterboxGeometry;
  /** Maps input pixels back to original pixels. */
  scale: ScaleBack;
  timings: DetectTimings;
}

export type ImageInput = string | Uint8Array | RgbImage;

function isRgb(x: ImageInput): x is RgbImage {
  return typeof x === 'object' && !(x instanceof Uint8Array) && 'data' in x && 'width' in x;
}

const now = (): number => performance.now();

interface Prepared {
  nms: NmsOptions;
  mode: DetectMode;
}

/**
 * Input buffers: with the session in a worker thread one per session and one more, so a frame can
 * be letterboxed while the model runs the others; on the main thread one (nothing overlaps there).
 * A buffer is owned by one detect call from letterbox to the end of its run.
 */
class InputBuffers {
  private readonly pool: WaitPool<Float32Array | Uint16Array>;

  constructor(
    private readonly make: (n: number) => Float32Array | Uint16Array,
    private cap: number,
    count: number,
  ) {
    this.pool = new WaitPool(Array.from({ length: count }, () => make(cap)));
  }

  async take(n: number): Promise<Float32Array | Uint16Array> {
    const b = await this.pool.take();
    if (b.length >= n) return b;
    this.cap = Math.max(this.cap, n);
    return this.make(this.cap);
  }

  /** Back into the pool; a buffer lost with a dead worker thread (detached) is replaced. */
  give(b: Float32Array | Uint16Array): void {
    this.pool.give(b.byteLength === 0 ? this.make(this.cap) : b);
  }
}

/** A FIFO gate: at most `limit` runs inside at once; drained() waits until none is inside or queued. */
class RunGate {
  private inside = 0;
  private readonly queue: Array<() => void> = [];
  private idle: Array<() => void> = [];

  async enter(limit: number): Promise<void> {
    if (this.inside < limit && this.queue.length === 0) {
      this.inside++;
      return;
    }
    // the leaver hands its place over: `inside` stays counted
    await new Promise<void>((r) => this.queue.push(r));
  }

  leave(): void {
    const next = this.queue.shift();
    if (next) return next();
    this.inside--;
    if (this.inside === 0) for (const r of this.idle.splice(0)) r();
  }

  drained(): Promise<void> {
    return this.inside === 0 && this.queue.length === 0 ? Promise.resolve() : new Promise((r) => this.idle.push(r));
  }
}

export class Detector {
  readonly info: Readonly<ModelInfo>;
  private session: SessionRunner | undefined;
  private readonly writer = new TensorWriter();
  private readonly post = new Postprocessor();
  private readonly inputs: InputBuffers;
  private outF32 = new Float32Array(0);
  private valBuf = new Uint8Array(0);
  /** runs queued in order, at most the session's concurrency at once (1 unless a pool) */
  private readonly runs = new RunGate();
  private disposing: Promise<void> | undefined;

  private constructor(info: ModelInfo, session: SessionRunner, thread: SessionThread) {
    this.info = Object.freeze(info);
    this.session = session;
    const [h, w] = info.imgsz;
    // Dynamic models letterbox into at most imgsz (predict) or the rect shape (val), < (h+stride)(w+stride).
    const cap = 3 * (info.dynamic ? (h + info.stride) * (w + info.stride) : h * w);
    this.inputs = new InputBuffers(
      (n) => (info.fp16 ? new Uint16Array(n) : new Float32Array(n)),
      cap,
      thread === 'worker' ? session.concurrency + 1 : 1,
    );
  }

  /** Load an ultralytics YOLOv8 detection ONNX export; refuses what it cannot run faithfully. */
  static async load(path: string, opts: DetectorLoadOptions = {}): Promise<Detector> {
    let bytes: Buffer;
    try {
      bytes = await readFile(path);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      throw new LoupeError(
        code === 'ENOENT' ? 'MODEL_MISSING' : 'MODEL_UNREADABLE',
        code === 'ENOENT' ? 'model file not found' : `cannot read the model (${errorMessage(e)})`,
        {
          input: path,
          cause: e,
        },
      );
    }
    const info = modelInfoFromBytes(bytes, path, opts);
    if (opts.threads !== undefined && (!Number.isInteger(opts.threads) || opts.threads < 1)) {
      throw new LoupeError('DETECT_BAD_OPTION', `threads must be a positive integer, got ${opts.threads}`, { input: 'threads' });
    }
    const sessions = opts.sessions ?? 1;
    if (!Number.isInteger(sessions) || sessions < 1 || sessions > 16)
      throw new LoupeError('DETECT_BAD_OPTION', `sessions must be an integer from 1 to 16, got ${sessions}`, { input: 'sessions' });
    const thread = opts.sessionThread ?? (sessions > 1 ? 'worker' : 'main');
    if (thread !== 'main' && thread !== 'worker')
      throw new LoupeError('DETECT_BAD_OPTION', `sessionThread must be 'main' or 'worker', got ${String(thread)}`, {
        input: 'sessionThread',
      });
    if (sessions > 1 && thread !== 'worker')
      throw new LoupeError('DETECT_BAD_OPTION', `${sessions} sessions need sessionThread 'worker' (a main-thread run blocks the others)`, {
        input: 'sessions',
      });
    const threads = opts.threads ?? (sessions > 1 ? 1 : undefined);
    const session = await createSessionRunner(
      bytes,
      detectorSessionOptions({ ...opts, ...(threads ? { threads } : {}) }),
      thread,
      path,
      sessions,
    );
    if (!session.inputNames.includes(info.inputName) || !session.outputNames.includes(info.outputName)) {
      await session.release();
      throw new LoupeError(
        'MODEL_BAD_OUTPUT',
        `graph inputs/outputs ${session.inputNames}/${session.outputNames} do not match the declared ${info.inputName}/${info.outputName}`,
        {
          input: path,
        },
      );
    }
    return new Detector(info, session, thread);
  }

  /** Sessions running frames at once (the `sessions` load option). */
  get sessions(): number {
    return this.session?.concurrency ?? 0;
  }

  /** One inference on a padding-only frame so the first real frame does not pay for allocation. */
  async warmup(): Promise<void> {
    const [h, w] = this.info.imgsz;
    const g: LetterboxGeometry = { srcW: 0, srcH: 0, newW: 0, newH: 0, left: 0, top: 0, outW: w, outH: h };
    await this.withInput(3 * h * w, async (buf) => {
      this.writer.write({ data: new Uint8Array(0), width: 0, height: 0 }, g, buf);
      const { buffer } = await this.infer(buf, g);
      return { result: undefined, buffer };
    });
  }

  /** Detect objects in one image (a path, encoded bytes, or decoded RGB). */
  async detect(image: ImageInput, opts: DetectOptions = {}): Promise<DetectResult> {
    const raw = await this.detectInternal(image, opts, false);
    const { xyxy, conf, cls } = raw;
    const detections: Detection[] = new Array(conf.length);
    for (let i = 0; i < conf.length; i++) {
      const c = cls[i];
      detections[i] = {
        xyxy: [xyxy[i * 4], xyxy[i * 4 + 1], xyxy[i * 4 + 2], xyxy[i * 4 + 3]],
        conf: conf[i],
        cls: c,
        name: this.info.names[c] ?? String(c),
      };
    }
    return { width: raw.width, height: raw.height, detections, timings: raw.timings };
  }

  /** Like detect, but boxes stay in model-input pixels (for the evaluator). */
  async detectRaw(image: ImageInput, opts: DetectOptions = {}): Promise<RawDetectResult> {
    return this.detectInternal(image, opts, true);
  }

  /**
   * The input tensor `detect` feeds the model for this image (predict mode), as a copy: what int8
   * calibration must see, so the quantizer calibrates on exactly the device's preprocessing.
   */
  async inputTensor(image: ImageInput): Promise<{ data: Float32Array | Uint16Array; dims: [number, number, number, number] }> {
    if (!this.session) throw new LoupeError('DETECTOR_DISPOSED', 'the detector was disposed', { input: this.info.path });
    const img = isRgb(image) ? image : await decodeImage(image, typeof image === 'string' ? image : '<image buffer>');
    const plan = inputPlan(img.width, img.height, this.info, 'predict');
    const g = plan.geometry;
    return this.withInput(3 * g.outH * g.outW, async (buf) => {
      this.preprocess(img, 'predict', buf);
      return {
        result: { data: buf.slice(0, 3 * g.outH * g.outW), dims: [1, 3, g.outH, g.outW] as [number, number, number, number] },
        buffer: buf,
      };
    });
  }

  /** Why this detector can no longer run although not disposed (its inference thread died), if so. */
  get broken(): Error | undefined {
    return this.session?.broken;
  }

  /** Check detect options against this model (class names, ranges) without running anything. */
  validateOptions(opts: DetectOptions): void {
    this.prepare(opts);
  }

  /** Release the onnxruntime session; later calls are refused. */
  async dispose(): Promise<void> {
    const s = this.session;
    this.session = undefined;
    // after the runs already queued
    if (s) this.disposing ??= this.runs.drained().then(() => s.release());
    await this.disposing;
  }

  private async detectInternal(image: ImageInput, opts: DetectOptions, rawSpace: boolean): Promise<RawDetectResult> {
    if (!this.session) throw new LoupeError('DETECTOR_DISPOSED', 'the detector was disposed', { input: this.info.path });
    const p = this.prepare(opts);
    const t0 = now();
    const label = typeof image === 'string' ? image : '<image buffer>';
    const img = isRgb(image) ? image : await decodeImage(image, label);
    const t1 = now();
    const plan = inputPlan(img.width, img.height, this.info, p.mode);
    const g = plan.geometry;
    return this.withInput(3 * g.outH * g.outW, async (buf) => {
      // letterbox and post-processing are synchronous, so frames in flight never interleave in them
      const t2 = now();
      const { geometry, scale } = this.preprocess(img, p.mode, buf);
      const t3 = now();
      const { out, buffer } = await this.infer(buf, geometry);
      const t4 = now();
      const boxes = this.postprocess(out, p.nms);
      const n = boxes.n;
      const xyxy = boxes.xyxy.slice(0, n * 4);
      if (!rawSpace) scaleBoxes(xyxy, n, scale);
      const res: RawDetectResult = {
        width: img.width,
        height: img.height,
        xyxy,
        conf: boxes.conf.slice(0, n),
        cls: boxes.cls.slice(0, n),
        geometry,
        scale,
        timings: { decodeMs: t1 - t0, preprocessMs: t3 - t2, inferenceMs: t4 - t3, postprocessMs: 0, totalMs: 0 },
      };
      const t5 = now();
      res.timings.postprocessMs = t5 - t4;
      res.timings.totalMs = t5 - t0;
      return { result: res, buffer };
    });
  }

  /** Run fn with an input buffer of at least n values; fn hands back the buffer (moved by a worker run) with its result. */
  private async withInput<T>(
    n: number,
    fn: (buf: Float32Array | Uint16Array) => Promise<{ result: T; buffer: Float32Array | Uint16Array }>,
  ): Promise<T> {
    const buf = await this.inputs.take(n);
    let back = buf;
    try {
      const { result, buffer } = await fn(buf);
      back = buffer;
      return result;
    } catch (e) {
      // a failed worker run sends the buffer back with the error; a dead worker loses it (give() replaces it)
      const b = (e as { buffer?: Float32Array | Uint16Array }).buffer;
      if (b) back = b;
      throw e;
    } finally {
      this.inputs.give(back);
    }
  }

  private lastPrepared: { key: string; p: Prepared } | undefined;

  /** Validate options once per distinct set (a line repeats the same options every frame). */
  private prepare(opts: DetectOptions): Prepared {
    const key = JSON.stringify(opts);
    if (this.lastPrepared?.key === key) return this.lastPrepared.p;
    const p = this.prepareUncached(opts);
    this.lastPrepared = { key, p };
    return p;
  }

  private prepareUncached(opts: DetectOptions): Prepared {
    const mode = opts.mode ?? 'predict';
    if (mode !== 'predict' && mode !== 'val')
      throw new LoupeError('DETECT_BAD_OPTION', `mode must be 'predict' or 'val', got ${String(mode)}`, { input: 'mode' });
    const conf = opts.conf ?? (mode === 'val' ? 0.001 : 0.25);
    const iou = opts.iou ?? 0.7;
    const maxDet = opts.maxDet ?? 300;
    const unit = (v: number, name: string): void => {
      if (typeof v !== 'number' || !(v >= 0 && v <= 1))
        throw new LoupeError('DETECT_BAD_OPTION', `must be a number from 0 to 1, got ${v}`, { input: name });
    };
    unit(conf, 'conf');
    unit(iou, 'iou');
    if (!Number.isInteger(maxDet) || maxDet < 1)
      throw new LoupeError('DETECT_BAD_OPTION', `must be a positive integer, got ${maxDet}`, { input: 'max-det' });
    const names = this.info.names;
    const classId = (c: number | string, what: string): number => {
      const id = typeof c === 'number' ? c : /^\d+$/.test(c) && !names.includes(c) ? Number(c) : names.indexOf(c);
      if (!Number.isInteger(id) || id < 0 || id >= names.length) {
        throw new LoupeError(
          'DETECT_BAD_OPTION',
          `unknown class ${JSON.stringify(c)}; the model's classes are ${names.map((n, i) => `${i}=${n}`).join(', ')}`,
          { input: what },
        );
      }
      return id;
    };
    const classes = opts.classes ? new Set(opts.classes.map((c) => classId(c, 'classes'))) : undefined;
    let classConf: Array<number | undefined> | undefined;
    if (opts.classConf) {
      classConf = new Array<number | undefined>(names.length);
      for (const [k, v] of Object.entries(opts.classConf)) {
        unit(v, `class-conf ${k}`);
        classConf[classId(k, 'class-conf')] = v;
      }
    }
    return {
      mode,
      nms: { conf, iou, maxDet, maxNms: 30000, multiLabel: mode === 'val', classes, classConf, fp16: this.info.outputFp16 },
    };
  }

  private preprocess(img: RgbImage, mode: DetectMode, buf: Float32Array | Uint16Array): { geometry: LetterboxGeometry; scale: ScaleBack } {
    const plan = inputPlan(img.width, img.height, this.info, mode);
    let src = img;
    if (plan.load) {
      const [w1, h1] = plan.load;
      if (this.valBuf.length < w1 * h1 * 3) this.valBuf = new Uint8Array(w1 * h1 * 3);
      src = this.writer.resizeImage(img, w1, h1, this.valBuf);
    }
    this.writer.write(src, plan.geometry, buf);
    return { geometry: plan.geometry, scale: { gain: plan.gain, padX: plan.padX, padY: plan.padY, width: img.width, height: img.height } };
  }

  /** One run, started after the runs queued before it (with one session, frames keep their order). */
  private async infer(
    buf: Float32Array | Uint16Array,
    g: LetterboxGeometry,
  ): Promise<{ out: RunOutput; buffer: Float32Array | Uint16Array }> {
    await this.runs.enter(this.session?.concurrency ?? 1);
    try {
      const s = this.session;
      if (!s) throw new LoupeError('DETECTOR_DISPOSED', 'the detector was disposed', { input: this.info.path });
      return await s.run(buf, 3 * g.outH * g.outW, [1, 3, g.outH, g.outW], this.info.inputName, this.info.outputName);
    } catch (e) {
      if (e instanceof LoupeError) throw e;
      throw inferenceFailed(this.info.path, e);
    } finally {
      this.runs.leave();
    }
  }

  private postprocess(out: RunOutput, nms: NmsOptions): RawBoxes {
    let data: Float32Array;
    if (out.type === 'float16') {
      const src = out.data as Uint16Array;
      if (this.outF32.length < src.length) this.outF32 = new Float32Array(src.length);
      halfToFloat(src, this.outF32);
      data = this.outF32.subarray(0, src.length);
    } else data = out.data as Float32Array;
    const nc = this.info.names.length;
    if (this.info.nmsExport) return this.post.runEnd2End(data, out.dims[1], nc, nms);
    if (out.dims[1] !== 4 + nc) {
      throw new LoupeError('MODEL_CLASS_MISMATCH', `output has ${out.dims[1] - 4} class rows but ${nc} names`, { input: this.info.path });
    }
    return this.post.run(data, nc, out.dims[2], nms);
  }
}
