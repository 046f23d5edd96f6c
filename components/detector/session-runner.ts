import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import * as ort from 'onnxruntime-node';
import { LoupeError, errorMessage } from '../../lib/errors.js';
import { WaitPool } from './wait-pool.js';

/**
 * Where the detector's onnxruntime session runs. onnxruntime-node's `run` is synchronous on the
 * calling thread (its promise only defers the call to setImmediate), so on the main thread every
 * inference blocks the event loop for the whole run: in loupe.Inference that is IPC, decoding
 * hand-off, the next frame's letterbox and the last frame's result, all waiting 40-70 ms per frame.
 *  - 'main': the session in this thread (what onnxruntime-node does; no extra thread or memory).
 *  - 'worker': the session in a worker thread. The input buffer is transferred there and back (no
 *    copy; onnxruntime-node refuses SharedArrayBuffer-backed tensors), the output is transferred
 *    back. The main thread stays free, so the detector can letterbox and post-process one frame
 *    while the model runs another.
 */
export type SessionThread = 'main' | 'worker';

export interface RunOutput {
  data: Float32Array | Uint16Array;
  dims: readonly number[];
  type: string;
}

export interface SessionRunner {
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  /**
   * Run one input. `input` is a view at the start of `buffer`'s whole array; the runner owns that
   * array until the promise settles, and hands it back as `buffer` (for the worker, a new view of
   * the same memory after its round trip).
   */
  run(
    buffer: Float32Array | Uint16Array,
    length: number,
    dims: readonly number[],
    inputName: string,
    outputName: string,
  ): Promise<{ out: RunOutput; buffer: Float32Array | Uint16Array }>;
  release(): Promise<void>;
  /** Why the session can no longer run (its thread died), if it cannot. */
  readonly broken?: Error;
  /** Runs it can take at once (1, or the pool's sessions); more are queued in order. */
  readonly concurrency: number;
}

/**
 * Load a session; with 'worker', `bytes` is moved to the thread (empty here afterwards). With
 * `sessions` > 1 (worker only), that many sessions of the model, each in its own thread.
 */
export async function createSessionRunner(
  bytes: Uint8Array,
  options: ort.InferenceSession.SessionOptions,
  thread: SessionThread,
  label: string,
  sessions = 1,
): Promise<SessionRunner> {
  if (sessions > 1) return PoolRunner.create(bytes, options, label, sessions);
  return thread === 'worker' ? WorkerRunner.create(bytes, options, label) : MainRunner.create(bytes, options, label);
}

function loadFailed(label: string, e: unknown): LoupeError {
  return new LoupeError('MODEL_LOAD_FAILED', `onnxruntime could not load the model (${errorMessage(e).split('\n')[0]})`, {
    input: label,
    cause: e,
  });
}

export function inferenceFailed(label: string, e: unknown): LoupeError {
  return new LoupeError('INFERENCE_FAILED', `onnxruntime failed (${errorMessage(e).split('\n')[0]})`, { input: label, cause: e });
}

const tensorType = (a: Float32Array | Uint16Array): 'float32' | 'float16' => (a instanceof Uint16Array ? 'float16' : 'float32');

class MainRunner implements SessionRunner {
  readonly concurrency = 1;
  private constructor(
    private readonly session: ort.InferenceSession,
    private readonly label: string,
  ) {}

  static async create(bytes: Uint8Array, options: ort.InferenceSession.SessionOptions, label: string): Promise<MainRunner> {
    try {
      return new MainRunner(await ort.InferenceSession.create(bytes, options), label);
    } catch (e) {
      throw loadFailed(label, e);
    }
  }

  get inputNames(): readonly string[] {
    return this.session.inputNames;
  }
  get outputNames(): readonly string[] {
    return this.session.outputNames;
  }

  async run(buffer: Float32Array | Uint16Array, length: number, dims: readonly number[], inputName: string, outputName: string) {
    try {
      const r = await this.session.run({ [inputName]: new ort.Tensor(tensorType(buffer), buffer.subarray(0, length), dims) });
      const t = r[outputName] as ort.Tensor;
      return { out: { data: t.data as Float32Array | Uint16Array, dims: t.dims, type: t.type }, buffer };
    } catch (e) {
      throw inferenceFailed(this.label, e);
    }
  }

  release(): Promise<void> {
    return this.session.release();
  }
}

/**
 * The worker's program. It is passed as source (`eval: true`) rather than a file of its own, so that
 * it runs the same from the TypeScript sources under the tests, from dist/, and from a component's
 * code ZIP, whose packer takes only files the programs import. It uses only import() (eval code is
 * CommonJS or, under --input-type=module, ESM); onnxruntime-node comes from the URL this module
 * resolves, the copy the component already ships.
 */
const WORKER_SOURCE = `
(async () => {
const { parentPort, workerData } = await import('node:worker_threads');
const mod = await import(workerData.ort);
const ort = mod.default ?? mod;
let session;
const fail = (e) => String((e && e.message) || e);
parentPort.on('message', async (m) => {
  if (m.t === 'load') {
    try {
      session = await ort.InferenceSession.create(m.bytes, m.options);
      parentPort.postMessage({ t: 'loaded', inputNames: session.inputNames, outputNames: session.outputNames });
    } catch (e) {
      parentPort.postMessage({ t: 'load-failed', message: fail(e) });
    }
  } else if (m.t === 'run') {
    const input = m.type === 'float16' ? new Uint16Array(m.buf, 0, m.length) : new Float32Array(m.buf, 0, m.length);
    try {
      const r = await session.run({ [m.inputName]: new ort.Tensor(m.type, input, m.dims) });
      const o = r[m.outputName];
      const data = o.data;
      // the output owns its buffer (a copy onnxruntime-node made), so it can be moved, not copied
      parentPort.postMessage({ t: 'out', id: m.id, buf: m.buf, data, dims: o.dims, type: o.type }, [m.buf, data.buffer]);
    } catch (e) {
      parentPort.postMessage({ t: 'run-failed', id: m.id, buf: m.buf, message: fail(e) }, [m.buf]);
    }
  } else if (m.t === 'release') {
    if (session) await session.release();
    parentPort.postMessage({ t: 'released' });
  }
});
})();
`;

type FromWorker =
  | { t: 'loaded'; inputNames: string[]; outputNames: string[] }
  | { t: 'load-failed'; message: string }
  | { t: 'out'; id: number; buf: ArrayBuffer; data: Float32Array | Uint16Array; dims: number[]; type: string }
  | { t: 'run-failed'; id: number; buf: ArrayBuffer; message: string }
  | { t: 'released' };

interface Pending {
  resolve: (v: { out: RunOutput; buffer: Float32Array | Uint16Array }) => void;
  reject: (e: unknown) => void;
  type: 'float32' | 'float16';
}

class WorkerRunner implements SessionRunner {
  readonly concurrency = 1;
  private readonly pending = new Map<number, Pending>();
  private nextId = 0;
  /** why the worker is gone (it exited or failed); every later run is refused with it */
  private dead: Error | undefined;
  private released = false;

  get broken(): Error | undefined {
    return this.released ? undefined : this.dead;
  }
  private onReleased: (() => void) | undefined;

  private constructor(
    private readonly worker: Worker,
    readonly inputNames: readonly string[],
    readonly outputNames: readonly string[],
    private readonly label: string,
  ) {
    worker.on('message', (m: FromWorker) => this.onMessage(m));
    const gone = (e: Error) => {
      this.dead ??= e;
      for (const p of this.pending.values()) p.reject(inferenceFailed(this.label, e));
      this.pending.clear();
      this.onReleased?.();
    };
    worker.on('error', gone);
    worker.on('exit', (code) => gone(new Error(`the inference thread exited (code ${code})`)));
    // An idle detector must not keep a process alive (a CLI that forgot dispose()); a pending run does.
    worker.unref();
  }

  static async create(bytes: Uint8Array, options: ort.InferenceSession.SessionOptions, label: string): Promise<WorkerRunner> {
    // The thread's own JS allocates only messages: a small young generation keeps its memory small.
    const worker = new Worker(WORKER_SOURCE, {
      eval: true,
      resourceLimits: { maxYoungGenerationSizeMb: 2 },
      workerData: { ort: pathToFileURL(createRequire(import.meta.url).resolve('onnxruntime-node')).href },
    });
    // (Only these listeners come off afterwards: removeAllListeners would also drop the Worker's own.)
    let onMessage!: (m: FromWorker) => void;
    let onError!: (e: Error) => void;
    let onExit!: (code: number) => void;
    const first = await new Promise<FromWorker>((resolve, reject) => {
      onMessage = resolve;
      onError = reject;
      onExit = (code) => reject(new Error(`the inference thread exited (code ${code}) while loading`));
      worker.once('message', onMessage).once('error', onError).once('exit', onExit);
      // moved, not copied (the model is tens of MB, and a copy would stay in the peak RSS): a whole
      // buffer goes as it is, a view into a larger one is copied out first. The caller's array is
      // empty afterwards.
      const whole = bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength ? bytes : bytes.slice();
      worker.postMessage({ t: 'load', bytes: whole, options }, [whole.buffer as ArrayBuffer]);
    })
      .catch(async (e: unknown) => {
        await worker.terminate();
        throw loadFailed(label, e);
      })
      .finally(() => worker.off('message', onMessage).off('error', onError).off('exit', onExit));
    if (first.t !== 'loaded') {
      await worker.terminate();
      throw loadFailed(label, first.t === 'load-failed' ? first.message : `unexpected ${first.t}`);
    }
    return new WorkerRunner(worker, first.inputNames, first.outputNames, label);
  }

  private onMessage(m: FromWorker): void {
    if (m.t === 'released') return this.onReleased?.();
    if (m.t !== 'out' && m.t !== 'run-failed') return;
    const p = this.pending.get(m.id);
    if (!p) return;
    this.pending.delete(m.id);
    if (this.pending.size === 0) this.worker.unref();
    const buffer = p.type === 'float16' ? new Uint16Array(m.buf) : new Float32Array(m.buf);
    if (m.t === 'run-failed') p.reject(Object.assign(inferenceFailed(this.label, m.message), { buffer }));
    else p.resolve({ out: { data: m.data, dims: m.dims, type: m.type }, buffer });
  }

  run(buffer: Float32Array | Uint16Array, length: number, dims: readonly number[], inputName: string, outputName: string) {
    if (this.dead) return Promise.reject(inferenceFailed(this.label, this.dead));
    if (buffer.byteOffset !== 0 || buffer.byteLength !== buffer.buffer.byteLength)
      throw new Error('the worker session needs a whole buffer (it is moved to the thread and back)');
    const id = this.nextId++;
    const type = tensorType(buffer);
    return new Promise<{ out: RunOutput; buffer: Float32Array | Uint16Array }>((resolve, reject) => {
      this.pending.set(id, { resolve, reject, type });
      if (this.pending.size === 1) this.worker.ref();
      const buf = buffer.buffer as ArrayBuffer;
      this.worker.postMessage({ t: 'run', id, buf, length, dims: [...dims], type, inputName, outputName }, [buf]);
    });
  }

  async release(): Promise<void> {
    this.released = true;
    if (!this.dead) {
      await new Promise<void>((resolve) => {
        this.onReleased = resolve;
        this.worker.ref(); // the answer is awaited: it must keep the process alive
        this.worker.postMessage({ t: 'release' });
      });
    }
    this.dead ??= new Error('the detector was disposed');
    await this.worker.terminate();
  }
}

/**
 * Several sessions of one model, each in its own worker thread, taking runs at once. Why: on a
 * small CPU one YOLOv8n run splits poorly over intra-op threads (this 2-core VM, whole detector:
 * one session with 2 threads 41.5 int8 / 28.7 fp32 images/s, two sessions with 1 thread each
 * 55.8 / 34.6), and a barrier between a run's threads waits for whichever core the camera or
 * nucleus took. The price is a session's memory per member and a longer single run, so it suits a
 * continuous camera, not a line waiting on each part's verdict. A run goes to a free member; runs
 * beyond the members wait, in the order asked.
 */
class PoolRunner implements SessionRunner {
  private readonly free: WaitPool<WorkerRunner>;

  private constructor(private readonly members: WorkerRunner[]) {
    this.free = new WaitPool(members);
  }

  static async create(bytes: Uint8Array, options: ort.InferenceSession.SessionOptions, label: string, n: number): Promise<PoolRunner> {
    const members: WorkerRunner[] = [];
    try {
      // Copies (a Buffer.slice would share the memory the first move detaches), loaded one after
      // another so that each load's optimiser peak comes and goes before the next.
      for (let i = 0; i < n; i++) members.push(await WorkerRunner.create(i === n - 1 ? bytes : new Uint8Array(bytes), options, label));
    } catch (e) {
      // the load failure is the error to report; a member that also fails to release is gone anyway
      await Promise.all(members.map((m) => m.release().catch(() => {})));
      throw e;
    }
    return new PoolRunner(members);
  }

  get concurrency(): number {
    return this.members.length;
  }
  get inputNames(): readonly string[] {
    return this.members[0]!.inputNames;
  }
  get outputNames(): readonly string[] {
    return this.members[0]!.outputNames;
  }
  /** A dead member makes the pool broken: its caller restarts rather than run on fewer threads unnoticed. */
  get broken(): Error | undefined {
    for (const m of this.members) if (m.broken) return m.broken;
    return undefined;
  }

  async run(buffer: Float32Array | Uint16Array, length: number, dims: readonly number[], inputName: string, outputName: string) {
    const m = await this.free.take();
    try {
      return await m.run(buffer, length, dims, inputName, outputName);
    } finally {
      this.free.give(m);
    }
  }

  async release(): Promise<void> {
    await Promise.all(this.members.map((m) => m.release()));
  }
}
