import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Delivery } from '../../components/camera/delivery.js';
import type { FrameMessage } from '../../contracts/topics.js';
import { handledFrameIds } from '../../contracts/topics.js';

// The camera's at-least-once hand-over, on a clock the test drives (tick/ack/track take `now`).
let tmp: string;
beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'loupe-delivery-'));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

async function frame(seq: number): Promise<FrameMessage> {
  const path = join(tmp, `f${seq}.jpg`);
  await writeFile(path, 'x');
  return { frameId: `cam-r-${seq}`, camera: 'cam', seq, time: new Date(0).toISOString(), trigger: 'interval', path, bytes: 1 };
}

const cfg = { redeliver: true, ackTimeoutMs: 1000, maxRedeliveries: 3, maxUnacked: 100 };

describe('camera delivery', () => {
  it('holds a frame while nothing newer is answered (inference restarting): announced again with backoff, never given up', async () => {
    const d = new Delivery(cfg, { maxHoldIntervalMs: 8000, now: 0 });
    const f = await frame(1);
    const sent: number[] = [];
    let now = 0;
    d.track(f, now);
    // A long outage: 10 minutes of ticks every 500 ms with no answer at all.
    for (now = 500; now <= 600_000; now += 500) await d.tick(async () => void sent.push(now), now);
    expect(d.lost).toBe(0);
    expect(d.pending).toBe(1);
    expect(d.held).toBe(sent.length);
    // Backoff: 1 s, 2 s, 4 s, then every 8 s (the cap) — not an announcement every timeout.
    expect(sent.length).toBeLessThan(600_000 / 8000 + 5);
    expect(sent.length).toBeGreaterThan(600_000 / 8000 - 5);
    // Inference is back: it says so, the frame goes out at once and is answered.
    const beforeReady = sent.length;
    d.expireAll(now);
    await d.tick(async () => void sent.push(now), now);
    expect(sent.length).toBe(beforeReady + 1);
    d.ack(f.frameId, now + 10);
    expect(d.pending).toBe(0);
    expect(d.lost).toBe(0);
  });

  it('a long outage with many frames waiting costs one probe per tick; all go out when the other side is back', async () => {
    const d = new Delivery(cfg, { now: 0 });
    const frames = await Promise.all(Array.from({ length: 20 }, (_, i) => frame(100 + i)));
    frames.forEach((f, i) => d.track(f, i * 10));
    let sent: string[] = [];
    let ticks = 0;
    let now = 0;
    for (now = 500; now <= 60_000; now += 500, ticks++) await d.tick(async (m) => void sent.push(m.frameId), now);
    expect(sent.length).toBeLessThanOrEqual(ticks);
    expect(new Set(sent).size).toBeGreaterThan(1); // the probe is not always the same frame
    expect(d.lost).toBe(0);
    // back: its ready message makes every frame due, and none of them spends an attempt
    d.expireAll(now);
    sent = [];
    await d.tick(async (m) => void sent.push(m.frameId), now);
    expect(sent.sort()).toEqual(frames.map((f) => f.frameId).sort());
    for (const f of frames) d.ack(f.frameId, now + 100);
    expect(d.pending).toBe(0);
    expect(d.lost).toBe(0);
  });

  /** Frame 2 is overtaken again and again (newer frames answered, it not) until given up on. */
  const overtakeUntilGivenUp = async () => {
    const d = new Delivery(cfg, { now: 0 });
    const f = await frame(2);
    const others = await Promise.all([3, 4, 5, 6, 7].map(frame));
    let now = 0;
    d.track(f, now);
    let published = 0;
    for (let i = 0; i < 10 && d.pending > 0; i++) {
      // a frame announced after this one is answered: the consumer is there and skipped it
      const o = others[i % others.length]!;
      d.track(o, now + 10);
      d.ack(o.frameId, now + 100);
      now += 1000;
      await d.tick(async () => void published++, now);
    }
    return { d, f, now, published };
  };

  it('gives a frame up after maxRedeliveries only when newer frames are answered and this one is not', async () => {
    const { d, published } = await overtakeUntilGivenUp();
    expect(published).toBe(cfg.maxRedeliveries);
    expect(d.lost).toBe(1);
    expect(d.lostBy).toEqual({ attempts: 1, evicted: 0, overflow: 0 });
    expect(d.held).toBe(0);
  });

  it('a frame given up on and answered afterwards is not lost (a second worker answered a newer frame first)', async () => {
    const { d, f, now } = await overtakeUntilGivenUp();
    expect(d.lost).toBe(1);
    // the slow worker finishes the frame after all
    d.ack(f.frameId, now + 50);
    expect(d.lost).toBe(0);
    expect(d.lostBy).toEqual({ attempts: 0, evicted: 0, overflow: 0 });
    expect(d.lateAnswers).toBe(1);
    // a second answer for it changes nothing
    d.ack(f.frameId, now + 60);
    expect(d.lateAnswers).toBe(1);
    expect(d.lost).toBe(0);
  });

  it('holds frames behind a backlog: answers for older frames spend no attempt', async () => {
    const d = new Delivery(cfg, { now: 0 });
    const frames = await Promise.all([11, 12, 13, 14, 15, 16, 17, 18].map(frame));
    frames.forEach((f, i) => d.track(f, i));
    let now = 0;
    // the consumer answers one frame, in order, every 0.8 timeouts: a long way behind
    for (const f of frames) {
      now += 800;
      await d.tick(async () => {}, now);
      d.ack(f.frameId, now);
    }
    expect(d.pending).toBe(0);
    expect(d.lost).toBe(0);
    expect(d.held).toBeGreaterThan(0);
  });

  it('counts a frame whose image left the frame store, and one over maxUnacked, as lost', async () => {
    const d = new Delivery({ ...cfg, maxUnacked: 2 }, { now: 0 });
    const a = await frame(8);
    d.track(a, 0);
    d.track(await frame(9), 0);
    d.track(await frame(10), 0); // over maxUnacked: the oldest (a) goes
    expect(d.lostBy.overflow).toBe(1);
    await rm(join(tmp, 'f9.jpg'));
    await d.tick(async () => {}, 1000);
    expect(d.lostBy.evicted).toBe(1);
    expect(d.lost).toBe(2);
    expect(d.pending).toBe(1);
  });

  it("reads both forms of the uploader's answer", () => {
    expect(handledFrameIds({ frameId: 'a', camera: 'c', outcome: 'spooled' })).toEqual(['a']);
    expect(
      handledFrameIds({
        handled: [
          { frameId: 'a', camera: 'c', outcome: 'spooled' },
          { frameId: 'b', camera: 'c', outcome: 'duplicate' },
        ],
      }),
    ).toEqual(['a', 'b']);
    expect(handledFrameIds({ handled: [null, { frameId: 3 }] })).toEqual([]);
    expect(handledFrameIds({})).toEqual([]);
  });
});
