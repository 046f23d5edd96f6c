/**
 * The lines train.py prints for its driver (see the docstring of train.py):
 *   LOUPE_EVENT {json}   progress: start, batch, epoch, export, done, interrupted, network_attempt
 *   LOUPE_ERROR {json}   a refused input ({code, message}), followed by exit status 2
 *   loupe-metric k=v ... the same epoch numbers as plain text, for SageMaker MetricDefinitions
 * Everything else on stdout/stderr is ultralytics' own console output.
 */
export interface StartEvent {
  event: 'start';
  epochs: number;
  imgsz: number;
  batch: number;
  base: string;
  names: string[];
  counts: Record<'train' | 'val' | 'test', { images: number; boxes: number }>;
  device: string;
  ultralytics: string;
  torch: string;
  hyp: Hyperparameters;
}

/** The schedule train.py chose (cold: ultralytics defaults; warm: see `schedule()` in train.py). */
export interface Hyperparameters {
  warm_start: boolean;
  optimizer: string;
  lr0?: number;
  warmup_epochs: number;
  close_mosaic: number;
}

export interface EpochEvent {
  event: 'epoch';
  epoch: number;
  /** May change during a run with a time budget: ultralytics re-estimates the epoch count. */
  epochs: number;
  seconds: number;
  box_loss: number;
  cls_loss: number;
  dfl_loss: number;
  precision: number;
  recall: number;
  map50: number;
  map50_95: number;
}

/** Per-batch training progress (at most 4 a second, and always the last batch of an epoch). */
export interface BatchEvent {
  event: 'batch';
  epoch: number;
  epochs: number;
  batch: number;
  batches: number;
  box_loss: number;
  cls_loss: number;
  dfl_loss: number;
}

export interface ValMetrics {
  precision: number | null;
  recall: number | null;
  map50: number | null;
  map50_95: number | null;
}

export interface DoneEvent {
  event: 'done';
  epochs_run: number;
  seconds: number;
  seconds_per_epoch: number | null;
  val: ValMetrics;
}

export interface ExportEvent {
  event: 'export';
  format: string;
}

export interface InterruptedEvent {
  event: 'interrupted';
  seconds: number;
  epochs_done: number;
}

export interface NetworkAttemptEvent {
  event: 'network_attempt';
  address: string;
  stack?: string;
}

export type TrainEvent = StartEvent | BatchEvent | EpochEvent | DoneEvent | ExportEvent | InterruptedEvent | NetworkAttemptEvent;

export interface TrainRefusal {
  code: string;
  message: string;
}

export type TrainLine =
  | { kind: 'event'; event: TrainEvent }
  | { kind: 'error'; error: TrainRefusal }
  | { kind: 'metric'; values: Record<string, number> }
  | { kind: 'text'; text: string };

/** Classify one stdout line of train.py; malformed JSON is kept as text rather than thrown. */
export function parseTrainLine(line: string): TrainLine {
  const text = line.replace(/\r$/, '');
  try {
    if (text.startsWith('LOUPE_EVENT ')) return { kind: 'event', event: JSON.parse(text.slice(12)) as TrainEvent };
    if (text.startsWith('LOUPE_ERROR ')) return { kind: 'error', error: JSON.parse(text.slice(12)) as TrainRefusal };
  } catch {
    return { kind: 'text', text };
  }
  if (text.startsWith('loupe-metric ')) {
    const values: Record<string, number> = {};
    for (const pair of text.slice(13).trim().split(/\s+/)) {
      const [k, v] = pair.split('=');
      if (k && v !== undefined) values[k] = Number(v);
    }
    return { kind: 'metric', values };
  }
  return { kind: 'text', text };
}

/** The metric names train.py prints on its `loupe-metric` lines, in order. */
export const METRIC_KEYS = [
  'epoch',
  'epochs',
  'seconds',
  'box_loss',
  'cls_loss',
  'dfl_loss',
  'precision',
  'recall',
  'map50',
  'map50_95',
] as const;

/**
 * SageMaker MetricDefinitions for the `loupe-metric` lines: one regex per key, anchored on the
 * space before the key so that no key matches the tail of another.
 */
export function metricDefinitions(): { Name: string; Regex: string }[] {
  return METRIC_KEYS.filter((k) => k !== 'epochs').map((k) => ({
    Name: k === 'epoch' ? 'epoch' : `${['precision', 'recall', 'map50', 'map50_95'].includes(k) ? 'val' : 'train'}:${k}`,
    Regex: `loupe-metric.* ${k}=([-+0-9.eE]+)`,
  }));
}
