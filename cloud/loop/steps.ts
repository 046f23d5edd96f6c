import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { LoupeError } from '../../lib/errors.js';
import { sha256File, writeFileAtomic } from '../../lib/fsutil.js';
import { Progress } from '../../lib/progress.js';
import { gateSummary, writeGateReport } from '../gate/gate.js';
import { decideGate } from '../gate/decide.js';
import type { EvaluateFn } from '../gate/gate.js';
import type { GateReport, ModelScore } from '../gate/report.js';
import { choosePrecision } from '../gate/precision.js';
import { deployedArtefact } from '../registry/types.js';
import { int8CardFields, int8Metrics, quantizeChallenger, type QuantizeStepOutput } from '../quantize/challenger.js';
import { ingestIncoming } from '../ingest/index.js';
import { runSimulatedWorkforce, runSimulatedVerifier } from '../labeling/workforce.js';
import { truthByContent } from './truth.js';
import { createSnapshot } from '../snapshot/index.js';
import { trainLocal } from '../training/local-trainer.js';
import type { TrainMetricsFile, TrainResult } from '../training/options.js';
import { cardForRun } from '../training/card.js';
import { writeModelCard } from '../../contracts/model-card.js';
import { deployModel, publishModel } from '../publish/publish.js';
import { LocalNucleusFleet } from '../publish/local-nucleus.js';
import { FleetTelemetry } from '../publish/telemetry.js';
import type { LoopEnv } from './env.js';
import type { LoopStep, StepContext, StepResult } from './runner.js';
import { awsJobNames, awsStage } from './aws/clients.js';
import { groundTruthLabel, groundTruthVerify, type GroundTruthStepDeps } from './aws/groundtruth-steps.js';
import { trainOrAttach } from './aws/sagemaker-train.js';

/**
 * The loop's steps, in order: ingest → label → verify → snapshot → train → quantize → evaluate →
 * gate → register → publish → deploy → confirm. Each is idempotent for its run (see runner.ts): what
 * it creates is named after the run (labelling job `loop-<run>`, training folder
 * `runs/<run>/train`, registry key `loop:<run>:<onnx sha>`, deployment `loupe-run-<run>`) or is
 * content-addressed (snapshots), and it looks for an earlier attempt's result first. On AWS the
 * same holds for what the control plane keeps: the Ground Truth jobs and the SageMaker training
 * job are named after the run (aws/clients.ts awsJobNames) and asked for before they are
 * created; Feature Store and the SageMaker Model Registry are mirrors with their own watermark
 * and intent rows (aws/featurestore-mirror.ts, aws/registry-mirror.ts).
 *
 * Halts (the run ends without error): the snapshot holds nothing the champion was not trained
 * on; the gate rejected the challenger (registered as rejected, the fleet untouched); the
 * policy wants a person to approve; the deployment failed and the nucleus rolled back.
 */
export const STEP_NAMES = ['ingest', 'label', 'verify', 'snapshot', 'train', 'quantize', 'evaluate', 'gate', 'register', 'publish', 'deploy', 'confirm'] as const;
export type StepName = (typeof STEP_NAMES)[number];

export interface LoopDeps {
  env: LoopEnv;
  evaluate: EvaluateFn;
  /** Where training draws its progress bar (a TTY); logs always get epoch events. */
  progressStream?: NodeJS.WriteStream;
  signal?: AbortSignal;
}

type Ctx = StepContext<Record<string, unknown>>;
const out = (ctx: Ctx, step: StepName) => ctx.outputs[step] as Record<string, unknown> | undefined;

export function loopSteps(d: LoopDeps): LoopStep[] {
  const { env } = d;
  const cfg = env.config;
  // Ground Truth job names must be unique in the AWS account: they carry the installation prefix.
  const jobName = (runId: number) => (cfg.labeling.backend === 'groundtruth' ? awsJobNames(env.awsNamePrefix, runId).labeling : `loop-${runId}`);
  const gtDeps = (ctx: Ctx): GroundTruthStepDeps => ({
    gt: env.groundTruth!,
    labeling: env.labeling,
    waitMs: cfg.labeling.waitMinutes * 60_000,
    pollMs: (cfg.labeling.groundTruth?.pollSeconds ?? 60) * 1000,
    signal: d.signal,
    log: ctx.log,
  });
  const mirrorLabels = async (ctx: Ctx) => {
    const r = await env.syncLabels(ctx.log);
    return r ? { featureStore: r } : {};
  };

  const champion = async () => {
    const c = await env.registry.champion(cfg.group);
    if (!c) throw new LoupeError('LOOP_NO_CHAMPION', 'the registry has no approved model to start from', { input: cfg.group });
    return c;
  };

  const steps: Record<StepName, (ctx: Ctx) => Promise<StepResult>> = {
    async ingest(ctx) {
      const r = await ingestIncoming({ s3: env.s3, bucket: cfg.storage.bucket, prefix: cfg.storage.prefix, store: env.labels, statePath: env.home.ingestState, log: ctx.log });
      return { output: { listed: r.listed, recorded: r.recorded, alreadyKnown: r.alreadyKnown, incomplete: r.incomplete, invalid: r.invalid.length, watermark: r.watermark, ...(await mirrorLabels(ctx)) } };
    },

    async label(ctx) {
      const name = jobName(ctx.runId);
      const existing = env.labeling.listJobs().find((j) => j.name === name);
      const job =
        existing ??
        (await env.labeling.createJob({
          name,
          classes: cfg.classes,
          workersPerImage: cfg.labeling.workersPerImage,
          cap: cfg.labeling.cap,
          instructions: 'Box every scratch on the tag; leave the box empty when there is none.',
          backend: cfg.labeling.backend === 'groundtruth' ? 'groundtruth' : 'local',
        }));
      if (job.counts.items === 0) return { output: { job: name, items: 0, submitted: 0 } };
      if (cfg.labeling.backend === 'groundtruth') {
        const r = await groundTruthLabel(gtDeps(ctx), name);
        return { output: { ...r.output, ...(await mirrorLabels(ctx)) }, ...(r.wait ? { wait: r.wait } : {}) };
      }
      if (cfg.labeling.backend === 'ui') {
        // Images the server had not consolidated when it stopped are consolidated here.
        await env.labeling.settle();
        const done = await waitFor(() => env.labeling.getJob(name).status !== 'labelling', cfg.labeling.waitMinutes * 60_000, d.signal);
        const j = env.labeling.getJob(name);
        return done
          ? { output: { job: name, items: j.counts.items, annotations: j.counts.annotations } }
          : { output: { job: name, items: j.counts.items }, halt: `labelling job ${name} is open for people (loupe labels serve); the next run takes it up` };
      }
      const truth = await truthByContent(env);
      const l = cfg.labeling;
      const workers = Array.from({ length: l.workersPerImage }, (_, i) => ({ id: `sim-${i + 1}`, seed: l.seed * 100 + i, noise: l.noise, missRate: l.missRate, falsePositiveRate: l.falsePositiveRate }));
      const r = await runSimulatedWorkforce(env.labeling, name, { workers, truth, log: ctx.log });
      const j = env.labeling.getJob(name);
      return { output: { job: name, items: j.counts.items, submitted: r.submitted, annotations: j.counts.annotations, released: r.released.length, ...(await mirrorLabels(ctx)) } };
    },

    async verify(ctx) {
      const name = jobName(ctx.runId);
      const j0 = env.labeling.getJob(name);
      if (j0.counts.items === 0) return { output: { job: name, approved: 0, rejected: 0, verifiedAt: Date.now() / 1000 } };
      if (cfg.labeling.backend === 'groundtruth') {
        if (j0.counts.consolidated === 0) return { output: { job: name, approved: 0, rejected: 0, verifiedAt: Date.now() / 1000 } };
        const r = await groundTruthVerify(gtDeps(ctx), name);
        if (r.wait) return { output: r.output, wait: r.wait };
        // The snapshot is taken as of this moment, fixed here so a resumed run gets the same one.
        return { output: { ...r.output, verifiedAt: Date.now() / 1000, ...(await mirrorLabels(ctx)) } };
      }
      if (cfg.labeling.backend === 'ui') {
        const done = await waitFor(() => env.labeling.getJob(name).status === 'done', cfg.labeling.waitMinutes * 60_000, d.signal);
        const j = env.labeling.getJob(name);
        if (!done) return { output: { job: name, approved: j.counts.approved, rejected: j.counts.rejected }, halt: `verification of ${name} is waiting for people` };
      } else {
        const truth = await truthByContent(env);
        await runSimulatedVerifier(env.labeling, name, { id: 'sim-verifier', truth, log: ctx.log });
      }
      const j = env.labeling.getJob(name);
      // The snapshot is taken as of this moment, fixed here so a resumed run gets the same one.
      return { output: { job: name, approved: j.counts.approved, rejected: j.counts.rejected, verifiedAt: Date.now() / 1000, ...(await mirrorLabels(ctx)) } };
    },

    async snapshot(ctx) {
      const asOf = Number(out(ctx, 'verify')?.verifiedAt ?? Date.now() / 1000);
      const snap = await createSnapshot({ store: env.labels, images: env.images, classes: cfg.classes, asOf, outDir: env.home.snapshotsDir, log: ctx.log });
      const champ = await champion();
      const m = snap.manifest;
      const output = { id: snap.id, dir: snap.dir, dataYaml: snap.dataYaml, datasetVersion: m.datasetVersion, asOf, counts: m.counts, champion: champ.ref, championDataset: champ.datasetVersion };
      if (champ.datasetVersion === m.datasetVersion && !cfg.trigger.trainWithoutNewLabels) {
        return { output, halt: `no new approved labels: snapshot ${snap.id} is the data set ${champ.ref} was trained on` };
      }
      return { output };
    },

    async train(ctx) {
      const snap = out(ctx, 'snapshot')!;
      const champ = await champion();
      const dir = join(ctx.runDir, 'train');
      const base = await env.registry.artefactPath(champ, 'pt');
      const t = cfg.train;
      if (t.backend === 'sagemaker') {
        const sm = t.sagemaker!;
        const a = awsStage(cfg, sm);
        const r = await trainOrAttach({
          jobName: awsJobNames(env.awsNamePrefix, ctx.runId).training,
          maxJobs: sm.maxJobs,
          options: { data: String(snap.dataYaml), base, epochs: t.epochs, imgsz: t.imgsz, batch: t.batch, patience: t.patience, seed: t.seed, timeMinutes: t.timeMinutes, workers: t.workers },
          dir,
          config: {
            bucket: a.bucket,
            prefix: sm.prefix.replace(/\/$/, ''),
            roleArn: a.roleArn!,
            image: sm.image,
            instanceType: sm.instanceType,
            instanceCount: sm.instanceCount,
            volumeSizeGB: sm.volumeSizeGB,
            maxRuntimeSeconds: sm.maxRuntimeSeconds,
            pollSeconds: sm.pollSeconds,
          },
          clients: { s3: env.s3, sagemaker: env.aws.sagemaker(a.region) },
          hooks: { log: ctx.log, signal: d.signal, progressStream: d.progressStream },
        });
        const m = r.result.metrics;
        return {
          output: {
            dir,
            backend: 'sagemaker',
            onnx: r.result.onnx,
            pt: r.result.bestPt,
            base: champ.ref,
            epochs: m.epochs_run,
            seconds: m.seconds,
            val: m.val as unknown as Record<string, unknown>,
            sagemaker: { ...r.result.job, attached: r.attached, earlier: r.earlier },
          },
        };
      }
      // A loop process killed mid-training leaves its train.py running (SIGKILL runs no clean-up):
      // stop it before looking at or replacing what it writes.
      const killed = killOrphanTrainers(dir);
      if (killed.length) ctx.log.warn({ pids: killed, dir }, 'stopped a trainer left running by an earlier attempt');
      let result: TrainResult | undefined;
      const metricsFile = join(dir, 'metrics.json');
      if (existsSync(metricsFile) && existsSync(join(dir, 'model.onnx')) && existsSync(join(dir, 'best.pt'))) {
        // An earlier attempt finished training (train.py writes metrics.json last) but was cut off before recording it.
        try {
          const metrics = JSON.parse(readFileSync(metricsFile, 'utf8')) as TrainMetricsFile;
          result = { backend: 'local', dir, bestPt: join(dir, 'best.pt'), onnx: join(dir, 'model.onnx'), resultsCsv: join(dir, 'results.csv'), metricsJson: metricsFile, metrics, epochs: [] };
          ctx.log.info({ dir }, 'training output of an earlier attempt is complete; reusing it');
        } catch {
          result = undefined; // metrics.json cut off mid-write: train again
        }
      }
      if (!result) {
        await rm(dir, { recursive: true, force: true });
        result = await trainLocal(
          { data: String(snap.dataYaml), base, epochs: t.epochs, imgsz: t.imgsz, batch: t.batch, patience: t.patience, seed: t.seed, timeMinutes: t.timeMinutes, workers: t.workers, device: t.device },
          dir,
          { log: ctx.log, signal: d.signal, progressStream: d.progressStream },
        );
      }
      return {
        output: { dir, backend: 'local', onnx: result.onnx, pt: result.bestPt, base: champ.ref, epochs: result.metrics.epochs_run, seconds: result.metrics.seconds, val: result.metrics.val as unknown as Record<string, unknown> },
      };
    },

    async quantize(ctx) {
      const tr = out(ctx, 'train')!;
      const snap = out(ctx, 'snapshot')!;
      return { output: await quantizeChallenger({ onnx: String(tr.onnx), dataYaml: String(snap.dataYaml), dir: String(tr.dir), config: cfg.int8, log: ctx.log, progressStream: d.progressStream }) };
    },

    async evaluate(ctx) {
      const snap = out(ctx, 'snapshot')!;
      const tr = out(ctx, 'train')!;
      const q = out(ctx, 'quantize') as QuantizeStepOutput | undefined;
      const champ = await champion();
      const split = cfg.gate.split;
      const score = async (ref: string | null, model: string): Promise<ModelScore> => {
        const t0 = performance.now();
        const { summary, curves } = await d.evaluate(model, String(snap.dataYaml), split);
        return { ref, model, eval: summary, curves, seconds: (performance.now() - t0) / 1000 };
      };
      const p = new Progress('evaluate', q?.onnx ? 3 : 2, ctx.log, { logEveryMs: 0 });
      const challenger = await score(null, String(tr.onnx));
      p.update(1, { challenger: challenger.eval[cfg.gate.metric] });
      const challengerInt8 = q?.onnx ? await score(null, String(q.onnx)) : null;
      if (challengerInt8) p.update(2, { challengerInt8: challengerInt8.eval[cfg.gate.metric] });
      // The champion as the fleet runs it (its fp32 or int8 file).
      const champOnnx = await env.registry.artefactPath(champ, deployedArtefact(champ).kind);
      const championScore = await score(champ.ref, champOnnx);
      p.finish({ champion: championScore.eval[cfg.gate.metric] });
      const choice = choosePrecision(cfg.int8, challenger.eval[cfg.int8.metric], challengerInt8 ? challengerInt8.eval[cfg.int8.metric] : null);
      const file = join(ctx.runDir, 'evaluation.json');
      await writeFileAtomic(file, JSON.stringify({ challenger, challengerInt8, champion: championScore }) + '\n');
      // The challenger's card: trainer numbers + loupe's test numbers on the snapshot.
      const metrics = JSON.parse(readFileSync(join(String(tr.dir), 'metrics.json'), 'utf8')) as TrainMetricsFile;
      const test = { ...pick(challenger.eval), evaluator: 'loupe eval', split, images: challenger.eval.images, instances: challenger.eval.instances };
      const card = await cardForRun({
        dir: String(tr.dir),
        onnx: String(tr.onnx),
        pt: String(tr.pt),
        metrics,
        data: String(snap.dataYaml),
        datasetSource: `loupe snapshot ${String(snap.id)}`,
        name: cfg.group,
        version: `run-${ctx.runId}`,
        backend: String(tr.backend ?? 'local'),
        base: String(tr.base),
        script: 'cloud/training/train.py',
        test,
        ...(await int8CardFields(q, challengerInt8, choice, split)),
        command: `loupe loop run (run ${ctx.runId})`,
      });
      const cardPath = join(String(tr.dir), 'card.json');
      await writeModelCard(cardPath, card);
      return {
        output: {
          file,
          card: cardPath,
          challenger: { ...pick(challenger.eval), images: challenger.eval.images, instances: challenger.eval.instances },
          challengerInt8: challengerInt8 ? pick(challengerInt8.eval) : null,
          champion: { ref: champ.ref, fleetPrecision: champ.fleetPrecision, ...pick(championScore.eval) },
        },
      };
    },

    async gate(ctx) {
      const ev = JSON.parse(readFileSync(String(out(ctx, 'evaluate')!.file), 'utf8')) as { challenger: ModelScore; challengerInt8?: ModelScore | null; champion: ModelScore };
      const snap = out(ctx, 'snapshot')!;
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
        data: String(snap.dataYaml),
        datasetVersion: String(snap.datasetVersion),
        challenger: { ...chosen, ref: `run ${ctx.runId}${choice.deployed === 'int8' ? ' (int8)' : ''}` },
        champion: ev.champion,
        fleetPrecision: { ...choice, fp32Model: ev.challenger.model, int8Model: int8?.model ?? null },
        createdAt: new Date().toISOString(),
      };
      const paths = await writeGateReport(report, ctx.runDir);
      ctx.log.info({ passed: report.passed, reasons: report.reasons, fleetPrecision: choice.deployed, html: paths.html }, `gate ${report.passed ? 'passed' : 'rejected the challenger'}`);
      return {
        output: { passed: report.passed, reasons: report.reasons, fleetPrecision: choice.deployed, fleetPrecisionReason: choice.reason, json: paths.json, html: paths.html, summary: gateSummary(report, paths.json) as unknown as Record<string, unknown> },
      };
    },

    async register(ctx) {
      const tr = out(ctx, 'train')!;
      const ev = out(ctx, 'evaluate')!;
      const g = out(ctx, 'gate')!;
      const snap = out(ctx, 'snapshot')!;
      const q = out(ctx, 'quantize') as QuantizeStepOutput | undefined;
      const sha = await sha256File(String(tr.onnx));
      const challenger = ev.challenger as Record<string, number>;
      const v = await env.registry.register({
        group: cfg.group,
        onnx: String(tr.onnx),
        ...(q?.onnx ? { onnxInt8: String(q.onnx) } : {}),
        fleetPrecision: g.fleetPrecision === 'int8' ? 'int8' : 'fp32',
        pt: String(tr.pt),
        card: String(ev.card),
        metrics: {
          map50: challenger.map50!,
          map50_95: challenger.map50_95!,
          precision: challenger.precision!,
          recall: challenger.recall!,
          ...int8Metrics(ev.challengerInt8 as { map50: number; map50_95: number; precision: number; recall: number } | null),
        },
        datasetVersion: String(snap.datasetVersion),
        parentRef: String(tr.base),
        gate: g.summary as never,
        meta: { snapshot: snap.id, run: ctx.runId, gateReport: g.html },
        source: `loop run ${ctx.runId}`,
        idempotencyKey: `loop:${ctx.runId}:${sha}`,
      });
      // The SageMaker Model Registry mirrors every version and status of the group (the seed first).
      const mirrored = env.registryMirror ? (await env.registryMirror.sync(cfg.group, ctx.log)).find((m) => m.localRef === v.ref) : undefined;
      // onnxSha256: the file the fleet runs (what devices report in their results).
      const output = {
        ref: v.ref,
        status: v.status,
        reason: v.statusReason,
        fleetPrecision: v.fleetPrecision,
        onnxSha256: deployedArtefact(v).ref.sha256,
        fp32Sha256: v.artefacts.onnx.sha256,
        ...(v.artefacts.onnxInt8 ? { int8Sha256: v.artefacts.onnxInt8.sha256 } : {}),
        ...(mirrored ? { sagemaker: { ref: mirrored.ref, arn: mirrored.arn, status: mirrored.status } } : {}) };
      if (v.status === 'rejected') return { output, halt: `gate rejected ${v.ref}: the fleet keeps ${String(tr.base)}` };
      if (v.status === 'pending') return { output, halt: `${v.ref} awaits approval (loupe models approve ${v.ref}), then loupe fleet deploy ${v.ref}` };
      return { output };
    },

    async publish(ctx) {
      const reg = out(ctx, 'register')!;
      const v = await env.registry.mustGet(String(reg.ref));
      const files = [
        // The file the gate chose (fp32 or int8); on the device it is always model.onnx.
        { name: 'model.onnx', path: await env.registry.artefactPath(v, deployedArtefact(v).kind) },
        ...(v.artefacts.card ? [{ name: 'card.json', path: await env.registry.artefactPath(v, 'card') }] : []),
      ];
      const p = await publishModel({ backend: env.fleet, store: env.fleetStore, model: v, files, baseRecipe: await env.baseRecipe(), log: ctx.log });
      return { output: { component: p.component, version: p.version, created: p.created, arn: p.arn } };
    },

    async deploy(ctx) {
      const reg = out(ctx, 'register')!;
      const pub = out(ctx, 'publish')!;
      const fleet = env.fleet;
      const row = await deployModel({ backend: fleet, store: env.fleetStore, modelRef: String(reg.ref), version: String(pub.version), name: `loupe-run-${ctx.runId}`, log: ctx.log });
      const f = cfg.fleet!;
      const state =
        fleet instanceof LocalNucleusFleet ? await fleet.waitForDeployment(row.deploymentId!, f.deployTimeoutSeconds * 1000) : await fleet.deploymentStatus(row.deploymentId!);
      const output = { name: row.name, deploymentId: row.deploymentId, version: row.version, previousVersion: row.previousVersion, state: state.state, detail: state.detail };
      if (state.state === 'failed') {
        env.fleetStore.updateDeployment(row.id, { state: 'failed', detail: state.detail });
        return { output, halt: `deployment ${row.name} failed and the device rolled back to ${row.previousVersion ?? 'its previous model'}: ${JSON.stringify(state.detail)}` };
      }
      return { output };
    },

    async confirm(ctx) {
      const reg = out(ctx, 'register')!;
      const dep = out(ctx, 'deploy')!;
      const f = cfg.fleet!;
      const things = f.backend === 'local' ? [f.thingName] : f.things;
      const row = env.fleetStore.deploymentByName(env.fleet.kind, env.fleet.target, String(dep.name))!;
      if (!f.mqttUrl || things.length === 0) {
        // No telemetry to listen to: what the control plane says the devices installed, asked
        // until every device of the target runs the new version or the time is up.
        const deadline = Date.now() + f.confirmTimeoutSeconds * 1000;
        const pollMs = (f.backend === 'aws' ? f.pollSeconds : 2) * 1000;
        let devices = await env.fleet.devices('loupe.Model');
        const ok = () => devices.length > 0 && devices.every((x) => x.modelVersion === dep.version);
        while (!ok() && Date.now() + pollMs <= deadline && !d.signal?.aborted) {
          await new Promise((r) => setTimeout(r, pollMs));
          devices = await env.fleet.devices('loupe.Model');
        }
        if (!ok()) throw new LoupeError('FLEET_NOT_CONFIRMED', `devices do not run loupe.Model ${String(dep.version)} after ${f.confirmTimeoutSeconds} s: ${JSON.stringify(devices)}`, { input: String(dep.name) });
        env.fleetStore.updateDeployment(row.id, { state: 'confirmed', detail: { devices } });
        return { output: { devices, via: 'control plane' } };
      }
      const t = await FleetTelemetry.connect(f.mqttUrl, { log: ctx.log });
      try {
        const p = new Progress('confirm', things.length, ctx.log, { logEveryMs: 0 });
        const r = await t.waitForModel({ sha256: String(reg.onnxSha256), things, minResults: f.minResults, timeoutMs: f.confirmTimeoutSeconds * 1000, signal: d.signal, onProgress: (n) => p.update(n) });
        p.finish();
        const devices = r.devices.map((x) => ({ thing: x.thing, model: x.model, results: x.results[String(reg.onnxSha256)] ?? 0 }));
        env.fleetStore.updateDeployment(row.id, { state: 'confirmed', detail: { devices, confirmSeconds: r.seconds } });
        return { output: { devices, seconds: r.seconds, via: 'telemetry' } };
      } finally {
        await t.close();
      }
    },
  };

  const titles: Record<StepName, string> = {
    ingest: 'ingest new uploads',
    label: 'label (workers per image, consolidated)',
    verify: 'verify labels',
    snapshot: 'data set snapshot',
    train: 'train (warm start from the champion)',
    quantize: 'quantize the challenger to int8',
    evaluate: 'evaluate challenger (fp32, int8) and champion',
    gate: 'quality gate',
    register: 'register in the model registry',
    publish: 'publish loupe.Model component version',
    deploy: 'deploy to the fleet',
    confirm: 'confirm devices run the new model',
  };
  return STEP_NAMES.map((name) => ({ name, title: titles[name], run: steps[name] }));
}

function pick(e: { map50: number; map50_95: number; precision: number; recall: number }) {
  return { map50: e.map50, map50_95: e.map50_95, precision: e.precision, recall: e.recall };
}

/**
 * Trainer processes an earlier attempt of this run started (train.py with `--out <dir>`), found by
 * their exact command line in /proc and stopped by pid. Only processes writing into this run's
 * own training folder match.
 */
export function killOrphanTrainers(dir: string): number[] {
  const killed: number[] = [];
  let pids: string[];
  try {
    pids = readdirSync('/proc').filter((p) => /^\d+$/.test(p));
  } catch {
    return killed; // no /proc: nothing to find
  }
  for (const p of pids) {
    const pid = Number(p);
    if (pid === process.pid) continue;
    let argv: string[];
    try {
      argv = readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0');
    } catch {
      continue;
    }
    const i = argv.indexOf('--out');
    if (i < 0 || argv[i + 1] !== dir || !argv.some((a) => a.endsWith('train.py'))) continue;
    try {
      process.kill(pid, 'SIGKILL');
      killed.push(pid);
    } catch {
      // already gone
    }
  }
  return killed;
}

async function waitFor(cond: () => boolean, timeoutMs: number, signal?: AbortSignal): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (cond()) return true;
    if (Date.now() >= deadline || signal?.aborted) return false;
    await new Promise((r) => setTimeout(r, 2000));
  }
}
