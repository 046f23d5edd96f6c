import { existsSync } from 'node:fs';
import { basename, extname, resolve } from 'node:path';
import { LoupeError } from '../../lib/errors.js';
import type { EpochEvent, Hyperparameters, StartEvent, ValMetrics } from './events.js';

/**
 * What one training run needs, whichever backend runs it. Mirrors train.py's arguments; optional
 * hyperparameters left undefined let train.py choose (cold: ultralytics defaults; warm start from a
 * .pt: AdamW lr0 2e-4, no warmup, mosaic off for short runs; see `schedule()` in train.py).
 */
export interface TrainOptions {
  /** YOLO data.yaml (path/train/val/test/names). */
  data: string;
  /** `yolov8n.yaml` (cold start, any yolov8[nslmx].yaml) or a local `.pt` checkpoint (warm start). */
  base: string;
  epochs: number;
  imgsz: number;
  batch: number;
  patience: number;
  seed: number;
  /** Time budget in minutes; ultralytics stops there and keeps the best epoch. */
  timeMinutes?: number;
  optimizer?: string;
  lr0?: number;
  warmupEpochs?: number;
  closeMosaic?: number;
  /** Local only: cpu, 0, ... (default: GPU 0 if present). */
  device?: string;
  workers?: number;
  cache?: 'ram' | 'disk';
}

export const DEFAULTS = { base: 'yolov8n.yaml', epochs: 50, imgsz: 480, batch: 16, patience: 50, seed: 0 } as const;

const ARCH = /^yolov8[nslmx]?\.yaml$/;

/**
 * Checks that need no Python: numbers in range and a base model loupe can use without a download.
 * The class list of a .pt base is checked by train.py (it needs torch to read the checkpoint).
 */
export function validateOptions(o: TrainOptions): TrainOptions {
  const positiveInt = (v: number, name: string, min = 1) => {
    if (!Number.isInteger(v) || v < min) throw new LoupeError('BAD_OPTION', `must be an integer >= ${min}, got ${v}`, { input: name });
  };
  positiveInt(o.epochs, '--epochs');
  positiveInt(o.imgsz, '--imgsz', 32);
  if (o.imgsz % 32 !== 0)
    throw new LoupeError('BAD_OPTION', `must be a multiple of 32 (the model's largest stride), got ${o.imgsz}`, { input: '--imgsz' });
  positiveInt(o.batch, '--batch');
  positiveInt(o.patience, '--patience');
  positiveInt(o.seed, '--seed', 0);
  if (o.timeMinutes !== undefined && !(o.timeMinutes > 0))
    throw new LoupeError('BAD_OPTION', `must be a positive number of minutes, got ${o.timeMinutes}`, { input: '--time' });
  if (o.lr0 !== undefined && !(o.lr0 > 0 && o.lr0 < 1))
    throw new LoupeError('BAD_OPTION', `must be in (0, 1), got ${o.lr0}`, { input: '--lr0' });
  if (!existsSync(o.data)) throw new LoupeError('DATA_MISSING', 'data set description not found', { input: o.data });
  const ext = extname(o.base);
  if (ext === '.pt') {
    if (!existsSync(o.base))
      throw new LoupeError('BASE_UNKNOWN', 'base checkpoint not found (loupe never downloads weights; give a local .pt or yolov8n.yaml)', {
        input: o.base,
      });
  } else if (ext === '.yaml' || ext === '.yml') {
    if (!existsSync(o.base) && !ARCH.test(basename(o.base)))
      throw new LoupeError('BASE_UNKNOWN', 'unknown base model (expected yolov8[n|s|m|l|x].yaml, a model YAML file or a local .pt)', {
        input: o.base,
      });
  } else {
    throw new LoupeError('BASE_UNKNOWN', 'unknown base model (expected yolov8[n|s|m|l|x].yaml, a model YAML file or a local .pt)', {
      input: o.base,
    });
  }
  return { ...o, data: resolve(o.data), base: ext === '.pt' || existsSync(o.base) ? resolve(o.base) : o.base };
}

/** train.py's command-line arguments for these options. */
export function trainPyArgs(o: TrainOptions, out: string): string[] {
  const args = [
    '--data',
    o.data,
    '--model',
    o.base,
    '--epochs',
    String(o.epochs),
    '--imgsz',
    String(o.imgsz),
    '--batch',
    String(o.batch),
    '--patience',
    String(o.patience),
    '--seed',
    String(o.seed),
    '--out',
    out,
  ];
  if (o.timeMinutes !== undefined) args.push('--time-minutes', String(o.timeMinutes));
  if (o.optimizer !== undefined) args.push('--optimizer', o.optimizer);
  if (o.lr0 !== undefined) args.push('--lr0', String(o.lr0));
  if (o.warmupEpochs !== undefined) args.push('--warmup-epochs', String(o.warmupEpochs));
  if (o.closeMosaic !== undefined) args.push('--close-mosaic', String(o.closeMosaic));
  if (o.device !== undefined) args.push('--device', o.device);
  if (o.workers !== undefined) args.push('--workers', String(o.workers));
  if (o.cache !== undefined) args.push('--cache', o.cache);
  return args;
}

/** train.py's metrics.json. */
export interface TrainMetricsFile {
  trainer: { name: string; version: string; torch: string };
  device: string;
  epochs_run: number;
  epochs_requested: number;
  seconds: number;
  seconds_per_epoch: number | null;
  val: ValMetrics;
  names: string[];
  counts: StartEvent['counts'];
  hyp?: Hyperparameters;
  args: Record<string, unknown>;
  variants: Record<string, string>;
}

/** What a finished run hands back, whichever backend ran it. All paths are inside `dir`. */
export interface TrainResult {
  backend: 'local' | 'sagemaker';
  dir: string;
  bestPt: string;
  onnx: string;
  resultsCsv: string;
  metricsJson: string;
  metrics: TrainMetricsFile;
  /** Per-epoch records as they were reported (local runs; SageMaker reports final metrics only). */
  epochs: EpochEvent[];
  /** SageMaker only: the job's name and its artefact URI. */
  job?: { name: string; arn?: string; modelArtifacts: string; billableSeconds?: number };
}
