import { evaluate, type EvalResult } from '../evaluation/index.js';
import type { EvaluateFn } from './gate.js';
import type { EvalSummary, PrCurve } from './report.js';

/**
 * The gate's evaluator: loupe's own (cloud/evaluation, the detector code the devices run), so
 * the numbers the gate compares are the numbers the fleet would produce. Its result becomes the
 * gate's summary and per-class PR curves (precision over ultralytics' 1000-point recall grid).
 */
export function toGateScore(r: EvalResult): { summary: EvalSummary; curves: PrCurve[]; images?: EvalResult['imagesDetail'] } {
  const summary: EvalSummary = {
    images: r.images,
    instances: r.instances,
    map50: r.map50,
    map50_95: r.map50_95,
    precision: r.precision,
    recall: r.recall,
    per_class: r.per_class.map((p) => ({ cls: p.cls, name: p.name, instances: p.instances, ap50: p.ap50, ap50_95: p.ap50_95 })),
  };
  const curves: PrCurve[] = r.prCurve.classes
    .filter((c) => c.precision !== null)
    .map((c) => ({ cls: c.cls, name: c.name, recall: r.prCurve.grid, precision: c.precision!, ap50: c.ap50 }));
  return { summary, curves, ...(r.imagesDetail ? { images: r.imagesDetail } : {}) };
}

export const loupeEvaluator: EvaluateFn = async (model, data, split) =>
  toGateScore(await evaluate({ model, data, split, keepImages: true }));
