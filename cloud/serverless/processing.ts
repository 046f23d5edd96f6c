import { createReadStream, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { copyFile, mkdir, writeFile } from 'node:fs/promises';
import { dirname, join, relative, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { pathToFileURL } from 'node:url';
import { LoupeError, errorMessage } from '../../lib/errors.js';
import { writeFileAtomic } from '../../lib/fsutil.js';
import { datasetChannel, unpackModelArtifacts } from '../training/sagemaker-trainer.js';
import { runStep, withCloudHome, type CloudContext } from './cloud-step.js';
import { parseLoopConfig } from '../loop/config.js';
import { runtimeFromEnv, type CloudRuntime } from './runtime.js';

/**
 * The model-build pipeline's processing steps, run by SageMaker Processing in the loupe cloud
 * image (cloud/infra/images/cloud.Dockerfile) as
 *   node dist/cloud/serverless/processing.js snapshot --run-id N --execution ID --as-of ISO
 *   node dist/cloud/serverless/processing.js evaluate --run-id N
 * Each runs the loop's own steps (snapshot; evaluate and gate) through the cloud adapter, with
 * SageMaker's folders as the step's inputs and outputs:
 *
 *   snapshot  out  /opt/ml/processing/dataset   the YOLO data set as a training channel (the same
 *                                               files loupe's SageMaker trainer uploads: datasetChannel)
 *                  /opt/ml/processing/base      the champion's .pt (warm start: the `base` channel)
 *                  /opt/ml/processing/report    pipeline.json: {runId, newLabels, halt, snapshot}
 *   evaluate  in   /opt/ml/processing/model     model.tar.gz of the training step
 *                  /opt/ml/processing/dataset   the snapshot's channel
 *                  /opt/ml/processing/report    the snapshot's pipeline.json
 *             out  /opt/ml/processing/evaluation  model/ (the challenger's files and card), the
 *                  evaluation and gate reports, steps.json (the outputs for the register step,
 *                  paths relative to this folder), pipeline.json: {runId, gate: {passed, ...}}
 *
 * The snapshot pushes the loop home (its step and, for a scheduled pipeline, the new run);
 * evaluate only reads it: the register step (a Lambda) records evaluate and gate.
 * LOUPE_PROCESSING_ROOT replaces /opt/ml/processing (the tests' pipeline walk).
 */
export const PROCESSING_ROOT = '/opt/ml/processing';
const CHAMPION_PT = 'base.pt';

export function processingRoot(env: NodeJS.ProcessEnv = process.env): string {
  return env.LOUPE_PROCESSING_ROOT ?? PROCESSING_ROOT;
}

/** The file a pipeline's property file reads (SageMaker PropertyFile FilePath). */
export const PIPELINE_REPORT = 'pipeline.json';

export interface SnapshotArgs {
  runId: number;
  execution?: string;
  /** The pipeline execution's start (ISO 8601): the snapshot's time when the run has no verify step. */
  asOf?: string;
}

export async function snapshotStep(rt: CloudRuntime, a: SnapshotArgs, root = processingRoot()): Promise<Record<string, unknown>> {
  const out = { dataset: join(root, 'dataset'), base: join(root, 'base'), report: join(root, 'report') };
  return withCloudHome(rt, { ...(a.runId > 0 ? { runId: a.runId } : {}), trigger: 'pipeline', execution: a.execution }, async (c) => {
    const outputs: Record<string, Record<string, unknown>> = {};
    const recorded = c.store.steps(c.runId).find((s) => s.name === 'verify' && s.status === 'done');
    if (!recorded) {
      // A pipeline run without labelling before it (schedule, manual): the snapshot is as of the execution's start.
      const t = a.asOf ? Date.parse(a.asOf) / 1000 : Date.now() / 1000;
      if (!Number.isFinite(t)) throw new LoupeError('PIPELINE_BAD_TIME', 'expected an ISO 8601 time', { input: `--as-of ${a.asOf}` });
      outputs.verify = { verifiedAt: t };
    }
    // Snapshots are not kept in the home (rebuilt bit for bit by id), so a retried job builds it again.
    const r = await runStep(c, 'snapshot', { outputs, rerunDone: true });
    const report: Record<string, unknown> = { runId: c.runId, newLabels: r.status === 'done', halt: r.halt ?? null, snapshot: r.output };
    await mkdir(out.report, { recursive: true });
    if (r.status === 'done') {
      for (const f of await datasetChannel(String(r.output.dataYaml))) {
        const dest = join(out.dataset, ...f.key.split('/'));
        await mkdir(dirname(dest), { recursive: true });
        if (f.path) await copyFile(f.path, dest);
        else await writeFile(dest, f.body ?? '');
      }
      const champ = await c.env.registry.champion(c.env.config.group);
      await mkdir(out.base, { recursive: true });
      await copyFile(await c.env.registry.artefactPath(champ!, 'pt'), join(out.base, CHAMPION_PT));
      report.base = CHAMPION_PT;
    }
    await writeFileAtomic(join(out.report, PIPELINE_REPORT), JSON.stringify(report, null, 2) + '\n');
    c.log.info({ newLabels: report.newLabels, halt: report.halt }, 'snapshot for the pipeline written');
    return report;
  });
}

/** The outputs of snapshot, train, quantize, evaluate and gate as the register step needs them (paths relative to the evaluation folder). */
export interface PipelineSteps {
  runId: number;
  snapshot: Record<string, unknown>;
  train: Record<string, unknown>;
  quantize: Record<string, unknown>;
  evaluate: Record<string, unknown>;
  gate: Record<string, unknown>;
}

const PATH_KEYS: Record<string, string[]> = {
  snapshot: ['dir', 'dataYaml'],
  train: ['dir', 'onnx', 'pt'],
  quantize: ['onnx'],
  evaluate: ['file', 'card'],
  gate: ['json', 'html'],
};

/** Rewrite the file paths of step outputs between absolute (in a container) and relative (in S3). */
export function rebasePaths(steps: Omit<PipelineSteps, 'runId'>, fn: (p: string) => string): Omit<PipelineSteps, 'runId'> {
  const out = structuredClone(steps);
  for (const [step, keys] of Object.entries(PATH_KEYS)) {
    const o = out[step as keyof typeof out];
    for (const k of keys) if (typeof o[k] === 'string') o[k] = fn(o[k]);
  }
  return out;
}

export interface EvaluateArgs {
  runId: number;
  trainingJob?: string;
  modelArtifacts?: string;
  /** The pipeline's gate parameters (they override the configuration's `gate`). */
  gate?: { metric?: string; threshold?: number; tolerance?: number };
}

export async function evaluateStep(rt0: CloudRuntime, a: EvaluateArgs, root = processingRoot()): Promise<Record<string, unknown>> {
  const rt = withGate(rt0, a.gate);
  const dirs = {
    model: join(root, 'model'),
    dataset: join(root, 'dataset'),
    report: join(root, 'report'),
    evaluation: join(root, 'evaluation'),
  };
  const snapReport = JSON.parse(readFileSync(join(dirs.report, PIPELINE_REPORT), 'utf8')) as {
    runId: number;
    snapshot: Record<string, unknown>;
  };
  const runId = a.runId > 0 ? a.runId : snapReport.runId;
  return withCloudHome(
    rt,
    { runId },
    async (c: CloudContext) => {
      const tarball = join(dirs.model, 'model.tar.gz');
      if (!existsSync(tarball)) throw new LoupeError('PIPELINE_NO_MODEL', 'the training step left no model.tar.gz', { input: tarball });
      const trainDir = join(dirs.evaluation, 'model');
      const t = await unpackModelArtifacts(createReadStream(tarball), trainDir, a.modelArtifacts ?? tarball);
      const champ = (await c.env.registry.champion(c.env.config.group))!;
      const snapshot = { ...snapReport.snapshot, dir: dirs.dataset, dataYaml: join(dirs.dataset, 'data.yaml') };
      // What the loop's train step would have recorded for a SageMaker job (steps.ts train).
      const train = {
        dir: t.dir,
        backend: 'sagemaker',
        onnx: t.onnx,
        pt: t.bestPt,
        base: champ.ref,
        epochs: t.metrics.epochs_run,
        seconds: t.metrics.seconds,
        val: t.metrics.val as unknown as Record<string, unknown>,
        sagemaker: { name: a.trainingJob ?? null, modelArtifacts: a.modelArtifacts ?? null },
      };
      // The loop's quantize step (int8.enabled: its int8 file next to the challenger's), then evaluate and gate, as the local runner orders them.
      const q = await runStep(c, 'quantize', { outputs: { snapshot, train }, runDir: dirs.evaluation });
      const ev = await runStep(c, 'evaluate', { outputs: { snapshot, train, quantize: q.output }, runDir: dirs.evaluation });
      const gate = await runStep(c, 'gate', {
        outputs: { snapshot, train, quantize: q.output, evaluate: ev.output },
        runDir: dirs.evaluation,
      });
      const steps = rebasePaths({ snapshot, train, quantize: q.output, evaluate: ev.output, gate: gate.output }, (p) =>
        relative(dirs.evaluation, p),
      );
      await writeFileAtomic(join(dirs.evaluation, 'steps.json'), JSON.stringify({ runId: c.runId, ...steps }, null, 2) + '\n');
      const summary = gate.output.summary as {
        passed: boolean;
        metric: string;
        challenger: number;
        champion: number | null;
        threshold: number;
        tolerance: number;
      };
      const report = {
        runId: c.runId,
        gate: {
          passed: summary.passed,
          metric: summary.metric,
          challenger: summary.challenger,
          champion: summary.champion,
          threshold: summary.threshold,
          tolerance: summary.tolerance,
        },
      };
      await writeFileAtomic(join(dirs.evaluation, PIPELINE_REPORT), JSON.stringify(report, null, 2) + '\n');
      c.log.info(report.gate, `gate ${summary.passed ? 'passed' : 'rejected the challenger'}`);
      return report;
    },
    { readOnly: true },
  );
}

/** The runtime with the gate parameters of a pipeline execution in place of the configured ones (validated by the same schema). */
export function withGate(rt: CloudRuntime, g: EvaluateArgs['gate']): CloudRuntime {
  if (!g || Object.values(g).every((v) => v === undefined)) return rt;
  const gate = { ...rt.config.gate, ...Object.fromEntries(Object.entries(g).filter(([, v]) => v !== undefined)) };
  const config = parseLoopConfig({ ...rt.config, gate }, 'pipeline parameters (GateMetric, GateThreshold, GateTolerance)');
  return { ...rt, config };
}

export async function main(argv = process.argv.slice(2)): Promise<void> {
  const [cmd, ...rest] = argv;
  const { values } = parseArgs({
    args: rest,
    options: {
      'run-id': { type: 'string', default: '0' },
      execution: { type: 'string' },
      'as-of': { type: 'string' },
      'training-job': { type: 'string' },
      'model-artifacts': { type: 'string' },
      'gate-metric': { type: 'string' },
      'gate-threshold': { type: 'string' },
      'gate-tolerance': { type: 'string' },
    },
  });
  const num = (k: 'gate-threshold' | 'gate-tolerance') => (values[k] === undefined ? undefined : Number(values[k]));
  const runId = Number(values['run-id']);
  if (!Number.isInteger(runId) || runId < 0)
    throw new LoupeError('PIPELINE_BAD_ARG', 'expected a run id (0: a new run)', { input: `--run-id ${values['run-id']}` });
  const rt = runtimeFromEnv();
  if (cmd === 'snapshot') await snapshotStep(rt, { runId, execution: values.execution, asOf: values['as-of'] });
  else if (cmd === 'evaluate') {
    const gate = { metric: values['gate-metric'], threshold: num('gate-threshold'), tolerance: num('gate-tolerance') };
    await evaluateStep(rt, { runId, trainingJob: values['training-job'], modelArtifacts: values['model-artifacts'], gate });
  } else throw new LoupeError('PIPELINE_BAD_ARG', 'expected snapshot or evaluate', { input: String(cmd) });
}

if (process.argv[1] && pathToFileURL(resolve(process.argv[1])).href === import.meta.url) {
  main().catch((e: unknown) => {
    // SageMaker shows /opt/ml/output/message as the job's FailureReason.
    const msg = `${(e as { code?: string }).code ?? 'ERROR'}: ${errorMessage(e)}`;
    process.stderr.write(`loupe: ${msg}\n`);
    process.exitCode = 1;
    if (!process.env.LOUPE_PROCESSING_ROOT) {
      try {
        mkdirSync('/opt/ml/output', { recursive: true });
        writeFileSync('/opt/ml/output/message', msg.slice(0, 1024));
      } catch {
        // not in a SageMaker container: stderr has it
      }
    }
  });
}
