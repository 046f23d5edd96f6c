import { access } from 'node:fs/promises';
import type { FrameMessage } from '../../contracts/topics.js';

/**
 * At-least-once hand-over of frames to inference. IPC pub/sub keeps nothing for a subscriber
 * that is away, and Inference *is* away for a moment when a deployment restarts it (a new
 * loupe.Model version restarts it through its HARD dependency). So the camera remembers each
 * announced frame until it is answered (`ack`), and announces it again after `ackTimeoutMs`
 * (the image is still in the frame store). Inference answers a repeated frame id from its recent
 * results instead of inferring it twice.
 *
 * A redelivery spends one of the frame's `maxRedeliveries` only when the frame was overtaken:
 * the other side has answered a frame announced *after* this one, so it is there, works in order,
 * and skipped this one (it was away when it was announced, or dropped it from a full queue).
 * Otherwise the frame is held, whatever the wait: the other side is away (Inference restarting for
 * a model update, slow to load on a busy device) or still working through older frames (the burst
 * after a restart). A held frame is announced again with exponential backoff (ackTimeoutMs
 * doubling up to `maxHoldIntervalMs`; a repeat costs Inference nothing, it answers repeats from
 * its recent results), and at once when the other side says it is ready (`expireAll`). How long a
 * frame can wait is bounded by the frame store (an evicted image cannot be sent again) and
 * `maxUnacked`; every frame given up on is counted in `lost`, by cause, and logged.
 */
export interface DeliveryConfig {
  redeliver: boolean;
  ackTimeoutMs: number;
  maxRedeliveries: number;
  maxUnacked: number;
}

interface Unacked {
  msg: FrameMessage;
  /** when it was last announced */
  sentAt: number;
  /** announce at the next tick (the other side said it is ready) */
  due: boolean;
  /** redeliveries spent (announced again while the other side was answering) */
  attempts: number;
  /** redeliveries while nothing was answered (held for an absent consumer) */
  holds: number;
}

export class Delivery {
  private readonly unacked = new Map<string, Unacked>();
  /** the latest announcement time among the frames answered so far */
  private answeredUpTo = -Infinity;
  redelivered = 0;
  /** redeliveries that spent no attempt: the frame was not overtaken (the other side away or busy) */
  held = 0;
  /** frames given up on: no result after every redelivery, the image evicted meanwhile, or over maxUnacked */
  lost = 0;
  readonly lostBy = { attempts: 0, evicted: 0, overflow: 0 };
  /** the longest gap between two announcements of a held frame */
  readonly maxHoldIntervalMs: number;

  constructor(
    private cfg: DeliveryConfig,
    opts: { maxHoldIntervalMs?: number } = {},
  ) {
    this.maxHoldIntervalMs = opts.maxHoldIntervalMs ?? 30_000;
  }

  setConfig(cfg: DeliveryConfig): void {
    this.cfg = cfg;
  }

  track(msg: FrameMessage, now = Date.now()): void {
    if (!this.cfg.redeliver) return;
    this.unacked.set(msg.frameId, { msg, sentAt: now, due: false, attempts: 0, holds: 0 });
    while (this.unacked.size > this.cfg.maxUnacked) {
      const first = this.unacked.keys().next().value as string;
      this.unacked.delete(first);
      this.giveUp('overflow');
    }
  }

  ack(frameId: string): void {
    const u = this.unacked.get(frameId);
    if (!u) return;
    this.unacked.delete(frameId);
    if (u.sentAt > this.answeredUpTo) this.answeredUpTo = u.sentAt;
  }

  get pending(): number {
    return this.unacked.size;
  }

  /** The other side (re)started and listens: make every unanswered frame due now. */
  expireAll(): void {
    for (const u of this.unacked.values()) u.due = true;
  }

  private giveUp(why: keyof Delivery['lostBy']): void {
    this.lost++;
    this.lostBy[why]++;
  }

  /** Re-announce overdue frames (oldest first). */
  async tick(publish: (m: FrameMessage) => Promise<void>, now = Date.now()): Promise<void> {
    for (const [id, u] of this.unacked) {
      // held frames wait longer each time (ackTimeoutMs, 2x, 4x, ... up to maxHoldIntervalMs)
      const wait = Math.min(this.cfg.ackTimeoutMs * 2 ** u.holds, Math.max(this.cfg.ackTimeoutMs, this.maxHoldIntervalMs));
      if (!u.due && now - u.sentAt < wait) continue;
      const overtaken = this.answeredUpTo > u.sentAt;
      this.unacked.delete(id);
      const stillThere = await access(u.msg.path).then(
        () => true,
        () => false,
      );
      if (!stillThere) {
        this.giveUp('evicted');
        continue;
      }
      if (overtaken && u.attempts >= this.cfg.maxRedeliveries) {
        this.giveUp('attempts');
        continue;
      }
      try {
        await publish(u.msg);
        this.redelivered++;
        if (!overtaken) this.held++;
        this.unacked.set(id, {
          msg: u.msg,
          sentAt: now,
          due: false,
          attempts: u.attempts + (overtaken ? 1 : 0),
          // overtaken: the other side works, so the next wait is one timeout; held: it doubles
          holds: overtaken ? 0 : u.holds + 1,
        });
      } catch {
        // IPC still down: keep it for the next tick without spending an attempt
        this.unacked.set(id, { ...u, sentAt: now, due: false });
      }
    }
  }
}
