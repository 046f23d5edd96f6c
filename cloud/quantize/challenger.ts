import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { sha256File } from '../../lib/fsutil.js';
import type { Int8Config, PrecisionChoice } from '../gate/precision.js';
import type { ModelScore } from '../gate/report.js';
import type { ModelCard, TestMetrics } from '../training/card.js';
import { quantizationRecord, quantizeModel } from './quantize.js';

/**
 * The loop's int8 part, kept out of the step code: quantize a freshly trained challenger
 * (calibrated on the snapshot's train split), and turn the scores and the precision choice into
 * what the model card and the registry record. The step functions only call these.
 */
export interface QuantizeStepOutput extends Record<string, unknown> {
  enabled: boolean;
  onnx?: string;
  sha256?: string;
  bytes?: number;
  calibrationImages?: number;
  seconds?: number;
  reused?: boolean;
}

/**
 * `<trainDir>/model.int8.onnx` from `<trainDir>/model.onnx`. A resumed run finds the file an earlier
 * attempt wrote and keeps it when the quantizer's record names the same source and calibration
 * count (quantization is deterministic, so redoing it would give the same bytes).
 */
export async function quantizeChallenger(o: {
  onnx: string;
  dataYaml: string;
  dir: string;
  config: Int8Config;
  log: Logger;
  progressStream?: NodeJS.WriteStream;
}): Promise<QuantizeStepOutput> {
  if (!o.config.enabled) return { enabled: false };
  const out = join(o.dir, 'model.int8.onnx');
  const source = await sha256File(o.onnx);
  if (existsSync(out)) {
    // no readable record of an earlier attempt: quantize again rather than reuse it
    const rec = await quantizationRecord(out).catch(() => undefined);
    const calib = rec?.calibration as { images?: number } | undefined;
    if (rec?.source_sha256 === source && calib?.images !== undefined && calib.images <= o.config.calibrationImages) {
      o.log.info({ out }, 'int8 model of an earlier attempt is complete; reusing it');
      return { enabled: true, onnx: out, sha256: await sha256File(out), calibrationImages: calib.images, reused: true };
    }
  }
  const r = await quantizeModel({
    model: o.onnx,
    calib: o.dataYaml,
    out,
    images: o.config.calibrationImages,
    log: o.log,
    progressStream: o.progressStream,
  });
  return {
    enabled: true,
    onnx: r.out,
    sha256: r.sha256,
    bytes: r.bytes,
    calibrationImages: r.calibration.images,
    seconds: r.seconds,
    reused: false,
  };
}

function testMetrics(s: ModelScore, split: string): TestMetrics {
  const e = s.eval;
  return {
    map50: e.map50,
    map50_95: e.map50_95,
    precision: e.precision,
    recall: e.recall,
    evaluator: 'loupe eval',
    split,
    images: e.images,
    instances: e.instances,
  };
}

/** The model card's int8 fields: the file, its scores, and which file the fleet runs and why. */
export async function int8CardFields(
  q: QuantizeStepOutput | undefined,
  int8: ModelScore | null,
  choice: PrecisionChoice,
  split: string,
): Promise<{ onnxInt8?: string; int8Test?: TestMetrics | null; fleetPrecision: NonNullable<ModelCard['fleetPrecision']> }> {
  const rec = q?.onnx ? await quantizationRecord(q.onnx) : undefined;
  return {
    ...(q?.onnx ? { onnxInt8: q.onnx } : {}),
    ...(int8 ? { int8Test: testMetrics(int8, split) } : {}),
    fleetPrecision: {
      deployed: choice.deployed,
      metric: choice.metric,
      tolerance: choice.tolerance,
      reason: choice.reason,
      ...(rec ? { quantization: rec } : {}),
    },
  };
}

/** The int8 file's scores as registry metrics (`int8_map50`, ...). */
export function int8Metrics(
  int8: { map50: number; map50_95: number; precision: number; recall: number } | null | undefined,
): Record<string, number> {
  if (!int8) return {};
  return { int8_map50: int8.map50, int8_map50_95: int8.map50_95, int8_precision: int8.precision, int8_recall: int8.recall };
}
