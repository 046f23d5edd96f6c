import { z } from 'zod';
import type { TriggerKind } from '../../contracts/topics.js';

/**
 * When a camera takes a frame. `interval` runs at a fixed rate (late ticks are skipped, not
 * bunched); `continuous` as fast as the source delivers, optionally paced so that at most
 * `maxInFlight` frames wait for inference (no frames are made only to be dropped); `ipc` and
 * `mqtt` wait for an external trigger (a PLC bridge), which may carry a part serial.
 */
export const triggerSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('interval'), fps: z.number().positive().max(1000) }),
  z.object({ type: z.literal('continuous'), maxInFlight: z.number().int().min(1).optional() }),
  z.object({ type: z.literal('ipc'), topic: z.string().optional() }),
  z.object({ type: z.literal('mqtt'), topic: z.string().optional() }),
]);
export type TriggerConfig = z.infer<typeof triggerSchema>;

export interface TriggerEvent {
  kind: TriggerKind;
  serial?: string;
}

/** A trigger that `wait()`s for the next event; `fire()` feeds external ones; `close()` ends waits. */
export class Trigger {
  private readonly pending: TriggerEvent[] = [];
  private waiter?: (e: TriggerEvent | null) => void;
  private nextTick = 0;
  private closed = false;
  private timer?: NodeJS.Timeout;
  /** external triggers dropped because the camera was already behind */
  dropped = 0;
  inFlight = 0;
  private paceWaiter?: () => void;
  private sleepDone?: () => void;

  constructor(
    readonly cfg: TriggerConfig,
    private readonly maxPending = 32,
  ) {}

  fire(serial?: string): void {
    const kind = this.cfg.type === 'mqtt' ? 'mqtt' : 'ipc';
    const ev: TriggerEvent = serial ? { kind, serial } : { kind };
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = undefined;
      w(ev);
    } else if (this.pending.length < this.maxPending) this.pending.push(ev);
    else this.dropped++;
  }

  /** A result came back for one of this camera's frames (continuous pacing). */
  done(): void {
    if (this.inFlight > 0) this.inFlight--;
    const w = this.paceWaiter;
    this.paceWaiter = undefined;
    w?.();
  }

  async wait(): Promise<TriggerEvent | null> {
    if (this.closed) return null;
    switch (this.cfg.type) {
      case 'interval': {
        const period = 1000 / this.cfg.fps;
        const now = Date.now();
        if (this.nextTick === 0) this.nextTick = now;
        if (this.nextTick < now - period) this.nextTick = now; // behind: skip missed ticks
        const delay = this.nextTick - now;
        this.nextTick += period;
        if (delay > 0)
          await new Promise<void>((r) => {
            this.sleepDone = r;
            this.timer = setTimeout(r, delay);
          });
        return this.closed ? null : { kind: 'interval' };
      }
      case 'continuous': {
        const max = this.cfg.maxInFlight;
        while (max !== undefined && this.inFlight >= max && !this.closed) {
          // Pacing waits for results, but never forever: a lost result must not stall the camera.
          await new Promise<void>((r) => {
            this.paceWaiter = r;
            this.timer = setTimeout(() => {
              if (this.inFlight > 0) this.inFlight--;
              r();
            }, 5000);
          });
          clearTimeout(this.timer);
        }
        return this.closed ? null : { kind: 'continuous' };
      }
      default: {
        const ev = this.pending.shift();
        if (ev) return ev;
        return new Promise((r) => (this.waiter = r));
      }
    }
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
    this.sleepDone?.();
    this.waiter?.(null);
    this.waiter = undefined;
    this.paceWaiter?.();
  }
}
