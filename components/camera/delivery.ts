import { access } from 'node:fs/promises';
import type { FrameMessage } from '../../contracts/topics.js';

/**
 * At-least-once hand-over of frames to inference. IPC pub/sub keeps nothing for a subscriber
 * that is away, and Inference *is* away for a moment when a deployment restarts it (a new
 * loupe.Model version restarts it through its HARD dependency). So the camera remembers each
 * announced frame until a result for it arrives on `loupe/results`, and announces it again after
 * `ackTimeoutMs` (the image is still in the frame store), up to `maxRedeliveries` times.
 * Inference answers a repeated frame id from its recent results instead of inferring it twice.
 */
export interface DeliveryConfig {
  redeliver: boolean;
  ackTimeoutMs: number;
  maxRedeliveries: number;
  maxUnacked: number;
}

export class Delivery {
  private readonly unacked = new Map<string, { msg: FrameMessage; sentAt: number; attempts: number }>();
  redelivered = 0;
  /** frames given up on: no result after every redelivery, or the image was evicted meanwhile */
  lost = 0;

  constructor(private cfg: DeliveryConfig) {}

  setConfig(cfg: DeliveryConfig): void {
    this.cfg = cfg;
  }

  track(msg: FrameMessage): void {
    if (!this.cfg.redeliver) return;
    this.unacked.set(msg.frameId, { msg, sentAt: Date.now(), attempts: 0 });
    while (this.unacked.size > this.cfg.maxUnacked) {
      const first = this.unacked.keys().next().value as string;
      this.unacked.delete(first);
      this.lost++;
    }
  }

  ack(frameId: string): void {
    this.unacked.delete(frameId);
  }

  get pending(): number {
    return this.unacked.size;
  }

  /** Inference (re)started: make every unanswered frame due now. */
  expireAll(): void {
    for (const u of this.unacked.values()) u.sentAt = 0;
  }

  /** Re-announce overdue frames (oldest first). */
  async tick(publish: (m: FrameMessage) => Promise<void>, now = Date.now()): Promise<void> {
    for (const [id, u] of this.unacked) {
      if (now - u.sentAt < this.cfg.ackTimeoutMs) continue;
      this.unacked.delete(id);
      const stillThere = await access(u.msg.path).then(
        () => true,
        () => false,
      );
      if (u.attempts >= this.cfg.maxRedeliveries || !stillThere) {
        this.lost++;
        continue;
      }
      try {
        await publish(u.msg);
        this.redelivered++;
        this.unacked.set(id, { msg: u.msg, sentAt: Date.now(), attempts: u.attempts + 1 });
      } catch {
        // IPC still down: keep it for the next tick without spending an attempt
        this.unacked.set(id, { ...u, sentAt: Date.now() });
      }
    }
  }
}
