import { resolve } from 'node:path';
import { errorMessage } from '../../lib/errors.js';
import type { Unsubscribe } from '../ipc/client.js';
import { runComponent, type ComponentContext } from '../ipc/runtime.js';
import { IOT_TOPICS, TOPICS, handledFrameIds, type CameraHealth, type FrameMessage, type TriggerMessage } from '../../contracts/topics.js';
import { CameraRunner } from './camera.js';
import { Delivery } from './delivery.js';
import { cameraConfigSchema, type CameraComponentConfig } from './config.js';
import { FrameStore } from './frame-store.js';

/**
 * loupe.Camera: runs every configured camera, writes frames to the bounded frame store and
 * announces them on `loupe/frames`. Triggers arrive on `loupe/trigger` (IPC) or the thing's
 * IoT Core trigger topic; health goes to `loupe/health/camera` and IoT Core.
 */
async function start(ctx: ComponentContext<CameraComponentConfig>) {
  const { ipc, log } = ctx;
  let cfg = ctx.config;
  let store = new FrameStore(resolve(cfg.frameStore.dir), cfg.frameStore.maxFrames, cfg.frameStore.maxBytes);
  await store.init();
  let runners: CameraRunner[] = [];
  const delivery = new Delivery(cfg.delivery);
  const publishFrame = (f: FrameMessage) => ipc.publish(TOPICS.frames, f as unknown as Record<string, unknown>);
  let subs: Unsubscribe[] = [];

  const publishHealth = async () => {
    const cameras: CameraHealth[] = runners.map((r) => ({ ...r.health }));
    const msg = {
      component: 'camera',
      time: new Date().toISOString(),
      cameras,
      frameStore: store.size,
      evicted: store.evicted,
      delivery: {
        unacked: delivery.pending,
        redelivered: delivery.redelivered,
        held: delivery.held,
        lost: delivery.lost,
        lostBy: { ...delivery.lostBy },
        lateAnswers: delivery.lateAnswers,
      },
    };
    await ipc
      .publish(TOPICS.cameraHealth, msg)
      .catch((e) => log.debug({ err: errorMessage(e) }, 'camera health not published; the next report retries'));
    if (cfg.publishToIoTCore)
      await ipc
        .publishIoTCore(IOT_TOPICS.health(ctx.thingName), msg)
        .catch((e) => log.debug({ err: errorMessage(e) }, 'camera health not sent to IoT Core; the next report retries'));
  };

  /** Start the configured cameras; `keep` are running ones whose configuration did not change. */
  const startAll = async (keep: CameraRunner[] = []) => {
    const kept = new Map(keep.map((r) => [r.cfg.name, r]));
    runners = cfg.cameras
      .filter((c) => c.enabled)
      .map(
        (c) =>
          kept.get(c.name) ??
          new CameraRunner(c, {
            store,
            log,
            backoff: cfg.backoff,
            publish: publishFrame,
            published: (f) => delivery.track(f),
            onHealth: (h) => {
              log.info({ camera: h.camera, state: h.state, lastError: h.lastError }, 'camera state');
              void publishHealth();
            },
          }),
      );
    const byTopic = new Map<string, CameraRunner[]>();
    for (const r of runners) {
      const t = r.cfg.trigger;
      if (t.type === 'ipc' || t.type === 'mqtt') {
        const key = `${t.type}|${t.topic ?? (t.type === 'ipc' ? TOPICS.trigger : IOT_TOPICS.trigger(ctx.thingName))}`;
        byTopic.set(key, [...(byTopic.get(key) ?? []), r]);
      }
    }
    const fire = (targets: CameraRunner[], m: TriggerMessage) => {
      for (const r of targets) if (!m.camera || m.camera === r.cfg.name) r.trigger.fire(m.serial);
    };
    for (const [key, targets] of byTopic) {
      const [kind, topic] = key.split('|') as ['ipc' | 'mqtt', string];
      if (kind === 'ipc') subs.push(await ipc.subscribe(topic, (m) => fire(targets, m as TriggerMessage)));
      else
        subs.push(
          await ipc.subscribeIoTCore(topic, (payload) => {
            // A PLC bridge may send JSON {camera?, serial?} or just the serial as text.
            const text = payload.toString('utf8').trim();
            let m: TriggerMessage;
            try {
              const j = JSON.parse(text) as unknown;
              m = j && typeof j === 'object' ? (j as TriggerMessage) : { serial: String(j) };
            } catch {
              m = text ? { serial: text } : {};
            }
            fire(targets, m);
          }),
        );
    }
    if (cfg.delivery.redeliver || runners.some((r) => r.cfg.trigger.type === 'continuous' && r.cfg.trigger.maxInFlight)) {
      const byName = new Map(runners.map((r) => [r.cfg.name, r]));
      subs.push(
        await ipc.subscribe(TOPICS.results, (m) => {
          if (cfg.delivery.ackBy === 'inference') delivery.ack(String(m.frameId));
          byName.get(String(m.camera))?.trigger.done();
        }),
      );
      subs.push(await ipc.subscribe(TOPICS.inferenceReady, () => delivery.expireAll()));
      if (cfg.delivery.ackBy === 'uploader') {
        subs.push(
          await ipc.subscribe(TOPICS.uploaderHandled, (m) => {
            for (const id of handledFrameIds(m)) delivery.ack(id);
          }),
        );
        subs.push(await ipc.subscribe(TOPICS.uploaderReady, () => delivery.expireAll()));
      }
    }
    for (const r of runners) if (!kept.has(r.cfg.name)) r.start();
  };

  const stopAll = async (keep: CameraRunner[] = []) => {
    for (const u of subs) await u();
    subs = [];
    await Promise.all(runners.filter((r) => !keep.includes(r)).map((r) => r.stop()));
  };

  await startAll();
  let timer = setInterval(() => void publishHealth(), cfg.healthIntervalS * 1000);
  let ticking = false;
  const redeliverTimer = setInterval(() => {
    if (ticking) return;
    ticking = true;
    const lostBefore = delivery.lost;
    void delivery
      .tick(publishFrame)
      .then(() => {
        if (delivery.lost > lostBefore)
          log.warn(
            { lost: delivery.lost - lostBefore, lostBy: delivery.lostBy, unacked: delivery.pending },
            'frames given up on: never answered',
          );
      })
      .finally(() => (ticking = false));
  }, 500);
  log.info({ cameras: runners.map((r) => r.cfg.name), frameStore: store.dir }, 'cameras started');

  return {
    async reconfigure(next: CameraComponentConfig) {
      // Cameras whose block did not change keep running (a watched folder is not read again).
      const storeChanged =
        resolve(next.frameStore.dir) !== store.dir ||
        next.frameStore.maxFrames !== cfg.frameStore.maxFrames ||
        next.frameStore.maxBytes !== cfg.frameStore.maxBytes;
      const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
      const keep =
        storeChanged || !same(next.backoff, cfg.backoff)
          ? []
          : runners.filter((r) => next.cameras.some((c) => c.name === r.cfg.name && c.enabled && same(c, r.cfg)));
      await stopAll(keep);
      if (storeChanged) {
        store = new FrameStore(resolve(next.frameStore.dir), next.frameStore.maxFrames, next.frameStore.maxBytes);
        await store.init();
      }
      if (next.healthIntervalS !== cfg.healthIntervalS) {
        clearInterval(timer);
        timer = setInterval(() => void publishHealth(), next.healthIntervalS * 1000);
      }
      delivery.setConfig(next.delivery);
      cfg = next;
      await startAll(keep).catch((e) => log.error({ err: errorMessage(e) }, 'restarting cameras failed'));
    },
    async stop() {
      clearInterval(timer);
      clearInterval(redeliverTimer);
      await stopAll();
      await publishHealth();
    },
  };
}

await runComponent('loupe.Camera', cameraConfigSchema, start);
