import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { LoupeError } from '../../lib/errors.js';
import { sha256File, writeFileAtomic } from '../../lib/fsutil.js';
import { Progress } from '../../lib/progress.js';
import { gateSummary, writeGateReport } from '../gate/gate.js';
import { decideGate } from '../gate/decide.js';
import type { GateReport, ModelScore } from '../gate/report.js';
import { choosePrecision } from '../gate/precision.js';
import { deployedArtefact } from '../registry/types.js';
import { int8CardFields, int8Metrics, quantizeChallenger } from '../quantize/challenger.js';
import { ingestIncoming } from '../ingest/index.js';
import { createSnapshot } from '../snapshot/index.js';
import type { TrainMetricsFile } from '../training/options.js';
import { cardForRun } from '../training/card.js';
import { writeModelCard } from '../../contracts/model-card.js';
import { deployModel, publishModel } from '../publish/publish.js';
import { FleetTelemetry } from '../publish/telemetry.js';
import type { LoopConfig } from './config.js';
import { STEP_NAMES, STEP_OUTPUTS, type StepName, type StepOutputs } from './outputs.js';
import type { Hooks, LabelingHooks, LoopPorts, StepPorts } from './ports.js';
import { done, halted, type LoopStep, type StepOutcome } from './runner.js';

export { STEP_NAMES, type StepName } from './outputs.js';
export { killOrphanTrainers } from './adapters/training-local.js';

/**
 * The loop's steps, in order: ingest → label → verify → snapshot → train → quantize → evaluate →
 * gate → register → publish → deploy → confirm.
 *
 * Each step is a plain function of (typed input, ports) -> typed outcome (`StepDef.run`): the input
 * is the run (id, attempt, folder), the loop configuration and the outputs of the earlier steps it
 * declares in `needs` (each checked against its schema in outputs.ts); the ports (ports.ts) are
 * the backends, chosen once from the configuration. The local runner calls them through
 * `loopSteps`; a Lambda or processing-job handler calls `step.run(stepInput(step, event), ports)`.
 *
 * Each is idempotent for its run (see runner.ts): what it creates is named after the run
 * (labelling job `loop-<run>`, training folder `runs/<run>/train`, registry key
 * `loop:<run>:<onnx sha>`, deployment `loupe-run-<run>`) or is content-addressed (snapshots), and
 * it looks for an earlier attempt's result first. On AWS the same holds for what the control
 * plane keeps: the Ground Truth jobs and the SageMaker training job are named after the run
 * (aws/clients.ts awsJobNames) and asked for before they are created; Feature Store and the
 * SageMaker Model Registry are mirrors with their own watermark and intent rows
 * (aws/featurestore-mirror.ts, aws/registry-mirror.ts).
 *
 * Halts (the run ends without error): the snapshot holds nothing the champion was not trained
 * on; the gate rejected the challenger (registered as rejected, the fleet untouched); the
 * policy wants a person to approve; the deployment failed and the nucleus rolled back.
 */
export interface StepInput<Needs extends StepName> {
  runId: number;
  attempt: number;
  /** `<runs>/<run>`: files the run keeps (training folder, evaluation, gate report). */
  runDir: string;
  config: LoopConfig;
  /** Outputs of the earlier steps this step declared in `needs`. */
  prior: { [K in Needs]: StepOutputs[K] };
}

export interface StepDef<N extends StepName, Needs extends StepName> {
  name: N;
  title: string;
  needs: readonly Needs[];
  output: (typeof STEP_OUTPUTS)[N];
  run(input: StepInput<Needs>, ports: StepPorts): Promise<StepOutcome<StepOutputs[N]>>;
}

function defineStep<N extends StepName, Needs extends StepName>(d: Omit<StepDef<N, Needs>, 'output'>): StepDef<N, Needs> {
  return { ...d, output: STEP_OUTPUTS[d.name] };
}

/** The schema of a step's `prior` (what a handler outside this process gets in its event). */
export function priorSchema<N extends StepName, Needs extends StepName>(step: StepDef<N, Needs>) {
  return z.object(Object.fromEntries(step.needs.map((n) => [n, STEP_OUTPUTS[n]])) as { [K in Needs]: (typeof STEP_OUTPUTS)[K] });
}

/** A step's ports with the hooks of one call; `fleet` stays lazy (it opens the fleet on first use). */
export function stepPorts(p: LoopPorts, h: Hooks): StepPorts {
  return {
    storage: p.storage,
    labels: p.labels,
    labeling: p.labeling,
    training: p.training,
    registry: p.registry,
    get fleet() {
      return p.fleet;
    },
    evaluate: p.evaluate,
    paths: p.paths,
    ...h,
  };
}

const labelingHooks = (ports: StepPorts): LabelingHooks => ({
  log: ports.log,
  signal: ports.signal,
  progressStream: ports.progressStream,
  mirror: async () => {
    const r = ports.labels.mirror ? await ports.labels.mirror.sync(ports.log) : null;
    return r ? { featureStore: r } : {};
  },
});

export const ingestStep = defineStep({
  name: 'ingest',
  title: 'ingest new uploads',
  needs: [],
  async run(_input, p) {
    const r = await ingestIncoming({
      s3: p.storage.s3,
      bucket: p.storage.bucket,
      prefix: p.storage.prefix,
      store: p.labels.store,
      statePath: p.paths.ingestState,
      log: p.log,
    });
    return done({
      listed: r.listed,
      recorded: r.recorded,
      alreadyKnown: r.alreadyKnown,
      incomplete: r.incomplete,
      invalid: r.invalid.length,
      watermark: r.watermark,
      ...(await labelingHooks(p).mirror()),
    });
  },
});

export const labelStep = defineStep({
  name: 'label',
  title: 'label (workers per image, consolidated)',
  needs: [],
  async run({ runId, config: cfg }, p) {
    const name = p.labeling.jobName(runId);
    const jobs = p.labeling.jobs;
    const job =
      jobs.listJobs().find((j) => j.name === name) ??
      (await jobs.createJob({
        name,
        classes: cfg.classes,
        workersPerImage: cfg.labeling.workersPerImage,
        cap: cfg.labeling.cap,
        instructions: 'Box every scratch on the tag; leave the box empty when there is none.',
        backend: p.labeling.backend === 'groundtruth' ? 'groundtruth' : 'local',
      }));
    if (job.counts.items === 0) return done({ job: name, items: 0, submitted: 0 });
    return p.labeling.label(name, labelingHooks(p));
  },
});

export const verifyStep = defineStep({
  name: 'verify',
  title: 'verify labels',
  needs: [],
  async run({ runId }, p) {
    const name = p.labeling.jobName(runId);
    if (p.labeling.jobs.getJob(name).counts.items === 0)
      return done({ job: name, approved: 0, rejected: 0, verifiedAt: Date.now() / 1000 });
    return p.labeling.verify(name, labelingHooks(p));
  },
});

export const snapshotStep = defineStep({
  name: 'snapshot',
  title: 'data set snapshot',
  needs: ['verify'],
  async run({ config: cfg, prior }, p) {
    const asOf = Number(prior.verify.verifiedAt ?? Date.now() / 1000);
    const snap = await createSnapshot({
      store: p.labels.store,
      images: p.storage.images,
      classes: cfg.classes,
      asOf,
      outDir: p.paths.snapshotsDir,
      log: p.log,
    });
    const champ = await p.registry.champion(cfg.group);
    const m = snap.manifest;
    const output = {
      id: snap.id,
      dir: snap.dir,
      dataYaml: snap.dataYaml,
      datasetVersion: m.datasetVersion,
      asOf,
      counts: m.counts,
      champion: champ.ref,
      championDataset: champ.datasetVersion,
    };
    if (champ.datasetVersion === m.datasetVersion && !cfg.trigger.trainWithoutNewLabels) {
      return halted(output, `no new approved labels: snapshot ${snap.id} is the data set ${champ.ref} was trained on`);
    }
    return done(output);
  },
});

export const trainStep = defineStep({
  name: 'train',
  title: 'train (warm start from the champion)',
  needs: ['snapshot'],
  async run({ runId, runDir, config: cfg, prior }, p) {
    const champ = await p.registry.champion(cfg.group);
    const dir = join(runDir, 'train');
    const base = await p.registry.registry.artefactPath(champ, 'pt');
    const t = cfg.train;
    const options = {
      data: prior.snapshot.dataYaml,
      base,
      epochs: t.epochs,
      imgsz: t.imgsz,
      batch: t.batch,
      patience: t.patience,
      seed: t.seed,
      timeMinutes: t.timeMinutes,
      workers: t.workers,
    };
    const { result, extra } = await p.training.train({ runId, dir, options }, p);
    const m = result.metrics;
    return done({
      dir,
      backend: p.training.backend,
      onnx: result.onnx,
      pt: result.bestPt,
      base: champ.ref,
      epochs: m.epochs_run,
      seconds: m.seconds,
      val: m.val,
      ...extra,
    });
  },
});

export const quantizeStep = defineStep({
  name: 'quantize',
  title: 'quantize the challenger to int8',
  needs: ['train', 'snapshot'],
  async run({ config: cfg, prior }, p) {
    const tr = prior.train;
    return done(
      await quantizeChallenger({
        onnx: tr.onnx,
        dataYaml: prior.snapshot.dataYaml,
        dir: tr.dir,
        config: cfg.int8,
        log: p.log,
        progressStream: p.progressStream,
      }),
    );
  },
});

export const evaluateStep = defineStep({
  name: 'evaluate',
  title: 'evaluate challenger (fp32, int8) and champion',
  needs: ['snapshot', 'train', 'quantize'],
  async run({ runId, runDir, config: cfg, prior }, p) {
    const { snapshot: snap, train: tr, quantize: q } = prior;
    const champ = await p.registry.champion(cfg.group);
    const split = cfg.gate.split;
    const score = async (ref: string | null, model: string): Promise<ModelScore> => {
      const t0 = performance.now();
      const { summary, curves } = await p.evaluate(model, snap.dataYaml, split);
      return { ref, model, eval: summary, curves, seconds: (performance.now() - t0) / 1000 };
    };
    const pr = new Progress('evaluate', q.onnx ? 3 : 2, p.log, { logEveryMs: 0 });
    const challenger = await score(null, tr.onnx);
    pr.update(1, { challenger: challenger.eval[cfg.gate.metric] });
    const challengerInt8 = q.onnx ? await score(null, q.onnx) : null;
    if (challengerInt8) pr.update(2, { challengerInt8: challengerInt8.eval[cfg.gate.metric] });
    // The champion as the fleet runs it (its fp32 or int8 file).
    const champOnnx = await p.registry.registry.artefactPath(champ, deployedArtefact(champ).kind);
    const championScore = await score(champ.ref, champOnnx);
    pr.finish({ champion: championScore.eval[cfg.gate.metric] });
    const choice = choosePrecision(
      cfg.int8,
      challenger.eval[cfg.int8.metric],
      challengerInt8 ? challengerInt8.eval[cfg.int8.metric] : null,
    );
    const file = join(runDir, 'evaluation.json');
    await writeFileAtomic(file, JSON.stringify({ challenger, challengerInt8, champion: championScore }) + '\n');
    // The challenger's card: trainer numbers + loupe's test numbers on the snapshot.
    const metrics = JSON.parse(readFileSync(join(tr.dir, 'metrics.json'), 'utf8')) as TrainMetricsFile;
    const test = {
      ...pick(challenger.eval),
      evaluator: 'loupe eval',
      split,
      images: challenger.eval.images,
      instances: challenger.eval.instances,
    };
    const card = await cardForRun({
      dir: tr.dir,
      onnx: tr.onnx,
      pt: tr.pt,
      metrics,
      data: snap.dataYaml,
      datasetSource: `loupe snapshot ${snap.id}`,
      name: cfg.group,
      version: `run-${runId}`,
      backend: tr.backend,
      base: tr.base,
      script: 'cloud/training/train.py',
      test,
      ...(await int8CardFields(q, challengerInt8, choice, split)),
      command: `loupe loop run (run ${runId})`,
    });
    const cardPath = join(tr.dir, 'card.json');
    await writeModelCard(cardPath, card);
    return done({
      file,
      card: cardPath,
      challenger: { ...pick(challenger.eval), images: challenger.eval.images, instances: challenger.eval.instances },
      challengerInt8: challengerInt8 ? pick(challengerInt8.eval) : null,
      champion: { ref: champ.ref, fleetPrecision: champ.fleetPrecision, ...pick(championScore.eval) },
    });
  },
});

export const gateStep = defineStep({
  name: 'gate',
  title: 'quality gate',
  needs: ['evaluate', 'snapshot'],
  async run({ runId, runDir, config: cfg, prior }, p) {
    const ev = JSON.parse(readFileSync(prior.evaluate.file, 'utf8')) as {
      challenger: ModelScore;
      challengerInt8?: ModelScore | null;
      champion: ModelScore;
    };
    const m = cfg.gate.metric;
    // Which file the fleet would run (int8 within tolerance of fp32), then the gate on that file.
    const int8 = ev.challengerInt8 ?? null;
    const choice = choosePrecision(cfg.int8, ev.challenger.eval[cfg.int8.metric], int8 ? int8.eval[cfg.int8.metric] : null);
    const chosen = choice.deployed === 'int8' && int8 ? int8 : ev.challenger;
    const decision = decideGate(cfg.gate, chosen.eval[m], ev.champion.eval[m]);
    const report: GateReport = {
      passed: decision.passed,
      reasons: decision.reasons,
      config: cfg.gate,
      data: prior.snapshot.dataYaml,
      datasetVersion: prior.snapshot.datasetVersion,
      challenger: { ...chosen, ref: `run ${runId}${choice.deployed === 'int8' ? ' (int8)' : ''}` },
      champion: ev.champion,
      fleetPrecision: { ...choice, fp32Model: ev.challenger.model, int8Model: int8?.model ?? null },
      createdAt: new Date().toISOString(),
    };
    const paths = await writeGateReport(report, runDir);
    p.log.info(
      { passed: report.passed, reasons: report.reasons, fleetPrecision: choice.deployed, html: paths.html },
      `gate ${report.passed ? 'passed' : 'rejected the challenger'}`,
    );
    return done({
      passed: report.passed,
      reasons: report.reasons,
      fleetPrecision: choice.deployed,
      fleetPrecisionReason: choice.reason,
      json: paths.json,
      html: paths.html,
      summary: gateSummary(report, paths.json),
    });
  },
});

export const registerStep = defineStep({
  name: 'register',
  title: 'register in the model registry',
  needs: ['train', 'evaluate', 'gate', 'snapshot', 'quantize'],
  async run({ runId, config: cfg, prior }, p) {
    const { train: tr, evaluate: ev, gate: g, snapshot: snap, quantize: q } = prior;
    const sha = await sha256File(tr.onnx);
    const challenger = ev.challenger;
    const v = await p.registry.registry.register({
      group: cfg.group,
      onnx: tr.onnx,
      ...(q.onnx ? { onnxInt8: q.onnx } : {}),
      fleetPrecision: g.fleetPrecision,
      pt: tr.pt,
      card: ev.card,
      metrics: {
        map50: challenger.map50,
        map50_95: challenger.map50_95,
        precision: challenger.precision,
        recall: challenger.recall,
        ...int8Metrics(ev.challengerInt8),
      },
      datasetVersion: snap.datasetVersion,
      parentRef: tr.base,
      gate: g.summary,
      meta: { snapshot: snap.id, run: runId, gateReport: g.html },
      source: `loop run ${runId}`,
      idempotencyKey: `loop:${runId}:${sha}`,
    });
    // The SageMaker Model Registry mirrors every version and status of the group (the seed first).
    const mirrored = p.registry.mirror ? (await p.registry.mirror.sync(cfg.group, p.log)).find((m) => m.localRef === v.ref) : undefined;
    // onnxSha256: the file the fleet runs (what devices report in their results).
    const output = {
      ref: v.ref,
      status: v.status,
      reason: v.statusReason,
      fleetPrecision: v.fleetPrecision,
      onnxSha256: deployedArtefact(v).ref.sha256,
      fp32Sha256: v.artefacts.onnx.sha256,
      ...(v.artefacts.onnxInt8 ? { int8Sha256: v.artefacts.onnxInt8.sha256 } : {}),
      ...(mirrored ? { sagemaker: { ref: mirrored.ref, arn: mirrored.arn, status: mirrored.status } } : {}),
    };
    if (v.status === 'rejected') return halted(output, `gate rejected ${v.ref}: the fleet keeps ${tr.base}`);
    if (v.status === 'pending')
      return halted(output, `${v.ref} awaits approval (loupe models approve ${v.ref}), then loupe fleet deploy ${v.ref}`);
    return done(output);
  },
});

export const publishStep = defineStep({
  name: 'publish',
  title: 'publish loupe.Model component version',
  needs: ['register'],
  async run({ prior }, p) {
    const reg = p.registry.registry;
    const v = await reg.mustGet(prior.register.ref);
    const files = [
      // The file the gate chose (fp32 or int8); on the device it is always model.onnx.
      { name: 'model.onnx', path: await reg.artefactPath(v, deployedArtefact(v).kind) },
      ...(v.artefacts.card ? [{ name: 'card.json', path: await reg.artefactPath(v, 'card') }] : []),
    ];
    const f = p.fleet;
    const r = await publishModel({ backend: f.fleet, store: f.store, model: v, files, baseRecipe: await f.baseRecipe(), log: p.log });
    return done({ component: r.component, version: r.version, created: r.created, arn: r.arn });
  },
});

export const deployStep = defineStep({
  name: 'deploy',
  title: 'deploy to the fleet',
  needs: ['register', 'publish'],
  async run({ runId, config: cfg, prior }, p) {
    const f = p.fleet;
    const row = await deployModel({
      backend: f.fleet,
      store: f.store,
      modelRef: prior.register.ref,
      version: prior.publish.version,
      name: `loupe-run-${runId}`,
      log: p.log,
    });
    const state = await f.deploymentOutcome(row.deploymentId!, cfg.fleet!.deployTimeoutSeconds * 1000);
    const output = {
      name: row.name,
      deploymentId: row.deploymentId,
      version: row.version,
      previousVersion: row.previousVersion,
      state: state.state,
      detail: state.detail,
    };
    if (state.state === 'failed') {
      f.store.updateDeployment(row.id, { state: 'failed', detail: state.detail });
      return halted(
        output,
        `deployment ${row.name} failed and the device rolled back to ${row.previousVersion ?? 'its previous model'}: ${JSON.stringify(state.detail)}`,
      );
    }
    return done(output);
  },
});

export const confirmStep = defineStep({
  name: 'confirm',
  title: 'confirm devices run the new model',
  needs: ['register', 'deploy'],
  async run({ config: cfg, prior }, p) {
    const { register: reg, deploy: dep } = prior;
    const f = cfg.fleet!;
    const fleet = p.fleet;
    const things = f.backend === 'local' ? [f.thingName] : f.things;
    const row = fleet.store.deploymentByName(fleet.fleet.kind, fleet.fleet.target, dep.name)!;
    if (!f.mqttUrl || things.length === 0) {
      // No telemetry to listen to: what the control plane says the devices installed, asked
      // until every device of the target runs the new version or the time is up.
      const deadline = Date.now() + f.confirmTimeoutSeconds * 1000;
      const pollMs = fleet.confirmPollMs;
      let devices = await fleet.fleet.devices('loupe.Model');
      const ok = () => devices.length > 0 && devices.every((x) => x.modelVersion === dep.version);
      while (!ok() && Date.now() + pollMs <= deadline && !p.signal?.aborted) {
        await new Promise((r) => setTimeout(r, pollMs));
        devices = await fleet.fleet.devices('loupe.Model');
      }
      if (!ok())
        throw new LoupeError(
          'FLEET_NOT_CONFIRMED',
          `devices do not run loupe.Model ${dep.version} after ${f.confirmTimeoutSeconds} s: ${JSON.stringify(devices)}`,
          { input: dep.name },
        );
      fleet.store.updateDeployment(row.id, { state: 'confirmed', detail: { devices } });
      return done({ devices, via: 'control plane' as const });
    }
    const t = await FleetTelemetry.connect(f.mqttUrl, { log: p.log });
    try {
      const pr = new Progress('confirm', things.length, p.log, { logEveryMs: 0 });
      const r = await t.waitForModel({
        sha256: reg.onnxSha256,
        things,
        minResults: f.minResults,
        timeoutMs: f.confirmTimeoutSeconds * 1000,
        signal: p.signal,
        onProgress: (n) => pr.update(n),
      });
      pr.finish();
      const devices = r.devices.map((x) => ({ thing: x.thing, model: x.model, results: x.results[reg.onnxSha256] ?? 0 }));
      fleet.store.updateDeployment(row.id, { state: 'confirmed', detail: { devices, confirmSeconds: r.seconds } });
      return done({ devices, seconds: r.seconds, via: 'telemetry' as const });
    } finally {
      await t.close();
    }
  },
});

/** The twelve steps in run order, each a `StepDef` (a handler imports the one it runs). */
export const LOOP_STEPS = [
  ingestStep,
  labelStep,
  verifyStep,
  snapshotStep,
  trainStep,
  quantizeStep,
  evaluateStep,
  gateStep,
  registerStep,
  publishStep,
  deployStep,
  confirmStep,
] as const;

/** A step definition for the local runner: `prior` from the run's done steps, the ports with the step's log. */
export function bindStep<N extends StepName, Needs extends StepName>(
  step: StepDef<N, Needs>,
  ports: LoopPorts,
  config: LoopConfig,
  hooks: Omit<Hooks, 'log'> = {},
): LoopStep {
  return {
    name: step.name,
    title: step.title,
    output: step.output,
    async run(ctx) {
      const prior: Record<string, unknown> = {};
      for (const n of step.needs) {
        const o = ctx.outputs[n];
        if (!o)
          throw new LoupeError('LOOP_STEP_INPUT', `needs the output of step ${n}, which is not done`, {
            input: `run ${ctx.runId}, step ${step.name}`,
          });
        prior[n] = o;
      }
      const input = { runId: ctx.runId, attempt: ctx.attempt, runDir: ctx.runDir, config, prior: prior as StepInput<Needs>['prior'] };
      return step.run(input, stepPorts(ports, { ...hooks, log: ctx.log }));
    },
  };
}

export interface LoopDeps {
  ports: LoopPorts;
  config: LoopConfig;
  /** Where training draws its progress bar (a TTY); logs always get epoch events. */
  progressStream?: NodeJS.WriteStream;
  signal?: AbortSignal;
}

/** All twelve steps bound to one set of ports, for `runLoop`. */
export function loopSteps(d: LoopDeps): LoopStep[] {
  return LOOP_STEPS.map((s) =>
    bindStep(s as StepDef<StepName, StepName>, d.ports, d.config, { progressStream: d.progressStream, signal: d.signal }),
  );
}

function pick(e: { map50: number; map50_95: number; precision: number; recall: number }) {
  return { map50: e.map50, map50_95: e.map50_95, precision: e.precision, recall: e.recall };
}

// Every step name has a definition, in the order of STEP_NAMES.
if (LOOP_STEPS.map((s) => s.name).join() !== STEP_NAMES.join()) throw new Error('steps.ts: LOOP_STEPS and STEP_NAMES disagree');
