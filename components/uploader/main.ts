import { join, resolve } from 'node:path';
import { errorMessage } from '../../lib/errors.js';
import { runComponent, type ComponentContext } from '../ipc/runtime.js';
import { IOT_TOPICS, TOPICS, type ResultMessage, type UploaderHandled, type UploaderHandledBatch } from '../../contracts/topics.js';
import { BoundedQueue } from '../inference/queue.js';
import { uploaderConfigSchema, type UploaderConfig } from './config.js';
import { RateLimiter } from './rate-limit.js';
import { createS3Client, SpoolUploader } from './s3-upload.js';
import { Selector } from './selector.js';
import { Spool } from './spool.js';

const HANDLED_FLUSH_MS = 200;
const HANDLED_BATCH = 64;

/**
 * loupe.Uploader: results from `loupe/results` → selection (policies, limits, de-dup, resize)
 * → durable spool → S3 `incoming/<thing>/<yyyy>/<mm>/<dd>/<frameId>.jpg` + `.json`.
 * Telemetry on `loupe/telemetry/uploader` and IoT Core.
 */
async function start(ctx: ComponentContext<UploaderConfig>) {
  const { ipc, log } = ctx;
  let cfg = ctx.config;
  const spool = new Spool(resolve(cfg.spool.dir), cfg.spool.maxBytes);
  const opened = await spool.open();
  log.info({ spool: spool.dir, pending: opened.loaded, removedHalfWritten: opened.removed }, 'spool opened');
  const limiter = new RateLimiter(cfg.limits, join(spool.dir, '.limits'));
  await limiter.load();
  const selector = new Selector(cfg, ctx.thingName, spool, limiter, log);
  await selector.open();
  const uploader = new SpoolUploader(spool, createS3Client({ ...cfg, ...cfg.upload }), cfg.bucket, cfg.upload, log, (it) =>
    log.debug({ key: it.imageKey, reason: it.reason }, 'uploaded'),
  );
  uploader.start();

  // Results dealt with for good, by frame id: a result that comes round again (the camera
  // re-announces frames until it hears from us) is answered, not handled twice.
  const handled = new Map<string, UploaderHandled['outcome']>();
  // Answers go out coalesced (UploaderHandledBatch): at most one message per HANDLED_FLUSH_MS or
  // HANDLED_BATCH answers. One IPC message per frame cost ~1 ms of CPU per frame across uploader,
  // nucleus and camera; the camera waits seconds (ackTimeoutMs) before it re-announces anything.
  let answers: UploaderHandled[] = [];
  let flushTimer: NodeJS.Timeout | undefined;
  const flushAnswers = async (): Promise<void> => {
    clearTimeout(flushTimer);
    flushTimer = undefined;
    if (!answers.length) return;
    const msg: UploaderHandledBatch = { handled: answers };
    answers = [];
    // a lost answer is safe to drop: the camera re-announces the frame and it is answered again
    await ipc.publish(TOPICS.uploaderHandled, msg as unknown as Record<string, unknown>).catch(() => {});
  };
  const tell = (r: ResultMessage, outcome: UploaderHandled['outcome']) => {
    answers.push({ frameId: r.frameId, camera: r.camera, outcome });
    if (answers.length >= HANDLED_BATCH) void flushAnswers();
    else flushTimer ??= setTimeout(() => void flushAnswers(), HANDLED_FLUSH_MS);
  };
  const backlog = new BoundedQueue<ResultMessage>(cfg.backlog, 'drop-oldest');
  const worker = (async () => {
    for (;;) {
      const r = await backlog.pop();
      if (!r) return;
      const before = handled.get(r.frameId);
      if (before) {
        tell(r, before);
        continue;
      }
      const outcome = await selector.process(r).catch(() => 'error' as const);
      if (outcome === 'spooled') uploader.poke();
      // Not told on an error (a full disk, say): the camera announces the frame again later.
      if (outcome === 'error') continue;
      handled.set(r.frameId, outcome);
      if (handled.size > 8192) handled.delete(handled.keys().next().value as string);
      tell(r, outcome);
    }
  })();
  const unsub = await ipc.subscribe(TOPICS.results, (m) => {
    if (typeof m.frameId === 'string' && typeof m.path === 'string' && Array.isArray(m.detections))
      backlog.push(m as unknown as ResultMessage);
  });
  // Frames announced while we were away (a restart) come round again now rather than after the camera's ack timeout.
  await ipc.publish(TOPICS.uploaderReady, {}).catch(() => {});

  const telemetry = () => ({
    component: 'uploader',
    time: new Date().toISOString(),
    ...selector.stats,
    backlog: backlog.depth,
    backlogDropped: backlog.dropped,
    ...uploader.stats,
    inFlight: uploader.inFlight,
    spoolPending: spool.pending,
    spoolBytes: spool.bytes,
    oldestPendingS: +spool.oldestAgeS().toFixed(1),
  });
  const publishTelemetry = async () => {
    const t = telemetry();
    await ipc
      .publish(TOPICS.telemetry('uploader'), t)
      .catch((e) => log.debug({ err: errorMessage(e) }, 'telemetry not published; the next interval retries'));
    await ipc
      .publishIoTCore(IOT_TOPICS.telemetry(ctx.thingName), t)
      .catch((e) => log.debug({ err: errorMessage(e) }, 'telemetry not sent to IoT Core; the next interval retries'));
  };
  let timer = setInterval(() => void publishTelemetry(), cfg.telemetryIntervalS * 1000);

  return {
    reconfigure(next: UploaderConfig) {
      if (next.telemetryIntervalS !== cfg.telemetryIntervalS) {
        clearInterval(timer);
        timer = setInterval(() => void publishTelemetry(), next.telemetryIntervalS * 1000);
      }
      backlog.resize(next.backlog, 'drop-oldest');
      selector.reconfigure(next);
      uploader.reconfigure(createS3Client({ ...next, ...next.upload }), next.bucket, next.upload);
      if (resolve(next.spool.dir) !== spool.dir) log.warn({ key: 'spool.dir' }, 'spool.dir changes apply at the next start');
      cfg = next;
    },
    async stop() {
      clearInterval(timer);
      await unsub();
      backlog.close();
      await worker.catch((e) => log.error({ err: errorMessage(e) }, 'selector failed'));
      await flushAnswers();
      await uploader.stop();
      await publishTelemetry();
    },
  };
}

await runComponent('loupe.Uploader', uploaderConfigSchema, start);
