import type { Logger } from 'pino';
import { errorMessage } from '../../lib/errors.js';
import type { CameraHealth, FrameMessage } from '../../contracts/topics.js';
import type { CameraConfig } from './config.js';
import type { FrameStore } from './frame-store.js';
import { createSource, type FrameSource } from './sources/index.js';
import { Trigger } from './triggers.js';

/**
 * One camera, supervised on its own: open the source, take a frame per trigger, store it,
 * announce it. When the source fails it is closed and reopened with exponential backoff and
 * jitter; nothing here waits on another camera, so a dead camera never stalls the others.
 */
export interface CameraDeps {
  store: FrameStore;
  publish(frame: FrameMessage): Promise<void>;
  /** called once a frame was announced (for at-least-once redelivery) */
  published?(frame: FrameMessage): void;
  onHealth(h: CameraHealth): void;
  log: Logger;
  backoff: { initialMs: number; maxMs: number };
}

export class CameraRunner {
  readonly trigger: Trigger;
  readonly health: CameraHealth;
  private source?: FrameSource;
  private stopped = false;
  private loop?: Promise<void>;
  private seq = 0;
  /** distinguishes this runner's frame ids from earlier runs and reconfigurations */
  private readonly runId = Date.now().toString(36);
  private sleepTimer?: NodeJS.Timeout;
  private wake?: () => void;
  publishErrors = 0;

  constructor(
    readonly cfg: CameraConfig,
    private readonly deps: CameraDeps,
  ) {
    this.trigger = new Trigger(cfg.trigger);
    this.health = { camera: cfg.name, state: 'starting', frames: 0, errors: 0, restarts: 0 };
  }

  start(): void {
    this.loop = this.run();
  }

  private setState(state: CameraHealth['state'], err?: unknown): void {
    const changed = this.health.state !== state;
    this.health.state = state;
    if (err !== undefined) this.health.lastError = errorMessage(err);
    if (changed) this.deps.onHealth({ ...this.health });
  }

  private async run(): Promise<void> {
    const log = this.deps.log.child({ camera: this.cfg.name });
    let delay = this.deps.backoff.initialMs;
    while (!this.stopped) {
      this.source = createSource(this.cfg.source);
      try {
        await this.source.open();
        let first = true;
        for (;;) {
          const ev = await this.trigger.wait();
          if (!ev || this.stopped) break;
          const frame = await this.source.next();
          if (frame === null) {
            log.info({ frames: this.health.frames }, 'source ended');
            this.setState('ended');
            await this.source.close();
            return;
          }
          if (first) {
            first = false;
            delay = this.deps.backoff.initialMs;
            this.setState('ok');
          }
          const seq = ++this.seq;
          const frameId = `${this.cfg.name}-${this.runId}-${String(seq).padStart(7, '0')}`;
          const time = new Date().toISOString();
          const path = await this.deps.store.put(this.cfg.name, `${frameId}.${frame.ext}`, frame.data);
          const msg: FrameMessage = {
            frameId,
            camera: this.cfg.name,
            seq,
            time,
            trigger: ev.kind,
            path,
            bytes: frame.data.length,
            ...(ev.serial ? { serial: ev.serial } : {}),
          };
          this.health.frames++;
          this.health.lastFrameAt = time;
          if (this.cfg.trigger.type === 'continuous') this.trigger.inFlight++;
          try {
            await this.deps.publish(msg);
            this.deps.published?.(msg);
          } catch (e) {
            // IPC down: the frame is not announced, the camera keeps going.
            this.publishErrors++;
            if (this.cfg.trigger.type === 'continuous') this.trigger.done();
            if (this.publishErrors % 100 === 1)
              log.warn({ err: errorMessage(e), publishErrors: this.publishErrors }, 'frame not published');
          }
        }
      } catch (e) {
        if (this.stopped) break;
        this.health.errors++;
        this.health.restarts++;
        this.setState('reconnecting', e);
        const wait = Math.round(delay / 2 + Math.random() * (delay / 2));
        log.warn({ err: errorMessage(e), retryInMs: wait }, 'camera failed; reopening');
        await this.source
          .close()
          .catch((err) => log.debug({ err: errorMessage(err) }, 'closing the failed source failed too; reopening anyway'));
        await new Promise<void>((r) => {
          this.wake = r;
          this.sleepTimer = setTimeout(r, wait);
        });
        delay = Math.min(delay * 2, this.deps.backoff.maxMs);
        continue;
      }
      break;
    }
    // stopping: the source is dropped whatever its close says
    await this.source?.close().catch(() => {});
    if (this.stopped) this.setState('stopped');
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.trigger.close();
    clearTimeout(this.sleepTimer);
    this.wake?.();
    // stopping: the source is dropped whatever its close says
    await this.source?.close().catch(() => {});
    await this.loop;
  }
}
