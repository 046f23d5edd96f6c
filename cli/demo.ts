import { mkdtemp, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import type { Logger } from 'pino';
import { LoupeError, errorMessage } from '../lib/errors.js';
import { writeFileAtomic } from '../lib/fsutil.js';
import { datasetDir, projectRoot } from '../lib/paths.js';
import { Progress } from '../lib/progress.js';
import type { ResultMessage } from '../contracts/topics.js';
import { startBroker } from '../embedded/broker/broker.js';
import { startObjectStoreProcess } from '../embedded/objectstore/process.js';
import { startEdgeStack, type EdgeStack } from '../embedded/stack/edge.js';
import { loopHome, parseLoopConfig, type LoopConfigInput } from '../cloud/loop/config.js';
import { runLoopOnce, stderrEvents } from '../cloud/loop/loop.js';
import type { LoopEvents, RunReport } from '../cloud/loop/runner.js';
import { STEP_NAMES } from '../cloud/loop/steps.js';
import {
  BENCHMARK_CARD,
  DEMO_CHAMPION_DIR,
  DEMO_HISTORY_UNTIL,
  DEMO_UPLOADER,
  benchmarkImageIds,
  cameraFolder,
  imagesFirstLabelledAfter,
} from '../cloud/loop/reference.js';
import { scoreOnBenchmark, writeBenchmarkSet } from '../cloud/loop/benchmark.js';

/**
 * `loupe demo`: the whole loop on one machine with the embedded defaults, replaying the
 * reference solution's history in time, with a held-out benchmark set to show what it gains.
 *
 *  0. history  the label store starts with the reference's history as it stood at
 *              DEMO_HISTORY_UNTIL (its first two labelling jobs) minus the benchmark set (the
 *              shipped model's 35 test images): 37 images. The starting champion
 *              (models/metal-tags-early) was trained on exactly those. The camera shows the 163
 *              photos labelled after that time, minus the benchmark set: parts no model has seen.
 *  1. stack    object store, MQTT broker, local nucleus with the loupe suite (loupe.Model with
 *              the starting champion, a folder camera over those photos, inference, uploader),
 *              exactly as `loupe edge up` deploys it;
 *  2. inspect  the device inspects frames and uploads the ones its policies select. The demo
 *              commissions a new line: every part goes to labelling once (policies failed,
 *              uncertain, and a `commissioning` random share of 1 for passing parts; a labelling
 *              budget of 600 a minute; de-duplication `exact`, because these tags look alike to a
 *              perceptual hash: dHash calls 98 of the 163 distinct photos duplicates). Until every
 *              photo is uploaded (full: 163, `--fast`: 12);
 *  3. the loop, run once (cloud/loop): ingest → simulated labelling (3 workers per image, noise
 *              and misses, ground truth = the whole reference labels.csv) → simulated
 *              verification → snapshot (the history + the newly approved uploads) → warm-start
 *              training from the champion's checkpoint → loupe's evaluator on the snapshot's
 *              gate split → gate → registry → new loupe.Model component version → local
 *              deployment → the device's telemetry and results name the new model;
 *  4. benchmark  loupe's evaluator scores the champion and the challenger on the benchmark set.
 * The camera keeps running throughout, so the switch is seen in the device's own results.
 * Ends with one JSON summary (DESIGN.md): frames inspected, defects found, images uploaded and
 * labelled, model before/after, whether the fleet runs the new version, seconds per stage, and
 * the gate's and the benchmark's numbers.
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
  /** Seed of the simulated labelling noise and of training (default 1). */
  seed?: number;
}

/** loupe's evaluator on the held-out benchmark set; gain = challenger - champion. */
export interface DemoBenchmark {
  images: number;
  instances: number;
  source: string;
  champion: { ref: string; map50: number; map50_95: number } | null;
  challenger: { map50: number; map50_95: number } | null;
  gain: { map50: number; map50_95: number } | null;
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
  modelBefore: { ref: string; componentVersion: string; sha256: string; source: string };
  modelAfter: { ref: string; componentVersion: string; sha256: string; status: string } | null;
  /** The gate on the snapshot's own split (`images` of it); its metric for challenger and champion. */
  gate: {
    passed: boolean;
    metric: string;
    challenger: number;
    champion: number | null;
    report: string;
    split: string;
    images: number;
  } | null;
  benchmark: DemoBenchmark | null;
  seed: number;
  fleetRunsNewVersion: boolean;
  resultsWithNewModel: number;
  halt: string | null;
  error: string | null;
  run: number | null;
  seconds: Record<string, number>;
  home: string | null;
}

const r3 = (x: number) => +x.toFixed(1);
const r4 = (x: number) => +x.toFixed(4);

export async function runDemo(o: DemoOptions): Promise<DemoSummary> {
  const t0 = performance.now();
  const seconds: Record<string, number> = {};
  const log = o.log;
  const ownHome = !o.home;
  const homeDir = o.home ? resolve(o.home) : await mkdtemp(join(tmpdir(), 'loupe-demo-'));
  const home = loopHome(homeDir);
  const metal = datasetDir('metal-tags');
  if (!existsSync(join(metal, 'labels.csv')))
    throw new LoupeError('DEMO_NO_DATA', 'the shipped metal-tags data set is missing (an incomplete checkout?)', { input: metal });
  if (!existsSync(join(DEMO_CHAMPION_DIR, 'model.onnx')))
    throw new LoupeError('DEMO_NO_CHAMPION', 'the starting champion is missing (model.onnx)', { input: DEMO_CHAMPION_DIR });
  const seed = o.seed ?? 1;
  const benchmarkIds = benchmarkImageIds();
  const until = Date.parse(DEMO_HISTORY_UNTIL) / 1000;
  const photos = imagesFirstLabelledAfter(join(metal, 'labels.csv'), metal, until, benchmarkIds);
  // Full: every new part reaches labelling once. Fast: a dozen.
  const uploadsWanted = Math.min(o.uploads ?? (o.fast ? 12 : photos.length), photos.length);
  // Full size: a time budget as well as an epoch count, so the demo fits its 15 minutes on a slow
  // or busy machine (ultralytics fits as many epochs as the budget allows, keeps the best).
  const epochs = o.epochs ?? (o.fast ? 1 : 30);
  const trainMinutes = o.fast || o.epochs ? undefined : 9;
  const fps = o.fps ?? (o.fast ? 3 : 2);
  // Fast: 12 uploads leave the snapshot's test split empty one time in seven (0.85^12), and the
  // history has no test images (they are the benchmark set), so the CI-sized gate compares on
  // the val split (the history's 7 val images + the uploads'). Full: the test split (~25 uploads).
  const gateSplit = o.fast ? 'val' : 'test';
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
    modelBefore: { ref: 'metal-tags:1', componentVersion: '1.0.0', sha256: '', source: relative(projectRoot, DEMO_CHAMPION_DIR) },
    modelAfter: null,
    gate: null,
    benchmark: null,
    seed,
    fleetRunsNewVersion: false,
    resultsWithNewModel: 0,
    halt: null,
    error: null,
    run: null,
    seconds,
    home: ownHome && !o.keep ? null : homeDir,
  };
  try {
    // 0. the history as of DEMO_HISTORY_UNTIL; the camera shows what was labelled after it; the benchmark set stays apart
    let t = performance.now();
    const camera = await cameraFolder(photos, join(homeDir, 'camera'));
    const bench = await writeBenchmarkSet({
      labelsCsv: join(metal, 'labels.csv'),
      imagesDir: metal,
      ids: benchmarkIds,
      outDir: join(homeDir, 'benchmark'),
    });

    // 1. the embedded stack and the edge suite
    const objectStore = await startObjectStoreProcess({
      dir: join(homeDir, 's3'),
      buckets: ['loupe'],
      log: log.child({ module: 'objectstore' }),
    });
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
      modelDir: DEMO_CHAMPION_DIR,
      modelVersion: '1.0.0',
      config: { uploader: DEMO_UPLOADER },
      log: log.child({ module: 'edge' }),
    });
    stops.unshift(() => stack!.stop());
    seconds.stack = r3((performance.now() - t) / 1000);
    const shippedSha = String(stack.nucleus.configuration('loupe.Model')?.sha256 ?? '');
    summary.modelBefore = { ...summary.modelBefore, componentVersion: stack.modelVersion, sha256: shippedSha };
    log.info({ root: stack.root, thing: stack.thingName, seconds: seconds.stack }, 'demo: edge stack running');

    // 2. the device inspects and uploads, until the parts wanted are in the bucket, or the camera
    // went round the folder and nothing new came for a while (a frame the device dropped under
    // load comes round again in the next pass), or the time is up.
    t = performance.now();
    const p = new Progress('inspect+upload', uploadsWanted, log, { stream: o.progressStream, logEveryMs: 5000 });
    const inspectLimitMs = (o.fast ? 120 : 300) * 1000;
    let uploaded = 0;
    let lastNew = performance.now();
    for (;;) {
      if (o.signal?.aborted) throw new LoupeError('DEMO_INTERRUPTED', 'interrupted', { input: 'demo' });
      await new Promise((r) => setTimeout(r, 1000));
      const now = (await stack.listUploads()).filter((k) => k.endsWith('.jpg')).length;
      if (now > uploaded) lastNew = performance.now();
      uploaded = now;
      const c = stack.counts();
      p.update(Math.min(uploaded, uploadsWanted), { frames: c.frames, inferred: c.inferred, defects: c.defects });
      if (uploaded >= uploadsWanted) break;
      const quiet = c.frames >= 2 * photos.length && performance.now() - lastNew > 20_000;
      if (quiet || performance.now() - t > inspectLimitMs) {
        if (uploaded === 0)
          throw new LoupeError('DEMO_NO_UPLOADS', `no image uploaded after ${r3((performance.now() - t) / 1000)} s`, {
            input: 'loupe.Uploader',
          });
        log.warn({ uploaded, wanted: uploadsWanted, frames: c.frames }, 'demo: going on with the uploads there are');
        break;
      }
    }
    p.finish();
    seconds.inspect = r3((performance.now() - t) / 1000);

    // 3. the loop
    const config = parseLoopConfig(
      {
        group: 'metal-tags',
        classes: ['scratch'],
        storage: {
          endpoint: objectStore.endpoint,
          region: objectStore.region,
          bucket: 'loupe',
          prefix: 'incoming/',
          forcePathStyle: true,
          keysFile: objectStore.keysFile,
        },
        history: { labelsCsv: join(metal, 'labels.csv'), imagesDir: metal, until: DEMO_HISTORY_UNTIL, exclude: BENCHMARK_CARD },
        seedModel: DEMO_CHAMPION_DIR,
        labeling: {
          backend: 'simulated',
          workersPerImage: 3,
          cap: uploadsWanted,
          noise: 0.03,
          missRate: 0.05,
          falsePositiveRate: 0.05,
          seed,
        },
        train: {
          epochs,
          ...(trainMinutes ? { timeMinutes: trainMinutes } : {}),
          imgsz: 480,
          batch: 16,
          patience: 50,
          seed,
          workers: 2,
          device: 'cpu',
        },
        // No absolute floor: the starting champion scores about 0.15-0.26 mAP50, and the demo's
        // question is whether the challenger beats what the fleet runs (a plant sets its own floor).
        // Measured: a 0.5 floor rejected a challenger 0.13 better on the gate split (+0.16 on the benchmark set).
        gate: { metric: 'map50', threshold: 0, tolerance: 0.02, split: gateSplit },
        fleet: {
          backend: 'local',
          nucleusRoot: stack.nucleus.root,
          thingName: stack.thingName,
          mqttUrl: broker.url,
          minResults: 1,
          confirmTimeoutSeconds: 180,
          deployTimeoutSeconds: 300,
        },
      } satisfies LoopConfigInput,
      'demo configuration',
    );
    await writeFileAtomic(home.config, JSON.stringify(config, null, 2) + '\n');
    const newModelResults = new Map<string, number>();
    stack.on('result', (r: ResultMessage) => newModelResults.set(r.model.sha256, (newModelResults.get(r.model.sha256) ?? 0) + 1));
    let report: RunReport;
    t = performance.now();
    try {
      report = await runLoopOnce({
        config,
        home,
        trigger: 'demo',
        log,
        events: o.events ?? stderrEvents(),
        progressStream: o.progressStream,
        signal: o.signal,
      });
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
    if (snap)
      summary.snapshot = {
        id: snap.id,
        images: snap.counts.images,
        train: snap.counts.train,
        val: snap.counts.val,
        test: snap.counts.test,
      };
    const g = out.gate as
      { passed: boolean; html: string; summary: { metric: string; challenger: number; champion: number | null } } | undefined;
    const ev = out.evaluate as { challenger?: { images?: number } } | undefined;
    if (g)
      summary.gate = {
        passed: g.passed,
        metric: g.summary.metric,
        challenger: g.summary.challenger,
        champion: g.summary.champion,
        report: g.html,
        split: gateSplit,
        images: ev?.challenger?.images ?? 0,
      };
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
    // 4. the benchmark set: the champion always, the challenger when training produced one
    t = performance.now();
    const tr = out.train as { onnx?: string } | undefined;
    const champ = await scoreOnBenchmark(bench.dataYaml, join(DEMO_CHAMPION_DIR, 'model.onnx'));
    const chall = tr?.onnx ? await scoreOnBenchmark(bench.dataYaml, tr.onnx) : null;
    summary.benchmark = {
      images: champ.images,
      instances: champ.instances,
      source: `${relative(projectRoot, BENCHMARK_CARD)} dataset.testImages`,
      champion: { ref: summary.modelBefore.ref, map50: r4(champ.map50), map50_95: r4(champ.map50_95) },
      challenger: chall ? { map50: r4(chall.map50), map50_95: r4(chall.map50_95) } : null,
      gain: chall ? { map50: r4(chall.map50 - champ.map50), map50_95: r4(chall.map50_95 - champ.map50_95) } : null,
    };
    seconds.benchmark = r3((performance.now() - t) / 1000);
    log.info({ benchmark: summary.benchmark }, 'demo: benchmark set scored');
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
