import { Command, InvalidArgumentError, Option } from 'commander';
import { existsSync, readdirSync } from 'node:fs';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { S3Client } from '@aws-sdk/client-s3';
import { SageMakerClient } from '@aws-sdk/client-sagemaker';
import { LoupeError } from '../../lib/errors.js';
import { createLogger } from '../../lib/log.js';
import { projectRoot } from '../../lib/paths.js';
import { cardForRun, shellCommand } from '../../cloud/training/card.js';
import { writeModelCard, type TestMetrics } from '../../contracts/model-card.js';
import { evaluateRun } from '../../cloud/training/evaluate-run.js';
import { trainScript } from '../../cloud/training/local-trainer.js';
import { localTraining } from '../../cloud/loop/adapters/training-local.js';
import { sageMakerTraining } from '../../cloud/loop/adapters/training-sagemaker.js';
import type { TrainingPort } from '../../cloud/loop/ports.js';
import { DEFAULTS, trainFlags, type TrainOptions, type TrainResult } from '../../cloud/training/options.js';
import { SAGEMAKER_DEFAULTS } from '../../cloud/training/sagemaker-trainer.js';

interface TrainCliOptions {
  data: string;
  base: string;
  epochs: number;
  imgsz: number;
  batch: number;
  patience: number;
  seed: number;
  time?: number;
  optimizer?: string;
  lr0?: number;
  warmupEpochs?: number;
  closeMosaic?: number;
  device?: string;
  workers?: number;
  cache?: 'ram' | 'disk';
  backend: 'local' | 'sagemaker';
  bucket?: string;
  prefix: string;
  roleArn?: string;
  image?: string;
  instanceType: string;
  volumeGb: number;
  maxRuntime: number;
  region?: string;
  s3Endpoint?: string;
  pollSeconds: number;
  out: string;
  name?: string;
  modelVersion?: string;
  eval: boolean;
  evalSplit: string;
  json?: boolean;
}

const int = (min: number) => (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new InvalidArgumentError(`expected an integer >= ${min}, got "${v}"`);
  return n;
};
const positive = (v: string) => {
  const n = Number(v);
  if (!(n > 0)) throw new InvalidArgumentError(`expected a positive number, got "${v}"`);
  return n;
};
const nonNegative = (v: string) => {
  const n = Number(v);
  if (!(n >= 0)) throw new InvalidArgumentError(`expected a number >= 0, got "${v}"`);
  return n;
};

/** The training port for each --backend, from the command's flags (the loop builds its own from its configuration). */
const TRAINING: Record<TrainCliOptions['backend'], (o: TrainCliOptions) => TrainingPort> = {
  local: () => localTraining({ resumeRun: false }),
  sagemaker: (o) => {
    const region = o.region ?? process.env.AWS_REGION;
    return sageMakerTraining({
      // Missing bucket, role or image: trainSageMaker names the one missing (BAD_OPTION).
      config: {
        bucket: o.bucket ?? '',
        prefix: o.prefix,
        roleArn: o.roleArn ?? '',
        image: o.image ?? '',
        instanceType: o.instanceType,
        volumeSizeGB: o.volumeGb,
        maxRuntimeSeconds: o.maxRuntime,
        pollSeconds: o.pollSeconds,
      },
      clients: {
        s3: new S3Client({ ...(region ? { region } : {}), ...(o.s3Endpoint ? { endpoint: o.s3Endpoint, forcePathStyle: true } : {}) }),
        sagemaker: new SageMakerClient(region ? { region } : {}),
      },
    });
  },
};

/** The `loupe train` line that reproduces a run (defaults spelled out, paths as given). */
export function reproducingCommand(options: TrainOptions, o: Pick<TrainCliOptions, 'backend' | 'instanceType' | 'out'>): string {
  const argv = ['loupe', 'train', ...trainFlags(options, 'loupe', 'required'), ...trainFlags(options, 'loupe', 'optional')];
  if (o.backend === 'sagemaker') argv.push('--backend', 'sagemaker', '--instance-type', o.instanceType);
  argv.push('--out', o.out);
  return shellCommand(argv);
}

export function register(program: Command): void {
  program
    .command('train')
    .description(
      'train a YOLOv8 detector offline (ultralytics, local venv or a SageMaker job), then score its ONNX with loupe eval on the test split',
    )
    .requiredOption('--data <yaml>', 'YOLO data.yaml (path/train/val/test/names)')
    .option('--base <model>', 'yolov8n.yaml (cold start) or a local .pt checkpoint to warm-start from', DEFAULTS.base)
    .option('--epochs <n>', 'epochs', int(1), DEFAULTS.epochs)
    .option('--imgsz <px>', 'training and export image size (multiple of 32)', int(32), DEFAULTS.imgsz)
    .option('--batch <n>', 'batch size', int(1), DEFAULTS.batch)
    .option('--patience <n>', 'stop after this many epochs without improvement', int(1), DEFAULTS.patience)
    .option('--seed <n>', 'random seed', int(0), DEFAULTS.seed)
    .option('--time <minutes>', 'time budget; ultralytics stops there and keeps the best epoch', positive)
    .addOption(
      new Option('--optimizer <name>', 'default: auto (cold) / AdamW (warm start)').choices([
        'auto',
        'SGD',
        'Adam',
        'AdamW',
        'NAdam',
        'RAdam',
        'RMSProp',
      ]),
    )
    .option('--lr0 <rate>', 'initial learning rate (default: ultralytics auto (cold) / 2e-4 (warm start))', positive)
    .option('--warmup-epochs <n>', 'default: 3 (cold) / 0 (warm start)', nonNegative)
    .option('--close-mosaic <n>', 'final epochs without mosaic (default: 10 (cold) / min(10, epochs) (warm start))', int(0))
    .option('--device <dev>', 'local backend: cpu, 0, ... (default: GPU 0 if present)')
    .option('--workers <n>', 'data loader workers', int(0))
    .addOption(new Option('--cache <where>', 'cache decoded images').choices(['ram', 'disk']))
    .addOption(new Option('--backend <name>', 'where training runs').choices(['local', 'sagemaker']).default('local'))
    .option('--bucket <name>', 'sagemaker: S3 bucket for channels and artefacts')
    .option('--prefix <key>', 'sagemaker: S3 key prefix', SAGEMAKER_DEFAULTS.prefix)
    .option('--role-arn <arn>', 'sagemaker: execution role')
    .option('--image <uri>', 'sagemaker: training image URI (built from cloud/training/Dockerfile)')
    .option('--instance-type <type>', 'sagemaker: instance type', SAGEMAKER_DEFAULTS.instanceType)
    .option('--volume-gb <n>', 'sagemaker: volume size', int(1), SAGEMAKER_DEFAULTS.volumeSizeGB)
    .option('--max-runtime <seconds>', 'sagemaker: StoppingCondition.MaxRuntimeInSeconds', int(1), SAGEMAKER_DEFAULTS.maxRuntimeSeconds)
    .option('--region <region>', 'sagemaker: AWS region (default: the SDK chain)')
    .option('--s3-endpoint <url>', 'sagemaker: S3 endpoint for the channels (an S3-compatible store; path-style)')
    .option('--poll-seconds <n>', 'sagemaker: DescribeTrainingJob interval', positive, SAGEMAKER_DEFAULTS.pollSeconds)
    .requiredOption('--out <dir>', 'output folder (best.pt, model.onnx, results.csv, metrics.json, card.json)')
    .option('--name <name>', 'model name for the card (default: the data set folder name)')
    .option('--model-version <v>', 'model version for the card (default: 0.0.0-dev.<UTC timestamp>)')
    .option('--no-eval', 'skip loupe eval of the exported ONNX (the card then has no test metrics)')
    .addOption(new Option('--eval-split <split>', 'split loupe eval scores').choices(['train', 'val', 'test']).default('test'))
    .option('--json', 'print one JSON summary on stdout')
    .action(async (o: TrainCliOptions) => {
      const log = createLogger('train', { stream: 'stderr' });
      const out = resolve(o.out);
      // Never mix two runs' files: train.py writes its outputs into this folder directly.
      if (existsSync(out) && readdirSync(out).some((f) => ['model.onnx', 'best.pt', 'card.json', 'metrics.json'].includes(f))) {
        throw new LoupeError('OUT_EXISTS', 'already holds a training run (model.onnx/best.pt/card.json); choose a new --out', {
          input: out,
        });
      }
      const options: TrainOptions = {
        data: o.data,
        base: o.base,
        epochs: o.epochs,
        imgsz: o.imgsz,
        batch: o.batch,
        patience: o.patience,
        seed: o.seed,
        timeMinutes: o.time,
        optimizer: o.optimizer,
        lr0: o.lr0,
        warmupEpochs: o.warmupEpochs,
        closeMosaic: o.closeMosaic,
        device: o.device,
        workers: o.workers,
        cache: o.cache,
      };

      // First Ctrl-C/SIGTERM: a clean stop (train.py keeps last.pt; a SageMaker job is stopped).
      // A second one: the local trainer is killed at once.
      const controller = new AbortController();
      const force = new AbortController();
      const onSignal = (sig: NodeJS.Signals) => {
        if (controller.signal.aborted) {
          log.warn({ signal: sig }, 'second interrupt: stopping now');
          force.abort();
        } else {
          log.warn({ signal: sig }, 'interrupt: stopping training cleanly (interrupt again to stop at once)');
          controller.abort();
        }
      };
      process.on('SIGINT', onSignal);
      process.on('SIGTERM', onSignal);
      let result: TrainResult;
      try {
        // A fresh run every time (no run to resume; a used --out is refused above), through the loop's training port.
        ({ result } = await TRAINING[o.backend](o).train(
          { dir: out, options },
          { log, signal: controller.signal, forceSignal: force.signal },
        ));
      } finally {
        process.removeListener('SIGINT', onSignal);
        process.removeListener('SIGTERM', onSignal);
      }

      // loupe's own evaluator on the test split: the number the gate compares.
      let test: TestMetrics | null = null;
      if (o.eval) {
        log.info({ model: result.onnx, split: o.evalSplit }, 'scoring the ONNX model with loupe eval');
        test = await evaluateRun(result.onnx, o.data, o.evalSplit, log);
      }

      const m = result.metrics;
      const card = await cardForRun({
        dir: out,
        onnx: result.onnx,
        pt: result.bestPt,
        metrics: m,
        data: o.data,
        name: o.name ?? basename(dirname(resolve(o.data))),
        version: o.modelVersion ?? `0.0.0-dev.${new Date().toISOString().replace(/[-:]/g, '').replace(/\..*$/, '')}`,
        backend: result.backend,
        base: o.base,
        script: relative(projectRoot, trainScript),
        test,
        command: reproducingCommand(options, o),
        ...(result.job ? { notes: [`SageMaker training job ${result.job.name} (${result.job.modelArtifacts})`] } : {}),
      });
      const cardPath = join(out, 'card.json');
      await writeModelCard(cardPath, card);

      const summary = {
        out,
        backend: result.backend,
        files: { bestPt: result.bestPt, onnx: result.onnx, resultsCsv: result.resultsCsv, metrics: result.metricsJson, card: cardPath },
        epochsRun: m.epochs_run,
        seconds: m.seconds,
        secondsPerEpoch: m.seconds_per_epoch,
        val: m.val,
        test,
        ...(result.job ? { job: result.job } : {}),
      };
      if (o.json) {
        process.stdout.write(JSON.stringify(summary) + '\n');
      } else {
        const f = (v: number | null | undefined) => (typeof v === 'number' ? v.toFixed(3) : '-');
        process.stdout.write(
          [
            `trained ${m.epochs_run} epoch(s) in ${m.seconds}s (${m.seconds_per_epoch ?? '-'} s/epoch) on ${result.backend}/${m.device}`,
            `                     mAP50   mAP50-95  precision  recall`,
            `trainer val (${String(m.counts.val.images).padStart(3)})   ${f(m.val.map50)}   ${f(m.val.map50_95)}     ${f(m.val.precision)}      ${f(m.val.recall)}`,
            test
              ? `loupe eval ${o.evalSplit} (${String(test.images).padStart(3)}) ${f(test.map50)}   ${f(test.map50_95)}     ${f(test.precision)}      ${f(test.recall)}`
              : `loupe eval: skipped (--no-eval)`,
            `model: ${result.onnx}`,
            `card:  ${cardPath}`,
          ].join('\n') + '\n',
        );
      }
    });
}
