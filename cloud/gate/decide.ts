import { LoupeError } from '../../lib/errors.js';

/**
 * The gate's rule, on its own so it can be read and tested in one place: a challenger passes
 * only if its score on the metric is at least the absolute threshold AND at least the
 * champion's score on the same split minus the tolerance. With no champion (the first model)
 * only the threshold applies. Scores are compared as measured; no rounding.
 */
export const GATE_METRICS = ['map50', 'map50_95', 'precision', 'recall'] as const;
export type GateMetric = (typeof GATE_METRICS)[number];

export interface GateConfig {
  metric: GateMetric;
  threshold: number;
  tolerance: number;
  split: 'test' | 'val' | 'train';
}

export const DEFAULT_GATE: GateConfig = { metric: 'map50', threshold: 0.5, tolerance: 0.02, split: 'test' };

export function validateGateConfig(c: Partial<GateConfig>): GateConfig {
  const out = { ...DEFAULT_GATE, ...Object.fromEntries(Object.entries(c).filter(([, v]) => v !== undefined)) } as GateConfig;
  if (!(GATE_METRICS as readonly string[]).includes(out.metric)) {
    throw new LoupeError('GATE_BAD_CONFIG', `metric must be one of ${GATE_METRICS.join(', ')}, got "${out.metric}"`, {
      input: 'gate.metric',
    });
  }
  if (!Number.isFinite(out.threshold) || out.threshold < 0 || out.threshold > 1) {
    throw new LoupeError('GATE_BAD_CONFIG', `threshold must be a number in [0, 1], got ${String(out.threshold)}`, {
      input: 'gate.threshold',
    });
  }
  if (!Number.isFinite(out.tolerance) || out.tolerance < 0 || out.tolerance > 1) {
    throw new LoupeError('GATE_BAD_CONFIG', `tolerance must be a number in [0, 1], got ${String(out.tolerance)}`, {
      input: 'gate.tolerance',
    });
  }
  if (!['test', 'val', 'train'].includes(out.split)) {
    throw new LoupeError('GATE_BAD_CONFIG', `split must be test, val or train, got "${out.split}"`, { input: 'gate.split' });
  }
  return out;
}

export interface GateDecision {
  passed: boolean;
  reasons: string[];
}

const f = (x: number) => x.toFixed(4);

export function decideGate(config: GateConfig, challenger: number, champion: number | null): GateDecision {
  const reasons: string[] = [];
  let passed = true;
  const m = config.metric;
  if (challenger >= config.threshold) reasons.push(`${m} ${f(challenger)} >= threshold ${f(config.threshold)}`);
  else {
    passed = false;
    reasons.push(`${m} ${f(challenger)} < threshold ${f(config.threshold)}`);
  }
  if (champion === null) reasons.push('no champion to compare with');
  else {
    const floor = champion - config.tolerance;
    if (challenger >= floor) reasons.push(`${m} ${f(challenger)} >= champion ${f(champion)} - tolerance ${f(config.tolerance)}`);
    else {
      passed = false;
      reasons.push(`${m} ${f(challenger)} < champion ${f(champion)} - tolerance ${f(config.tolerance)} = ${f(floor)}`);
    }
  }
  return { passed, reasons };
}
