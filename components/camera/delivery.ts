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
 * a frame announced after it was answered, so the other side is there, works in order, and
 * skipped this one (it was away when the frame went out, or dropped it from a full queue).
 * Otherwise the frame is held, however long that takes:
 *  - the other side answers, but only older frames (the burst after a restart): the frame is
 *    announced again with backoff (ackTimeoutMs doubling up to `maxHoldIntervalMs`) and spends
 *    nothing; a repeat costs Inference nothing, it is still queued there;
 *  - nothing was answered for a whole ackTimeoutMs (Inference restarting for a model update, slow
 *    to load on a busy device; or the uploader down): one held frame per tick goes out as a probe
 *    and the rest wait, so a long outage costs a message per tick, not one per frame. When the
 *    other side says it is ready (`expireAll`) or answers again, every held frame goes out at once.
 * How long a frame can wait is bounded by the frame store (an evicted image cannot be sent again)
 * and `maxUnacked`; every frame given up on is counted in `lost`, by cause.
 *
 * "Overtaken" is a guess: Inference runs several workers, so a newer frame can be answered while
 * an older one is still being inferred (its repeat is then a no-op there). A frame given up on
 * that is answered after all was not lost: it leaves `lost` and is counted in `lateAnswers`.
 */
export interface DeliveryConfig {
  redeliver: boolean;
  ackTimeoutMs: number;
  maxRedeliveries: number;
  maxUnacked: number;
}

interface Unacked {
  msg: FrameMessage;
  /** place in the order frames went out: set when announced, and again when redelivered as overtaken */
  order: number;
  /** when to look at it next */
  dueAt: number;
  /** redeliveries spent (the frame was overtaken) */
  attempts: number;
  /** announcements without spending (held); the backoff's exponent */
  holds: number;
}

export class Delivery {
  private readonly unacked = new Map<string, Unacked>();
  private nextOrder = 0;
  /** the latest place (order) among the frames answered so far */
  private answeredUpTo = -1;
  /** when the other side was last heard from (an answer, or its ready message) */
  private heardAt: number;
  redelivered = 0;
  /** announcements that spent no attempt: the frame was held (the other side away or busy) */
  held = 0;
  /** frames given up on: never answered after every redelivery, the image evicted meanwhile, or over maxUnacked */
  lost = 0;
  readonly lostBy = { attempts: 0, evicted: 0, overflow: 0 };
  /** frames given up on and answered afterwards (so not lost after all) */
  lateAnswers = 0;
  /** recently given-up frames, by cause, so a late answer can be taken back out of `lost` */
  private readonly givenUp = new Map<string, keyof Delivery['lostBy']>();
  /** the longest wait between two announcements of a held frame */
  readonly maxHoldIntervalMs: number;

  constructor(
    private cfg: DeliveryConfig,
    opts: { maxHoldIntervalMs?: number; now?: number } = {},
  ) {
    this.maxHoldIntervalMs = opts.maxHoldIntervalMs ?? 30_000;
    this.heardAt = opts.now ?? Date.now();
  }

  setConfig(cfg: DeliveryConfig): void {
    this.cfg = cfg;
  }

  track(msg: FrameMessage, now = Date.now()): void {
    if (!this.cfg.redeliver) return;
    this.unacked.set(msg.frameId, { msg, order: this.nextOrder++, dueAt: now + this.cfg.ackTimeoutMs, attempts: 0, holds: 0 });
    while (this.unacked.size > this.cfg.maxUnacked) {
      const first = this.unacked.keys().next().value as string;
      this.unacked.delete(first);
      this.giveUp(first, 'overflow');
    }
  }

  ack(frameId: string, now = Date.now()): void {
    // back after a silence: what waited goes out at the next tick
    if (now - this.heardAt > this.cfg.ackTimeoutMs) this.expireAll(now);
    this.heardAt = now;
    const u = this.unacked.get(frameId);
    if (!u) {
      const why = this.givenUp.get(frameId);
      if (why) {
        this.givenUp.delete(frameId);
        this.lost--;
        this.lostBy[why]--;
        this.lateAnswers++;
      }
      return;
    }
    this.unacked.delete(frameId);
    if (u.order > this.answeredUpTo) this.answeredUpTo = u.order;
  }

  get pending(): number {
    return this.unacked.size;
  }

  /** The other side (re)started and listens: every unanswered frame is due now. */
  expireAll(now = Date.now()): void {
    this.heardAt = now;
    for (const u of this.unacked.values()) u.dueAt = 0;
  }

  private giveUp(frameId: string, why: keyof Delivery['lostBy']): void {
    this.lost++;
    this.lostBy[why]++;
    this.givenUp.set(frameId, why);
    // bounded: an answer later than 4096 give-ups is not going to come
    if (this.givenUp.size > 4096) this.givenUp.delete(this.givenUp.keys().next().value as string);
  }

  private holdWait(holds: number): number {
    return Math.min(this.cfg.ackTimeoutMs * 2 ** holds, Math.max(this.cfg.ackTimeoutMs, this.maxHoldIntervalMs));
  }

  /** Re-announce overdue frames (oldest first). */
  async tick(publish: (m: FrameMessage) => Promise<void>, now = Date.now()): Promise<void> {
    const silent = now - this.heardAt > this.cfg.ackTimeoutMs;
    let probed = false;
    for (const [id, u] of [...this.unacked]) {
      if (u.dueAt > now) continue;
      const overtaken = this.answeredUpTo > u.order;
      if (!overtaken && silent && probed) {
        u.dueAt = now + this.holdWait(u.holds); // wait behind this tick's probe
        continue;
      }
      const stillThere = await access(u.msg.path).then(
        () => true,
        () => false,
      );
      if (!this.unacked.has(id)) continue; // answered meanwhile
      if (!stillThere) {
        this.unacked.delete(id);
        this.giveUp(id, 'evicted');
        continue;
      }
      if (overtaken && u.attempts >= this.cfg.maxRedeliveries) {
        this.unacked.delete(id);
        this.giveUp(id, 'attempts');
        continue;
      }
      if (!overtaken && silent) probed = true;
      try {
        await publish(u.msg);
      } catch {
        // IPC down: try again at the next timeout without spending anything
        u.dueAt = now + this.cfg.ackTimeoutMs;
        continue;
      }
      this.redelivered++;
      if (overtaken) {
        // a new place in the order: answers for frames announced before this one no longer overtake it
        u.attempts++;
        u.holds = 0;
        u.order = this.nextOrder++;
        u.dueAt = now + this.cfg.ackTimeoutMs;
      } else {
        this.held++;
        u.dueAt = now + this.holdWait(++u.holds);
      }
    }
  }
}
