import { LoupeError } from '../../lib/errors.js';
import { GATE_METRICS, type GateMetric } from './decide.js';

/**
 * Which file of a challenger the fleet runs, on its own so it can be read and tested in one place:
 * its int8 quantization when the int8 file's score on the gate's split is at least the fp32
 * export's minus `tolerance` (default 0.015 mAP50), else the fp32 export. Both are scored by the
 * same evaluator (loupe's detector) on the same split; scores are compared as measured. The gate
 * then compares the chosen file with the champion's deployed file: the fleet's models as they run.
 */
export interface Int8Config {
  /** Quantize every challenger (`loupe quantize`) and let this rule choose. */
  enabled: boolean;
  tolerance: number;
  metric: GateMetric;
  /** Calibration images from the snapshot's train split. */
  calibrationImages: number;
}

export const DEFAULT_INT8: Int8Config = { enabled: true, tolerance: 0.015, metric: 'map50', calibrationImages: 64 };

export interface PrecisionChoice {
  deployed: 'fp32' | 'int8';
  metric: GateMetric;
  fp32: number;
  int8: number | null;
  tolerance: number;
  reason: string;
}

const f = (x: number) => x.toFixed(4);

export function choosePrecision(cfg: Pick<Int8Config, 'tolerance' | 'metric'>, fp32: number, int8: number | null): PrecisionChoice {
  if (!(GATE_METRICS as readonly string[]).includes(cfg.metric))
    throw new LoupeError('GATE_BAD_CONFIG', `metric must be one of ${GATE_METRICS.join(', ')}, got "${cfg.metric}"`, {
      input: 'int8.metric',
    });
  if (!Number.isFinite(cfg.tolerance) || cfg.tolerance < 0 || cfg.tolerance > 1)
    throw new LoupeError('GATE_BAD_CONFIG', `tolerance must be a number in [0, 1], got ${String(cfg.tolerance)}`, {
      input: 'int8.tolerance',
    });
  const m = cfg.metric;
  const base = { metric: m, fp32, int8, tolerance: cfg.tolerance };
  if (int8 === null) return { ...base, deployed: 'fp32', reason: 'no int8 model (quantization off)' };
  const floor = fp32 - cfg.tolerance;
  return int8 >= floor
    ? { ...base, deployed: 'int8', reason: `int8 ${m} ${f(int8)} >= fp32 ${f(fp32)} - tolerance ${f(cfg.tolerance)}` }
    : {
        ...base,
        deployed: 'fp32',
        reason: `int8 ${m} ${f(int8)} < fp32 ${f(fp32)} - tolerance ${f(cfg.tolerance)} = ${f(floor)}: the fleet keeps fp32`,
      };
}
