import { stat } from 'node:fs/promises';
import { errorMessage } from '../../lib/errors.js';
import { runComponent, type ComponentContext } from '../ipc/runtime.js';
import { imageHashes } from '../../lib/image-hash.js';
import { decodeImage } from '../detector/decode.js';
import {
  IOT_TOPICS,
  RESULT_SCHEMA,
  TOPICS,
  type FrameMessage,
  type ModelAnnouncement,
  type ResultMessage,
} from '../../contracts/topics.js';
import { inferenceConfigSchema, type InferenceConfig } from './config.js';
import { ModelSlot } from './model-slot.js';
import { BoundedQueue } from './queue.js';
import { InferenceStats } from './telemetry.js';
import { InferenceMetrics, serveMetrics, type MetricsServer } from './metrics.js';
import { applyRoi, verdict } from './verdict.js';

/**
 * loupe.Inference: frames from `loupe/frames` → bounded queue → YOLOv8 detector → per-class
 * thresholds, class filter, ROI, verdict → `loupe/results` (IPC) and the thing's results topic
 * on IoT Core (QoS 1). The model comes from loupe.Model (recipe variables on start; later
 * versions by `loupe/model` announcements or a configuration change) and is hot-swapped.
 * Telemetry every `telemetryIntervalS` on `loupe/telemetry/inference` and IoT Core.
 */
async function start(ctx: ComponentContext<InferenceConfig>) {
  const { ipc, log } = ctx;
  let cfg = ctx.config;
  const runOptions = (c: InferenceConfig) => ({
    threads: c.threads,
    spinning: c.spinning,
    sessionThread: c.sessionThread,
    sessions: c.sessions,
  });
  const slot = new ModelSlot(log, runOptions(cfg));
  const stats = new InferenceStats();
  let modelError: string | undefined;

  const initialPath = cfg.model.path ?? process.env.LOUPE_MODEL_PATH;
  if (!initialPath) throw new Error('model.path: no model configured (set model.path or deploy loupe.Model)');
  await slot.load(initialPath, { name: cfg.model.name, version: cfg.model.version, sha256: cfg.model.sha256 });
  // Prometheus figures (off unless metrics.port is configured); probes read the queue when scraped.
  const metrics = new InferenceMetrics({ queueDepth: () => queue.depth, dropped: () => queue.dropped, duplicates: () => duplicates });
  metrics.serving(slot.ref);
  let metricsServer: MetricsServer | undefined;
  const startMetrics = async (c: InferenceConfig) => {
    await metricsServer?.close();
    metricsServer = undefined;
    if (c.metrics.port === undefined) return;
    metricsServer = await serveMetrics(metrics.registry, c.metrics.port, c.metrics.host);
    log.info({ url: metricsServer.url }, 'Prometheus metrics served');
  };

  const swapTo = async (a: { path: string; name: string; version: string; sha256?: string }, why: string) => {
    const cur = slot.ref;
    if (cur && a.sha256 && cur.sha256 === a.sha256.toLowerCase() && cur.version === a.version) {
      if (modelError) {
        modelError = undefined;
        await ipc.updateState('RUNNING').catch((e) => log.warn({ err: errorMessage(e) }, 'cannot report RUNNING to the nucleus'));
      }
      return;
    }
    try {
      await slot.load(a.path, a);
      metrics.serving(slot.ref);
      if (modelError) {
        modelError = undefined;
      }
      await ipc.updateState('RUNNING').catch((e) => log.warn({ err: errorMessage(e) }, 'cannot report RUNNING to the nucleus'));
      await ipc
        .publish(`${TOPICS.model}/status`, { ok: true, model: slot.ref as unknown as Record<string, unknown>, why })
        .catch((e) => log.debug({ err: errorMessage(e) }, 'model status not published'));
    } catch (e) {
      // Keep serving the old model; ERRORED makes a deployment that brought this model fail and roll back.
      modelError = errorMessage(e);
      log.error({ err: modelError, path: a.path, version: a.version, why }, 'new model refused; the previous model keeps serving');
      await ipc
        .publish(`${TOPICS.model}/status`, {
          ok: false,
          error: modelError,
          refused: { ...a },
          serving: slot.ref as unknown as Record<string, unknown>,
        })
        .catch((e) => log.debug({ err: errorMessage(e) }, 'model status not published'));
      await ipc.updateState('ERRORED').catch((e) => log.warn({ err: errorMessage(e) }, 'cannot report ERRORED to the nucleus'));
    }
  };

  // Frame ids seen lately: null while queued or in progress, then the result. The camera
  // re-announces frames it got no result for; a repeat is answered from here, not inferred again.
  const recent = new Map<string, ResultMessage | null>();
  const remember = (id: string, r: ResultMessage | null) => {
    recent.delete(id);
    recent.set(id, r);
    if (recent.size > 4096) recent.delete(recent.keys().next().value as string);
  };
  const queue = new BoundedQueue<FrameMessage>(cfg.queue.max, cfg.queue.dropPolicy, (dropped) => recent.delete(dropped.frameId));

  const handle = async (f: FrameMessage) => {
    const model = slot.acquire();
    const t0 = performance.now();
    let result: ResultMessage;
    try {
      // Decoded once: the detector and the uploader's de-duplication hashes use the same pixels.
      const img = await decodeImage(f.path);
      const hashes = imageHashes(img);
      const r = await model.detector.detect(img, {
        conf: cfg.conf,
        iou: cfg.iou,
        maxDet: cfg.maxDet,
        ...(cfg.classes ? { classes: cfg.classes } : {}),
        ...(Object.keys(cfg.classConf).length ? { classConf: cfg.classConf } : {}),
      });
      const inferMs = performance.now() - t0;
      const dets = applyRoi(r.detections, cfg.roi, r.width, r.height);
      const v = verdict(dets, cfg.verdict.rules);
      const latencyMs = Date.now() - Date.parse(f.time);
      result = {
        ...f,
        schema: RESULT_SCHEMA,
        width: r.width,
        height: r.height,
        verdict: v.verdict,
        reasons: v.reasons,
        detections: dets,
        model: model.ref,
        latencyMs,
        inferMs: +inferMs.toFixed(2),
        hashes,
      };
      stats.record(
        latencyMs,
        inferMs,
        dets.map((d) => d.name),
        v.verdict === 'fail',
      );
      metrics.frame(
        v.verdict,
        latencyMs,
        inferMs,
        dets.map((d) => d.name),
      );
    } catch (e) {
      // Corrupt or vanished image: counted, reported as an error result, and the service goes on.
      stats.error();
      metrics.frame('error', 0, 0, []);
      const exists = await stat(f.path).then(
        () => true,
        () => false,
      );
      result = {
        ...f,
        schema: RESULT_SCHEMA,
        width: 0,
        height: 0,
        verdict: 'error',
        reasons: [],
        detections: [],
        model: model.ref,
        latencyMs: Date.now() - Date.parse(f.time),
        inferMs: 0,
        error: exists ? errorMessage(e) : `frame file is gone: ${f.path}`,
      };
      log.warn({ frameId: f.frameId, err: result.error }, 'frame not inferred');
      const broken = model.detector.broken;
      if (broken) {
        // onnxruntime's thread died (as a crash in it would end the process): every later frame
        // would fail the same way, so end here; the nucleus restarts the component, and the camera
        // announces the unanswered frames again.
        log.fatal({ err: errorMessage(broken) }, 'the inference thread died; exiting for a restart');
        process.exit(70);
      }
    } finally {
      slot.release(model);
    }
    remember(f.frameId, result);
    await publishResult(result);
  };

  // IoT Core first: the camera forgets a frame once it is answered on IPC (by this result, or by the
  // uploader's answer to it), so a restart between the two publishes must not leave the IPC one
  // out alone. The other way round a frame may reach IoT Core twice (at least once, by frame id).
  const publishResult = async (result: ResultMessage) => {
    if (cfg.publishResultsToIoTCore) {
      await ipc
        .publishIoTCore(IOT_TOPICS.results(ctx.thingName), result as unknown as Record<string, unknown>)
        .catch((e) => log.warn({ err: errorMessage(e) }, 'result not published to IoT Core'));
    }
    await ipc
      .publish(TOPICS.results, result as unknown as Record<string, unknown>)
      .catch((e) => log.warn({ err: errorMessage(e) }, 'result not published on IPC'));
  };

  const workers: Promise<void>[] = [];
  const startWorkers = (n: number) => {
    for (let i = 0; i < n; i++)
      workers.push(
        (async () => {
          for (;;) {
            // After close() the queue still hands out what it holds: a stop drains it.
            const f = await queue.pop();
            if (!f) return;
            await handle(f).catch((e) => log.error({ err: errorMessage(e) }, 'frame handling failed'));
          }
        })(),
      );
  };
  // each session has a frame waiting as it finishes one (decoded and letterboxed meanwhile)
  const workerCount = (c: InferenceConfig) => Math.max(c.workers, c.sessions + 1);
  startWorkers(workerCount(cfg));

  let duplicates = 0;
  const unsubFrames = await ipc.subscribe(TOPICS.frames, (m) => {
    if (typeof m.path !== 'string' || typeof m.frameId !== 'string') return;
    if (recent.has(m.frameId)) {
      duplicates++;
      const done = recent.get(m.frameId);
      if (done) void publishResult(done);
      return;
    }
    remember(m.frameId, null);
    queue.push(m as unknown as FrameMessage);
  });
  const unsubModel = await ipc.subscribe(TOPICS.model, (m) => {
    const a = m as unknown as ModelAnnouncement;
    if (typeof a.path === 'string' && typeof a.sha256 === 'string') void swapTo(a, 'loupe/model announcement');
  });
  // Ask loupe.Model to announce itself: it may have started before we subscribed.
  await ipc
    .publish(TOPICS.modelQuery, {})
    .catch((e) => log.debug({ err: errorMessage(e) }, 'model query not published; loupe.Model announces on start anyway'));
  // Tell the cameras we listen now: frames announced while we were away are re-sent at once.
  await ipc
    .publish(TOPICS.inferenceReady, { model: slot.ref as unknown as Record<string, unknown> })
    .catch((e) => log.debug({ err: errorMessage(e) }, 'inference-ready not published; cameras re-announce unanswered frames anyway'));

  const publishTelemetry = async () => {
    const t = {
      component: 'inference',
      time: new Date().toISOString(),
      model: slot.ref,
      modelError,
      queueDepth: queue.depth,
      dropped: queue.dropped,
      duplicates,
      swaps: slot.swaps,
      sessions: slot.sessions,
      ...stats.snapshot(cfg.telemetryIntervalS),
    };
    await ipc
      .publish(TOPICS.telemetry('inference'), t as unknown as Record<string, unknown>)
      .catch((e) => log.debug({ err: errorMessage(e) }, 'telemetry not published; the next interval retries'));
    await ipc
      .publishIoTCore(IOT_TOPICS.telemetry(ctx.thingName), t as unknown as Record<string, unknown>)
      .catch((e) => log.debug({ err: errorMessage(e) }, 'telemetry not sent to IoT Core; the next interval retries'));
  };
  let timer = setInterval(() => void publishTelemetry(), cfg.telemetryIntervalS * 1000);
  await startMetrics(cfg);

  return {
    async reconfigure(next: InferenceConfig) {
      const prev = cfg;
      cfg = next;
      queue.resize(next.queue.max, next.queue.dropPolicy);
      if (workerCount(next) > workerCount(prev)) startWorkers(workerCount(next) - workerCount(prev));
      if (next.telemetryIntervalS !== prev.telemetryIntervalS) {
        clearInterval(timer);
        timer = setInterval(() => void publishTelemetry(), next.telemetryIntervalS * 1000);
      }
      if (next.metrics.port !== prev.metrics.port || next.metrics.host !== prev.metrics.host) await startMetrics(next);
      const m = next.model;
      const runChanged = JSON.stringify(runOptions(next)) !== JSON.stringify(runOptions(prev));
      slot.runOptions = runOptions(next);
      if (m.path && (m.path !== prev.model.path || m.sha256 !== prev.model.sha256 || m.version !== prev.model.version)) {
        await swapTo({ path: m.path, name: m.name, version: m.version, sha256: m.sha256 }, 'configuration change');
      } else if (runChanged && slot.serving) {
        // threads, sessions...: the serving model is loaded again with them, and hot-swapped like a new one
        const cur = slot.serving;
        await slot
          .load(cur.path, cur.ref, { reload: true })
          .then(() => metrics.serving(slot.ref))
          .catch((e) =>
            log.error(
              { err: errorMessage(e), runOptions: slot.runOptions },
              'model not reloaded with the new run options; the old session keeps serving',
            ),
          );
      }
    },
    async stop() {
      clearInterval(timer);
      await metricsServer?.close();
      await unsubFrames();
      await unsubModel();
      queue.close();
      await Promise.all(workers);
      await publishTelemetry();
      await slot.dispose();
    },
  };
}

await runComponent('loupe.Inference', inferenceConfigSchema, start, {
  // The recipe hands loupe.Model's artefact path and digest over as environment variables.
  configOverride: (raw) => {
    const r = (raw ?? {}) as Record<string, unknown>;
    const model = { ...((r.model as Record<string, unknown>) ?? {}) };
    // Without a configured path, the model is loupe.Model's (all four values from the recipe).
    if (!model.path && process.env.LOUPE_MODEL_PATH) {
      model.path = process.env.LOUPE_MODEL_PATH;
      if (process.env.LOUPE_MODEL_SHA256) model.sha256 = process.env.LOUPE_MODEL_SHA256;
      if (process.env.LOUPE_MODEL_VERSION) model.version = process.env.LOUPE_MODEL_VERSION;
      if (process.env.LOUPE_MODEL_NAME) model.name = process.env.LOUPE_MODEL_NAME;
    }
    return { ...r, model };
  },
});
