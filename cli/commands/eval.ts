import type { Command } from 'commander';
import { resolve } from 'node:path';
import { LoupeError } from '../../lib/errors.js';
import { createLogger } from '../../lib/log.js';
import { Progress } from '../../lib/progress.js';
import { parseImgsz, parseNames, parsePositiveInt, parseUnit } from '../../components/detector/options.js';
import { evaluate, evalSummary, writeEvalArtifacts } from '../../cloud/evaluation/index.js';
import { SPLITS, type SplitName } from '../../cloud/dataset/types.js';

interface EvalCliOptions {
  model: string;
  data: string;
  split: string;
  conf: number;
  iou: number;
  maxDet: number;
  imgsz?: number | [number, number];
  names?: string[];
  threads?: number;
  sessions?: number;
  spinning?: boolean;
  out?: string;
  json?: boolean;
}

/**
 * `loupe eval --model M --data DATA.yaml`: ultralytics `val` metrics computed by loupe's detector
 * (DESIGN.md contract for --json); --out also writes the PR curve and confusion matrix as JSON and SVG.
 */
export function register(program: Command): void {
  program
    .command('eval')
    .description('evaluate a YOLOv8 ONNX model on a YOLO data set split (agrees with ultralytics val)')
    .requiredOption('--model <onnx>', 'ultralytics YOLOv8 detection export (.onnx)')
    .requiredOption('--data <yaml>', 'YOLO data.yaml (path/train/val/test/names)')
    .option('--split <name>', `split to score (${SPLITS.join(', ')})`, 'test')
    .option('--conf <x>', 'confidence threshold', parseUnit, 0.001)
    .option('--iou <x>', 'NMS IoU threshold', parseUnit, 0.7)
    .option('--max-det <n>', 'most detections per image', parsePositiveInt, 300)
    .option('--imgsz <n>', 'inference size N or H,W (dynamic models, or models without metadata)', parseImgsz)
    .option('--names <list>', 'class names, comma-separated (models without metadata)', parseNames)
    .option('--threads <n>', 'onnxruntime threads, per session (default: all cores; 1 with --sessions)', parsePositiveInt)
    .option('--sessions <n>', 'model sessions running images at once, each in its own thread (default 1)', parsePositiveInt)
    .option(
      '--spinning',
      "let onnxruntime's threads spin-wait between operators: a few % faster on a quiet host, up to 2x slower when other work shares the cores (default off)",
    )
    .option(
      '--out <dir>',
      'write eval.json, the curves and confusion matrix (JSON, SVG, PNG as ultralytics names them) and predicted-vs-truth grids (val_batchN_labels.jpg / _pred.jpg) here',
    )
    .option('--json', 'print the metrics as one JSON object')
    .action(async (o: EvalCliOptions) => {
      if (!(SPLITS as readonly string[]).includes(o.split)) {
        throw new LoupeError('EVAL_BAD_SPLIT', `must be one of ${SPLITS.join(', ')}, got "${o.split}"`, { input: '--split' });
      }
      const log = createLogger('eval', { stream: 'stderr' });
      const progress = new Progress('eval', 0, log, { logEveryMs: 10_000, unit: 'img' });
      const r = await evaluate({
        model: o.model,
        data: o.data,
        split: o.split as SplitName,
        conf: o.conf,
        iou: o.iou,
        maxDet: o.maxDet,
        load: {
          imgsz: o.imgsz,
          names: o.names,
          threads: o.threads,
          spinning: o.spinning === true,
          ...(o.sessions ? { sessions: o.sessions } : {}),
        },
        keepImages: Boolean(o.out),
        onProgress: (done, total) => {
          progress.setTotal(total);
          progress.update(done);
        },
      });
      progress.finish();
      if (o.out) {
        const files = await writeEvalArtifacts(r, resolve(o.out));
        log.info({ files }, 'evaluation artefacts written');
      }
      if (o.json) {
        process.stdout.write(`${JSON.stringify(evalSummary(r))}\n`);
        return;
      }
      const pad = (s: string, n: number): string => s.padEnd(n);
      const num = (x: number): string => x.toFixed(3).padStart(9);
      const lines = [
        `${r.model} on ${r.data} [${r.split}]: ${r.images} images, ${r.instances} instances`,
        `${pad('class', 20)}${'images'.padStart(8)}${'inst'.padStart(8)}${'P'.padStart(9)}${'R'.padStart(9)}${'mAP50'.padStart(9)}${'mAP50-95'.padStart(9)}`,
        `${pad('all', 20)}${String(r.images).padStart(8)}${String(r.instances).padStart(8)}${num(r.precision)}${num(r.recall)}${num(r.map50)}${num(r.map50_95)}`,
        ...r.classes.map(
          (c) =>
            `${pad(c.name, 20)}${String(c.images).padStart(8)}${String(c.instances).padStart(8)}${num(c.precision)}${num(c.recall)}${num(c.ap50)}${num(c.ap50_95)}`,
        ),
        `speed: ${r.speed.decode.toFixed(1)} ms decode, ${r.speed.preprocess.toFixed(1)} ms preprocess, ${r.speed.inference.toFixed(1)} ms inference, ${r.speed.postprocess.toFixed(1)} ms postprocess per image`,
      ];
      process.stdout.write(`${lines.join('\n')}\n`);
    });
}
