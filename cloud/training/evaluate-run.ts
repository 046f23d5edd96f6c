import type { Logger } from 'pino';
import { LoupeError } from '../../lib/errors.js';
import { silentLogger } from '../../lib/log.js';
import { Progress } from '../../lib/progress.js';
import type { SplitName } from '../dataset/types.js';
import { evaluate } from '../evaluation/index.js';
import type { TestMetrics } from '../../contracts/model-card.js';

const SPLITS: readonly string[] = ['train', 'val', 'test'];

/**
 * Score a trained ONNX model with loupe's own evaluator (cloud/evaluation: the detector the device
 * runs, ultralytics val semantics) on one split: the number the gate compares, kept apart from the
 * trainer's own val numbers.
 */
export async function evaluateRun(model: string, data: string, split: string, log: Logger = silentLogger): Promise<TestMetrics> {
  if (!SPLITS.includes(split)) throw new LoupeError('BAD_OPTION', `must be train, val or test, got ${split}`, { input: '--eval-split' });
  const progress = new Progress(`eval ${split}`, 0, log);
  const r = await evaluate({
    model,
    data,
    split: split as SplitName,
    onProgress: (done, total) => (progress.setTotal(total), progress.update(done)),
  });
  progress.finish();
  return {
    map50: r.map50,
    map50_95: r.map50_95,
    precision: r.precision,
    recall: r.recall,
    images: r.images,
    instances: r.instances,
    evaluator: 'loupe eval',
    split,
  };
}
