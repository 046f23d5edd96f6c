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

/**
 * The options as command-line flags, one row each: `loupe train`'s flag (null: not in the line
 * that reproduces a run, being this machine's choice) and train.py's. Required rows come first,
 * in this order, in both command lines; an optional row is written only when set.
 */
export const TRAIN_FLAGS: readonly { key: keyof TrainOptions; loupe: string | null; trainPy: string; required?: true }[] = [
  { key: 'data', loupe: '--data', trainPy: '--data', required: true },
  { key: 'base', loupe: '--base', trainPy: '--model', required: true },
  { key: 'epochs', loupe: '--epochs', trainPy: '--epochs', required: true },
  { key: 'imgsz', loupe: '--imgsz', trainPy: '--imgsz', required: true },
  { key: 'batch', loupe: '--batch', trainPy: '--batch', required: true },
  { key: 'patience', loupe: '--patience', trainPy: '--patience', required: true },
  { key: 'seed', loupe: '--seed', trainPy: '--seed', required: true },
  { key: 'timeMinutes', loupe: '--time', trainPy: '--time-minutes' },
  { key: 'optimizer', loupe: '--optimizer', trainPy: '--optimizer' },
  { key: 'lr0', loupe: '--lr0', trainPy: '--lr0' },
  { key: 'warmupEpochs', loupe: '--warmup-epochs', trainPy: '--warmup-epochs' },
  { key: 'closeMosaic', loupe: '--close-mosaic', trainPy: '--close-mosaic' },
  { key: 'device', loupe: null, trainPy: '--device' },
  { key: 'workers', loupe: null, trainPy: '--workers' },
  { key: 'cache', loupe: '--cache', trainPy: '--cache' },
];

/** The flags of `o` for one command line: its required rows, or its optional rows that are set. */
export function trainFlags(o: TrainOptions, cli: 'loupe' | 'trainPy', rows: 'required' | 'optional'): string[] {
  const args: string[] = [];
  for (const row of TRAIN_FLAGS) {
    const flag = row[cli];
    const value = o[row.key];
    if (flag === null || (row.required === true) !== (rows === 'required') || value === undefined) continue;
    args.push(flag, String(value));
  }
  return args;
}

/** train.py's command-line arguments for these options. */
export function trainPyArgs(o: TrainOptions, out: string): string[] {
  return [...trainFlags(o, 'trainPy', 'required'), '--out', out, ...trainFlags(o, 'trainPy', 'optional')];
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
