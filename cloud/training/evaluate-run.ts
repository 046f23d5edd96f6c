import { LoupeError } from '../../components/common/errors.js';
import type { TestMetrics } from './card.js';

/** What loupe's evaluator returns (the `loupe eval --json` object). */
interface EvalResult {
  images: number;
  instances: number;
  map50: number;
  map50_95: number;
  precision: number;
  recall: number;
}

type Evaluate = (opts: { model: string; data: string; split?: string }) => Promise<EvalResult>;

/**
 * Score a trained ONNX model with loupe's own evaluator (cloud/evaluation, the code the device
 * runs and the gate trusts) on one split of the data set.
 *
 * TEMPORARY bridge: cloud/evaluation is being written by another helper; it is loaded at run time
 * so the CLI keeps loading until it lands (a static import of a missing module would break every
 * `loupe` command). Replace with a static import once it exists.
 */
export async function evaluateRun(model: string, data: string, split: string): Promise<TestMetrics> {
  const specifier = ['..', 'evaluation', 'index.js'].join('/');
  let evaluate: Evaluate | undefined;
  try {
    evaluate = ((await import(specifier)) as { evaluate?: Evaluate }).evaluate;
  } catch (e) {
    throw new LoupeError('EVALUATOR_MISSING', `loupe's evaluator (cloud/evaluation) is not available yet (${(e as Error).message}); rerun with --no-eval`, { input: model });
  }
  if (!evaluate) throw new LoupeError('EVALUATOR_MISSING', 'cloud/evaluation exports no evaluate()', { input: model });
  const r = await evaluate({ model, data, split });
  return { map50: r.map50, map50_95: r.map50_95, precision: r.precision, recall: r.recall, images: r.images, instances: r.instances, evaluator: 'loupe eval', split };
}
