import { join } from 'node:path';
import type { Logger } from 'pino';
import { writeFileAtomic, sha256File } from '../../lib/fsutil.js';
import { silentLogger } from '../../lib/log.js';
import { decideGate, validateGateConfig, type GateConfig } from './decide.js';
import { differencePictures, renderGateHtml, type EvalSummary, type GateReport, type ModelScore, type PrCurve } from './report.js';
import { imageDifferences, type ImageDifference } from './differences.js';
import type { ImageDetail } from '../evaluation/evaluate.js';
import type { GateSummary } from '../registry/types.js';

/**
 * The quality gate: challenger and champion scored by the SAME evaluator on the SAME split of
 * the SAME data set (the snapshot the challenger was trained on; its test split never feeds
 * training), then `decideGate`. The evaluator is passed in (`loupeEvaluator` in evaluator.ts
 * wraps cloud/evaluation) so this module holds only the comparison.
 *
 *   const report = await runGate({ challenger: {ref, onnx}, champion: {ref, onnx} | null, data, config, evaluate });
 *   await writeGateReport(report, dir)   // gate.json + gate.html
 *   gateSummary(report, paths.json)      // what the registry keeps
 */
export type EvaluateFn = (
  model: string,
  data: string,
  split: GateConfig['split'],
) => Promise<{ summary: EvalSummary; curves: PrCurve[]; images?: ImageDetail[] }>;

export interface GateInput {
  challenger: { ref: string | null; onnx: string };
  champion: { ref: string; onnx: string } | null;
  data: string;
  datasetVersion?: string | null;
  config?: Partial<GateConfig>;
  evaluate: EvaluateFn;
  log?: Logger;
}

async function score(
  evaluate: EvaluateFn,
  ref: string | null,
  model: string,
  data: string,
  split: GateConfig['split'],
): Promise<{ score: ModelScore; images?: ImageDetail[] }> {
  const t0 = performance.now();
  const { summary, curves, images } = await evaluate(model, data, split);
  // The digest ties the report to the bytes scored (registering another file with it is refused).
  return {
    score: { ref, model, sha256: await sha256File(model), eval: summary, curves, seconds: (performance.now() - t0) / 1000 },
    images,
  };
}

export async function runGate(input: GateInput): Promise<GateReport> {
  const config = validateGateConfig(input.config ?? {});
  const log = input.log ?? silentLogger;
  log.info(
    { challenger: input.challenger.ref ?? input.challenger.onnx, champion: input.champion?.ref ?? null, split: config.split },
    'gate: scoring challenger',
  );
  const ch = await score(input.evaluate, input.challenger.ref, input.challenger.onnx, input.data, config.split);
  const challenger = ch.score;
  let champion: ModelScore | null = null;
  let differences: ImageDifference[] | undefined;
  if (input.champion) {
    log.info({ champion: input.champion.ref }, 'gate: scoring champion on the same split');
    const cp = await score(input.evaluate, input.champion.ref, input.champion.onnx, input.data, config.split);
    champion = cp.score;
    // Per-image differences when the evaluator kept its images (loupe's does).
    if (ch.images && cp.images) differences = imageDifferences(ch.images, cp.images);
  }
  const decision = decideGate(config, challenger.eval[config.metric], champion ? champion.eval[config.metric] : null);
  const report: GateReport = {
    passed: decision.passed,
    reasons: decision.reasons,
    config,
    data: input.data,
    datasetVersion: input.datasetVersion ?? null,
    challenger,
    champion,
    ...(differences ? { differences } : {}),
    createdAt: new Date().toISOString(),
  };
  log.info({ passed: report.passed, reasons: report.reasons }, `gate: ${report.passed ? 'passed' : 'rejected'}`);
  return report;
}

export async function writeGateReport(report: GateReport, dir: string): Promise<{ json: string; html: string }> {
  const json = join(dir, 'gate.json');
  const html = join(dir, 'gate.html');
  await writeFileAtomic(json, JSON.stringify(report, null, 2) + '\n');
  await writeFileAtomic(html, renderGateHtml(report, await differencePictures(report)));
  return { json, html };
}

export function gateSummary(report: GateReport, reportPath?: string): GateSummary {
  const m = report.config.metric;
  return {
    passed: report.passed,
    metric: m,
    challenger: report.challenger.eval[m],
    champion: report.champion ? report.champion.eval[m] : null,
    championRef: report.champion?.ref ?? null,
    threshold: report.config.threshold,
    tolerance: report.config.tolerance,
    reasons: report.reasons,
    ...(report.fleetPrecision ? { fleetPrecision: report.fleetPrecision.deployed } : {}),
    ...(reportPath ? { reportPath } : {}),
  };
}
