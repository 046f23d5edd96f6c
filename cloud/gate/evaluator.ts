import { LoupeError } from '../../components/common/errors.js';
import type { EvaluateFn } from './gate.js';
import type { EvalSummary, PrCurve } from './report.js';

/**
 * The gate's evaluator: loupe's own (cloud/evaluation, the detector code the devices run), so
 * the numbers the gate compares are the numbers the fleet would produce. Its result is turned
 * into the gate's summary and per-class PR curves.
 *
 * Loaded at run time while cloud/evaluation is still being written by another helper: a static
 * import of a module that is not there would stop every `loupe` command from loading.
 */
type Raw = Record<string, unknown>;

function curvesOf(r: Raw, names: string[]): PrCurve[] {
  if (Array.isArray(r.curves)) return r.curves as PrCurve[];
  // ultralytics' layout: one recall grid (px) and precision per class (py[class][i]).
  for (const k of ['pr', 'prCurve', 'pr_curve', 'curve']) {
    const c = r[k] as Raw | undefined;
    if (!c || typeof c !== 'object') continue;
    const recall = (c.recall ?? c.px) as number[] | undefined;
    const prec = (c.precision ?? c.py) as number[][] | undefined;
    if (Array.isArray(recall) && Array.isArray(prec)) {
      const classes = (c.classes ?? c.cls) as number[] | undefined;
      return prec.map((p, i) => {
        const cls = classes?.[i] ?? i;
        return { cls, name: names[cls] ?? String(cls), recall, precision: p };
      });
    }
    if (Array.isArray(c)) return c as PrCurve[];
  }
  return [];
}

export function toGateScore(r: Raw): { summary: EvalSummary; curves: PrCurve[] } {
  const perClass = (r.per_class ?? []) as EvalSummary['per_class'];
  const names = perClass.map((p) => p.name);
  const summary: EvalSummary = {
    images: Number(r.images),
    instances: Number(r.instances),
    map50: Number(r.map50),
    map50_95: Number(r.map50_95),
    precision: Number(r.precision),
    recall: Number(r.recall),
    per_class: perClass.map((p) => ({ cls: p.cls, name: p.name, instances: p.instances, ap50: p.ap50, ap50_95: p.ap50_95 })),
  };
  const curves = curvesOf(r, names).map((c) => ({ ...c, ap50: c.ap50 ?? perClass.find((p) => p.cls === c.cls)?.ap50 }));
  return { summary, curves };
}

export const loupeEvaluator: EvaluateFn = async (model, data, split) => {
  const specifier = ['..', 'evaluation', 'index.js'].join('/');
  let mod: { evaluate?: (o: { model: string; data: string; split?: string }) => Promise<Raw> };
  try {
    mod = (await import(specifier)) as typeof mod;
  } catch (e) {
    throw new LoupeError('EVALUATOR_MISSING', `loupe's evaluator (cloud/evaluation) is not available (${(e as Error).message})`, { input: model });
  }
  if (!mod.evaluate) throw new LoupeError('EVALUATOR_MISSING', 'cloud/evaluation exports no evaluate()', { input: model });
  return toGateScore(await mod.evaluate({ model, data, split }));
};
