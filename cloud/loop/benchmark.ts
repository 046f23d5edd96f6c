import type { Logger } from 'pino';
import { LoupeError } from '../../lib/errors.js';
import { importFeatureStore } from '../dataset/featurestore.js';
import { splitOf } from '../dataset/split.js';
import { writeYoloDataset } from '../dataset/yolo-write.js';
import type { EvaluateFn } from '../gate/gate.js';
import { loupeEvaluator } from '../gate/evaluator.js';
import type { EvalSummary } from '../gate/report.js';

/**
 * A fixed held-out benchmark set beside the gate's own split: images no model of the run has
 * seen (left out of the label history and never shown by the camera), scored with loupe's
 * evaluator (the gate's) for the champion and the challenger alike. The gate's split grows and
 * changes with every snapshot; this one stays the same, so gains can be compared across runs.
 *
 *   const b = await writeBenchmarkSet({ labelsCsv, imagesDir, ids, outDir })
 *   const s = await scoreOnBenchmark(b.dataYaml, onnx)   // { images, instances, map50, map50_95, ... }
 */
export interface BenchmarkSet {
  dataYaml: string;
  images: number;
  boxes: number;
}

/** The evaluator's summary without the per-class rows (one class here). */
export type BenchmarkScore = Omit<EvalSummary, 'per_class'>;

/**
 * A YOLO folder whose test split holds exactly the images `ids` names, with their latest
 * approved labels from the feature-store CSV. The folder's split comes from loupe's split rule, so
 * every id must fall in the test split by that rule (true of a model card's testImages); an id
 * that does not, or one without an image or label, is refused by name.
 */
export async function writeBenchmarkSet(o: {
  labelsCsv: string;
  imagesDir: string;
  ids: string[];
  outDir: string;
  log?: Logger;
}): Promise<BenchmarkSet> {
  if (o.ids.length === 0) throw new LoupeError('BENCHMARK_EMPTY', 'the benchmark set names no images', { input: o.labelsCsv });
  const all = await importFeatureStore(o.labelsCsv, { imagesDir: o.imagesDir, log: o.log });
  const byId = new Map(all.images.map((i) => [i.id, i]));
  const images = o.ids.map((id) => {
    const img = byId.get(id);
    if (!img)
      throw new LoupeError('BENCHMARK_MISSING', `benchmark image ${id} has no approved label with an image in ${o.imagesDir}`, {
        input: o.labelsCsv,
      });
    const split = splitOf(id);
    if (split !== 'test')
      throw new LoupeError('BENCHMARK_SPLIT', `benchmark image ${id} falls in the ${split} split by loupe's rule, not test`, { input: id });
    return img;
  });
  const w = await writeYoloDataset(all.names, images, o.outDir, { overwrite: true, log: o.log });
  return { dataYaml: w.yamlPath, images: images.length, boxes: images.reduce((n, i) => n + i.boxes.length, 0) };
}

export async function scoreOnBenchmark(dataYaml: string, onnx: string, evaluate: EvaluateFn = loupeEvaluator): Promise<BenchmarkScore> {
  const { summary } = await evaluate(onnx, dataYaml, 'test');
  const { per_class: _perClass, ...score } = summary;
  return score;
}
