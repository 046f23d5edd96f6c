import { mkdtemp, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Logger } from 'pino';
import { LoupeError, errorMessage } from '../lib/errors.js';
import { writeFileAtomic } from '../lib/fsutil.js';
import { datasetDir } from '../lib/paths.js';
import { Progress } from '../lib/progress.js';
import type { ResultMessage } from '../contracts/topics.js';
import { startBroker } from '../embedded/broker/broker.js';
import { startObjectStoreProcess } from '../embedded/objectstore/process.js';
import { startEdgeStack, type EdgeStack } from '../embedded/stack/edge.js';
import { loopHome, parseLoopConfig, type LoopConfigInput } from '../cloud/loop/config.js';
import { runLoopOnce, stderrEvents } from '../cloud/loop/loop.js';
import type { LoopEvents, RunReport } from '../cloud/loop/runner.js';
import { STEP_NAMES } from '../cloud/loop/steps.js';
import { DEMO_HISTORY_UNTIL, cameraFolder, imagesFirstLabelledAfter } from '../cloud/loop/reference.js';

/**
 * `loupe demo`: the whole loop on one machine with the embedded defaults.
 *
 *  0. history  the label store starts with the reference's history as it stood at
 *              DEMO_HISTORY_UNTIL (its first two labelling jobs, 44 images); the camera shows the
 *              191 metal-tags photos labelled after that, so every upload is an image the label
 *              store has not seen. (The shipped model was trained on all 235, so it has seen
 *              them: the demo shows the loop's mechanics, not a model learning unseen parts.)
 *  1. stack    object store, MQTT broker, local nucleus with the loupe suite (loupe.Model with
 *              the shipped model, a folder camera over those photos, inference, uploader),
 *              exactly as `loupe edge up` deploys it;
 *  2. inspect  the device inspects frames and uploads the ones its policies select, until
 *              `uploads` images are in the bucket;
 *  3. the loop, run once (cloud/loop): ingest → simulated labelling (3 workers per image, noise
 *              and misses, ground truth = the whole reference labels.csv) → simulated
 *              verification → snapshot (the history + the newly approved uploads) → warm-start training from the champion's checkpoint →
 *              loupe's evaluator on the snapshot's test split → gate against the shipped model →
 *              registry → new loupe.Model component version → local deployment → the device's
 *              telemetry and results name the new model.
 * The camera keeps running throughout, so the switch is seen in the device's own results.
 * Ends with one JSON summary (DESIGN.md): frames inspected, defects found, images uploaded and
 * labelled, model before/after, whether the fleet runs the new version, seconds per stage.
 *
 * It lives in cli/ because it composes every part (embedded stack, edge components, cloud loop):
 * cli/ is the one folder the dependency rules (test/architecture) let import all of them.
 */
export interface DemoOptions {
  fast: boolean;
  /** Keep everything here (default: a temp folder, removed at the end unless `keep`). */
  home?: string;
  keep?: boolean;
  log: Logger;
  events?: LoopEvents;
  progressStream?: NodeJS.WriteStream;
  signal?: AbortSignal;
  /** Overrides for the sizes `fast` picks. */
  uploads?: number;
  epochs?: number;
  fps?: number;
}

export interface DemoSummary {
  demo: 'loupe';
  fast: boolean;
  ok: boolean;
  framesInspected: number;
  inferred: number;
  defectsFound: number;
  imagesUploaded: number;
  imagesLabelled: number;
  labelsApproved: number;
  labelsRejected: number;
  snapshot: { id: string; images: number; train: number; val: number; test: number } | null;
  modelBefore: { ref: string; componentVersion: string; sha256: string };
  modelAfter: { ref: string; componentVersion: string; sha256: string; status: string } | null;
  gate: { passed: boolean; metric: string; challenger: number; champion: number | null; report: string } | null;
  fleetRunsNewVersion: boolean;
  resultsWithNewModel: number;
  halt: string | null;
  error: string | null;
  run: number | null;
  seconds: Record<string, number>;
  home: string | null;
}

const r3 = (x: number) => +x.toFixed(1);

export async function runDemo(o: DemoOptions): Promise<DemoSummary> {
  const t0 = performance.now();
  const seconds: Record<string, number> = {};
  const log = o.log;
  const ownHome = !o.home;
  const homeDir = o.home ? resolve(o.home) : await mkdtemp(join(tmpdir(), 'loupe-demo-'));
  const home = loopHome(homeDir);
  const metal = datasetDir('metal-tags');
  if (!existsSync(join(metal, 'labels.csv'))) throw new LoupeError('DEMO_NO_DATA', 'the shipped metal-tags data set is missing (an incomplete checkout?)', { input: metal });
  const uploadsWanted = o.uploads ?? (o.fast ? 12 : 40);
  // Full size: a time budget rather than a fixed epoch count, so the demo fits its 15 minutes on
  // a slow or busy machine (ultralytics fits as many epochs as the budget allows, keeps the best).
  const epochs = o.epochs ?? (o.fast ? 1 : 30);
  const trainMinutes = o.fast || o.epochs ? undefined : 7;
  const fps = o.fps ?? (o.fast ? 3 : 2);
  let stack: EdgeStack | undefined;
  const stops: (() => Promise<unknown>)[] = [];
  const summary: DemoSummary = {
    demo: 'loupe',
    fast: o.fast,
    ok: false,
    framesInspected: 0,
    inferred: 0,
    defectsFound: 0,
    imagesUploaded: 0,
    imagesLabelled: 0,
    labelsApproved: 0,
    labelsRejected: 0,
    snapshot: null,
    modelBefore: { ref: 'metal-tags:1', componentVersion: '1.0.0', sha256: '' },
    modelAfter: null,
    gate: null,
    fleetRunsNewVersion: false,
    resultsWithNewModel: 0,
    halt: null,
    error: null,
    run: null,
    seconds,
    home: ownHome && !o.keep ? null : homeDir,
  };
  try {
    // 0. the history as of DEMO_HISTORY_UNTIL; the camera shows what was labelled after it
    let t = performance.now();
    const until = Date.parse(DEMO_HISTORY_UNTIL) / 1000;
    const camera = await cameraFolder(imagesFirstLabelledAfter(join(metal, 'labels.csv'), metal, until), join(homeDir, 'camera'));

    // 1. the embedded stack and the edge suite
    const objectStore = await startObjectStoreProcess({ dir: join(homeDir, 's3'), buckets: ['loupe'], log: log.child({ module: 'objectstore' }) });
    stops.push(() => objectStore.stop());
    const broker = await startBroker({ logger: log.child({ module: 'broker' }) });
    stops.push(() => broker.stop());
    stack = await startEdgeStack({
      root: join(homeDir, 'edge'),
      thingName: 'loupe-demo-1',
      bucket: 'loupe',
      objectStore,
      broker,
      source: { type: 'folder', path: camera, mode: 'loop' },
      fps,
      modelVersion: '1.0.0',
      log: log.child({ module: 'edge' }),
    });
    stops.unshift(() => stack!.stop());
    seconds.stack = r3((performance.now() - t) / 1000);
    const shippedSha = String(stack.nucleus.configuration('loupe.Model')?.sha256 ?? '');
    summary.modelBefore = { ref: 'metal-tags:1', componentVersion: stack.modelVersion, sha256: shippedSha };
    log.info({ root: stack.root, thing: stack.thingName, seconds: seconds.stack }, 'demo: edge stack running');

    // 2. the device inspects and uploads
    t = performance.now();
    const p = new Progress('inspect+upload', uploadsWanted, log, { stream: o.progressStream, logEveryMs: 5000 });
    const inspectLimitMs = (o.fast ? 120 : 300) * 1000;
    let uploaded = 0;
    while (uploaded < uploadsWanted) {
      if (performance.now() - t > inspectLimitMs) throw new LoupeError('DEMO_NO_UPLOADS', `only ${uploaded} of ${uploadsWanted} images uploaded after ${inspectLimitMs / 1000} s`, { input: 'loupe.Uploader' });
      if (o.signal?.aborted) throw new LoupeError('DEMO_INTERRUPTED', 'interrupted', { input: 'demo' });
      await new Promise((r) => setTimeout(r, 1000));
      uploaded = (await stack.listUploads()).filter((k) => k.endsWith('.jpg')).length;
      const c = stack.counts();
      p.update(Math.min(uploaded, uploadsWanted), { frames: c.frames, inferred: c.inferred, defects: c.defects });
    }
    p.finish();
    seconds.inspect = r3((performance.now() - t) / 1000);

    // 3. the loop
    const config = parseLoopConfig(
      {
        group: 'metal-tags',
        classes: ['scratch'],
        storage: { endpoint: objectStore.endpoint, region: objectStore.region, bucket: 'loupe', prefix: 'incoming/', forcePathStyle: true, keysFile: objectStore.keysFile },
        history: { labelsCsv: join(metal, 'labels.csv'), imagesDir: metal, until: DEMO_HISTORY_UNTIL },
        labeling: { backend: 'simulated', workersPerImage: 3, cap: uploadsWanted, noise: 0.03, missRate: 0.05, falsePositiveRate: 0.05, seed: 7 },
        train: { epochs, ...(trainMinutes ? { timeMinutes: trainMinutes } : {}), imgsz: 480, batch: 16, patience: 50, seed: 0, workers: 2, device: 'cpu' },
        gate: { metric: 'map50', threshold: 0.5, tolerance: 0.02, split: 'test' },
        fleet: { backend: 'local', nucleusRoot: stack.nucleus.root, thingName: stack.thingName, mqttUrl: broker.url, minResults: 1, confirmTimeoutSeconds: 180, deployTimeoutSeconds: 300 },
      } satisfies LoopConfigInput,
      'demo configuration',
    );
    await writeFileAtomic(home.config, JSON.stringify(config, null, 2) + '\n');
    const newModelResults = new Map<string, number>();
    stack.on('result', (r: ResultMessage) => newModelResults.set(r.model.sha256, (newModelResults.get(r.model.sha256) ?? 0) + 1));
    let report: RunReport;
    t = performance.now();
    try {
      report = await runLoopOnce({ config, home, trigger: 'demo', log, events: o.events ?? stderrEvents(), progressStream: o.progressStream, signal: o.signal });
    } catch (e) {
      summary.error = errorMessage(e);
      const { LoopStore } = await import('../cloud/loop/store.js');
      const { buildReport } = await import('../cloud/loop/runner.js');
      const store = new LoopStore(home.loopDb);
      const last = store.latestRun();
      report = last ? buildReport(store, last.id, [...STEP_NAMES], false) : ({ steps: [], outputs: {} } as unknown as RunReport);
      store.close();
    }
    seconds.loop = r3((performance.now() - t) / 1000);
    for (const s of report.steps) if (s.seconds !== null) seconds[s.name] = r3(s.seconds);
    summary.run = report.run ?? null;
    summary.halt = report.halt ?? null;
    const out = report.outputs;
    const lab = out.label as { items?: number } | undefined;
    const ver = out.verify as { approved?: number; rejected?: number } | undefined;
    summary.imagesLabelled = lab?.items ?? 0;
    summary.labelsApproved = ver?.approved ?? 0;
    summary.labelsRejected = ver?.rejected ?? 0;
    const snap = out.snapshot as { id: string; counts: { images: number; train: number; val: number; test: number } } | undefined;
    if (snap) summary.snapshot = { id: snap.id, images: snap.counts.images, train: snap.counts.train, val: snap.counts.val, test: snap.counts.test };
    const g = out.gate as { passed: boolean; html: string; summary: { metric: string; challenger: number; champion: number | null } } | undefined;
    if (g) summary.gate = { passed: g.passed, metric: g.summary.metric, challenger: g.summary.challenger, champion: g.summary.champion, report: g.html };
    const reg = out.register as { ref: string; status: string; onnxSha256: string } | undefined;
    const pub = out.publish as { version: string } | undefined;
    if (reg) summary.modelAfter = { ref: reg.ref, componentVersion: pub?.version ?? '-', sha256: reg.onnxSha256, status: reg.status };
    if (reg && out.confirm) {
      // A few more seconds of inspection on the new model, as the plant would see it.
      await new Promise((r) => setTimeout(r, 3000));
      summary.resultsWithNewModel = newModelResults.get(reg.onnxSha256) ?? 0;
      const running = stack.nucleus.status().components.find((c) => c.name === 'loupe.Model');
      summary.fleetRunsNewVersion = running?.version === pub?.version && summary.resultsWithNewModel > 0;
    }
    const c = await stack.summary();
    summary.framesInspected = c.frames;
    summary.inferred = c.inferred;
    summary.defectsFound = c.defects;
    summary.imagesUploaded = c.uploaded;
    summary.ok = report.status === 'succeeded' && summary.fleetRunsNewVersion;
  } catch (e) {
    summary.error = errorMessage(e);
    log.error({ err: summary.error }, 'demo failed');
  } finally {
    for (const s of stops) await s().catch((e) => log.warn({ err: errorMessage(e) }, 'demo: stopping a part failed'));
    if (ownHome && !o.keep) await rm(homeDir, { recursive: true, force: true });
    seconds.total = r3((performance.now() - t0) / 1000);
  }
  return summary;
}
