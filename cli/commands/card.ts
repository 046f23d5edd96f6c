import type { Command } from 'commander';
import { existsSync, readFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { LoupeError } from '../../lib/errors.js';
import { createLogger } from '../../lib/log.js';
import { cardForRun } from '../../cloud/training/card.js';
import { writeModelCard, type TestMetrics } from '../../contracts/model-card.js';
import { evaluateRun } from '../../cloud/training/evaluate-run.js';
import type { TrainMetricsFile } from '../../cloud/training/options.js';

interface CardCliOptions {
  data: string;
  testData?: string;
  datasetSource?: string;
  name?: string;
  modelVersion: string;
  backend: string;
  command: string;
  trainerCommand?: string;
  note: string[];
  eval: boolean;
  json?: boolean;
}

/**
 * `loupe card DIR`: (re)write DIR/card.json for a model folder that holds model.onnx, a checkpoint
 * (model.pt or best.pt) and train.py's metrics (metrics.json or train-metrics.json), scoring the
 * ONNX with loupe eval on the test split. `loupe train` writes cards itself; this is for models
 * trained elsewhere (the shipped model was trained by train.py on a GPU) and for re-scoring.
 */
export function register(program: Command): void {
  program
    .command('card')
    .argument('<dir>', 'model folder (model.onnx, model.pt|best.pt, metrics.json|train-metrics.json)')
    .description(
      "write a model's card.json (classes, trainer, data set version and test images, loupe eval test metrics, reproducing command)",
    )
    .requiredOption('--data <yaml>', 'the YOLO data.yaml it was trained on (its test split is scored)')
    .option('--test-data <yaml>', "score this data set's test split instead (a held-out benchmark set outside the training data)")
    .option('--dataset-source <text>', 'where the data set came from (default: the data.yaml path)')
    .option('--name <name>', 'model name (default: the folder name)')
    .option('--model-version <v>', 'model version', '1.0.0')
    .option('--backend <name>', 'where it was trained', 'local')
    .requiredOption('--command <cmd>', 'the `loupe train` command that reproduces it')
    .option('--trainer-command <cmd>', "train.py's command line, if it was run directly")
    .option('--note <text>', 'a note for the card (repeatable)', (v: string, prev: string[]) => [...prev, v], [] as string[])
    .option('--no-eval', 'leave metrics.test empty (null)')
    .option('--json', 'print the card on stdout')
    .action(async (dirArg: string, o: CardCliOptions) => {
      const log = createLogger('card', { stream: 'stderr' });
      const dir = resolve(dirArg);
      const onnx = join(dir, 'model.onnx');
      if (!existsSync(onnx)) throw new LoupeError('CARD_NO_MODEL', 'holds no model.onnx', { input: dir });
      const pt = ['model.pt', 'best.pt'].map((f) => join(dir, f)).find((p) => existsSync(p));
      const metricsPath = ['metrics.json', 'train-metrics.json'].map((f) => join(dir, f)).find((p) => existsSync(p));
      if (!metricsPath)
        throw new LoupeError('CARD_NO_METRICS', 'holds no train.py metrics (metrics.json or train-metrics.json)', { input: dir });
      let metrics: TrainMetricsFile;
      try {
        metrics = JSON.parse(readFileSync(metricsPath, 'utf8')) as TrainMetricsFile;
      } catch (e) {
        throw new LoupeError('CARD_BAD_METRICS', `not valid JSON (${(e as Error).message})`, { input: metricsPath });
      }
      let test: TestMetrics | null = null;
      if (o.eval) {
        const data = o.testData ?? o.data;
        log.info({ model: onnx, data }, 'scoring with loupe eval (test split)');
        test = await evaluateRun(onnx, data, 'test', log);
        // Say which data set's test split it is when it is not the training data set's.
        if (o.testData) test = { ...test, split: `test of ${basename(dirname(resolve(o.testData)))}` };
      }
      const card = await cardForRun({
        dir,
        onnx,
        pt,
        metrics,
        data: o.data,
        datasetSource: o.datasetSource,
        name: o.name ?? basename(dir),
        version: o.modelVersion,
        backend: o.backend,
        script: 'cloud/training/train.py',
        test,
        command: o.command,
        trainerCommand: o.trainerCommand,
        notes: o.note,
      });
      await writeModelCard(join(dir, 'card.json'), card);
      log.info({ card: join(dir, 'card.json') }, 'card written');
      if (o.json) process.stdout.write(JSON.stringify(card) + '\n');
    });
}
