import type { Logger } from 'pino';
import { Detector, type SessionThread } from '../detector/detector.js';
import { LoupeError, errorMessage } from '../../lib/errors.js';
import { sha256File } from '../../lib/fsutil.js';
import type { ModelRef } from '../../contracts/topics.js';

/**
 * The model currently serving, and the hot swap. A new model is loaded *beside* the serving one
 * (digest checked, warmed up), then swapped in with one assignment between frames, so no frame
 * waits on a load and none is lost. Frames in flight finish on the model they started with; the
 * old model is disposed when the last of them releases it. A model that fails to load or whose
 * digest does not match never replaces the serving one.
 */
export interface LoadedModel {
  ref: ModelRef;
  path: string;
  detector: Detector;
  users: number;
  retired: boolean;
}

export interface RunOptions {
  threads?: number;
  spinning?: boolean;
  sessionThread?: SessionThread;
  sessions?: number;
}

export class ModelSlot {
  private current?: LoadedModel;
  private swapping: Promise<unknown> = Promise.resolve();
  swaps = 0;

  constructor(
    private readonly log: Logger,
    /** how models are run (detector load options); a change applies from the next load() */
    public runOptions: RunOptions = {},
  ) {}

  get ref(): ModelRef | undefined {
    return this.current?.ref;
  }

  /** Sessions the serving model runs frames in at once. */
  get sessions(): number | undefined {
    return this.current?.detector.sessions;
  }

  /** The serving model's file and reference. */
  get serving(): { path: string; ref: ModelRef } | undefined {
    return this.current && { path: this.current.path, ref: this.current.ref };
  }

  /** Verify, load and warm up a model, then make it the serving one. Rejects (old one stays) on failure. */
  load(path: string, ref: Omit<ModelRef, 'sha256'> & { sha256?: string }, opts: { reload?: boolean } = {}): Promise<ModelRef> {
    const run = async (): Promise<ModelRef> => {
      const t0 = Date.now();
      const actual = await sha256File(path).catch((e: unknown) => {
        throw new LoupeError('model.read', `cannot read the model: ${errorMessage(e)}`, { input: path });
      });
      if (ref.sha256 && actual.toLowerCase() !== ref.sha256.toLowerCase()) {
        throw new LoupeError('model.digest', `SHA-256 mismatch: expected ${ref.sha256}, file has ${actual}`, { input: path });
      }
      if (!opts.reload && this.current && this.current.ref.sha256 === actual && this.current.ref.version === ref.version)
        return this.current.ref;
      const o = this.runOptions;
      const detector = await Detector.load(path, {
        ...(o.threads ? { threads: o.threads } : {}),
        spinning: o.spinning ?? false,
        sessionThread: o.sessionThread ?? 'worker',
        ...(o.sessions ? { sessions: o.sessions } : {}),
      });
      try {
        await detector.warmup();
      } catch (e) {
        // the load already failed: its error is the one to report
        await detector.dispose().catch(() => {});
        throw e;
      }
      const next: LoadedModel = {
        ref: { name: ref.name, version: ref.version, sha256: actual, precision: detector.info.precision },
        path,
        detector,
        users: 0,
        retired: false,
      };
      const old = this.current;
      this.current = next; // the swap: frames taken from here on use the new model
      if (old) {
        this.swaps++;
        old.retired = true;
        if (old.users === 0)
          await old.detector.dispose().catch((e) => this.log.warn({ err: errorMessage(e) }, 'disposing the previous model failed'));
      }
      this.log.info(
        { model: next.ref, sessions: detector.sessions, loadMs: Date.now() - t0, previous: old?.ref },
        old ? 'model swapped' : 'model loaded',
      );
      return next.ref;
    };
    const p = this.swapping.then(run, run);
    // the chain only orders swaps; the caller awaits p and gets its error
    this.swapping = p.catch(() => {});
    return p;
  }

  acquire(): LoadedModel {
    if (!this.current) throw new LoupeError('model.none', 'no model loaded');
    this.current.users++;
    return this.current;
  }

  release(m: LoadedModel): void {
    m.users--;
    if (m.retired && m.users === 0)
      void m.detector.dispose().catch((e) => this.log.warn({ err: errorMessage(e) }, 'disposing the retired model failed'));
  }

  async dispose(): Promise<void> {
    await this.swapping;
    if (this.current)
      await this.current.detector.dispose().catch((e) => this.log.warn({ err: errorMessage(e) }, 'disposing the model failed'));
    this.current = undefined;
  }
}
