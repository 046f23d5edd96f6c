import { readdirSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { datasetDir } from '../../lib/paths.js';
import { Detector } from '../../components/detector/detector.js';
import { evaluate } from '../../cloud/evaluation/index.js';
import { yoloDataset } from '../helpers/datasets.js';
import { fixtureModel } from '../helpers/models.js';
import { UltralyticsWorker, median } from './ultralytics-worker.js';
import type { BenchEntry, BenchReport } from './run.js';

/**
 * Bench 01 (int8): what `loupe quantize` buys on the device.
 *  - images/s of loupe's detector (decode, letterbox, inference, NMS; pipelined as `loupe detect`
 *    and the inference component run it) on the shipped fp32 model and on its int8 quantization,
 *    and of ultralytics `predict` on the fp32 ONNX, on the same metal-tags frames, in interleaved
 *    chunks with the order rotated every chunk; each ratio is the median over chunks of the ratio
 *    between neighbouring measurements, so background load hits both sides alike. Fastest single
 *    frames (best-of-N) are reported too.
 *  - mAP50 of fp32 vs int8 from loupe's evaluator on the shipped model's test split (metal-tags)
 *    and on NEU-DET's test split (test/fixtures/models/neu-det.onnx).
 * Targets: int8 >= 1.8x fp32 images/s and >= 2x ultralytics predict; mAP50 loss <= 0.015 on both.
 */
const CHUNK = Number(process.env.LOUPE_BENCH_CHUNK ?? 8);
const CHUNKS = Number(process.env.LOUPE_BENCH_CHUNKS ?? 10);

async function pipelined(det: Detector, files: string[]): Promise<number> {
  const t0 = performance.now();
  let next = det.detect(files[0]!);
  for (let i = 0; i < files.length; i++) {
    const cur = next;
    if (i + 1 < files.length) next = det.detect(files[i + 1]!);
    await cur;
  }
  return (performance.now() - t0) / files.length;
}

async function bestFrame(det: Detector, files: string[]): Promise<number> {
  let best = Infinity;
  for (const f of files) {
    const t0 = performance.now();
    await det.detect(f);
    best = Math.min(best, performance.now() - t0);
  }
  return best;
}

const entry: BenchEntry = {
  name: '01-detect-int8',
  async run(): Promise<BenchReport> {
    const fp32 = await fixtureModel('metal-tags');
    const int8 = await fixtureModel('metal-tags-int8');
    const dir = join(datasetDir('metal-tags'), 'bad');
    const all = readdirSync(dir)
      .sort()
      .map((f) => join(dir, f));
    const load0 = loadavg()[0];
    const dets = {
      fp32: await Detector.load(fp32),
      int8: await Detector.load(int8),
      fp32Spinning: await Detector.load(fp32, { spinning: true }),
      int8Spinning: await Detector.load(int8, { spinning: true }),
    };
    const py = await UltralyticsWorker.start(fp32);
    const ms: Record<'fp32' | 'int8' | 'fp32Spinning' | 'int8Spinning' | 'ultralytics', number[]> = {
      fp32: [],
      int8: [],
      fp32Spinning: [],
      int8Spinning: [],
      ultralytics: [],
    };
    const best = { fp32: Infinity, int8: Infinity, ultralytics: Infinity };
    try {
      for (const d of Object.values(dets)) {
        await d.warmup();
        for (const f of all.slice(0, 3)) await d.detect(f);
      }
      await py.run(all.slice(0, 3));
      for (let c = 0; c < CHUNKS; c++) {
        const files = Array.from({ length: CHUNK }, (_, i) => all[(c * CHUNK + i) % all.length]!);
        const steps: Array<() => Promise<void>> = [
          async () => void ms.fp32.push(await pipelined(dets.fp32, files)),
          async () => void ms.int8.push(await pipelined(dets.int8, files)),
          async () => void ms.fp32Spinning.push(await pipelined(dets.fp32Spinning, files)),
          async () => void ms.int8Spinning.push(await pipelined(dets.int8Spinning, files)),
          async () => {
            const u = await py.run(files);
            ms.ultralytics.push(u.ms);
            best.ultralytics = Math.min(best.ultralytics, u.min);
          },
          async () => {
            best.fp32 = Math.min(best.fp32, await bestFrame(dets.fp32, files.slice(0, 2)));
            best.int8 = Math.min(best.int8, await bestFrame(dets.int8, files.slice(0, 2)));
          },
        ];
        for (let k = 0; k < steps.length; k++) await steps[(k + c) % steps.length]!();
        process.stderr.write(
          `bench 01-detect-int8 chunk ${c + 1}/${CHUNKS}: loupe fp32 ${ms.fp32[c]!.toFixed(1)}, int8 ${ms.int8[c]!.toFixed(1)} ms (spinning: ${ms.fp32Spinning[c]!.toFixed(1)} / ${ms.int8Spinning[c]!.toFixed(1)}), ultralytics fp32 ${ms.ultralytics[c]!.toFixed(1)} ms per image, load ${loadavg()[0].toFixed(1)}\n`,
        );
      }
    } finally {
      await py.stop();
      for (const d of Object.values(dets)) await d.dispose();
    }

    // Accuracy: the same evaluator the gate uses, fp32 vs int8, on both data sets' test splits.
    const accuracy: Record<string, { fp32: number; int8: number; loss: number; fp32_95: number; int8_95: number; images: number }> = {};
    for (const [ds, pair] of [
      ['metal-tags', ['metal-tags', 'metal-tags-int8']],
      ['neu-det', ['neu-det', 'neu-det-int8']],
    ] as const) {
      const data = await yoloDataset(ds);
      const a = await evaluate({ model: await fixtureModel(pair[0]), data, split: 'test' });
      const b = await evaluate({ model: await fixtureModel(pair[1]), data, split: 'test' });
      accuracy[ds] = {
        fp32: +a.map50.toFixed(4),
        int8: +b.map50.toFixed(4),
        loss: +(a.map50 - b.map50).toFixed(4),
        fp32_95: +a.map50_95.toFixed(4),
        int8_95: +b.map50_95.toFixed(4),
        images: a.images,
      };
    }

    const ips = (x: number) => +(1000 / x).toFixed(2);
    const r3 = (x: number) => +x.toFixed(3);
    const pairwise = (slow: number[], fast: number[]) => median(slow.map((v, i) => v / fast[i]!)); // images/s of `fast` relative to `slow`
    const int8VsFp32 = pairwise(ms.fp32, ms.int8);
    const int8VsUltra = pairwise(ms.ultralytics, ms.int8);
    const table = {
      loupeFp32: { msPerImage: r3(median(ms.fp32)), imagesPerS: ips(median(ms.fp32)), bestFrameMs: r3(best.fp32), chunks: ms.fp32.map(r3) },
      loupeInt8: { msPerImage: r3(median(ms.int8)), imagesPerS: ips(median(ms.int8)), bestFrameMs: r3(best.int8), chunks: ms.int8.map(r3) },
      ultralyticsPredictFp32: {
        msPerImage: r3(median(ms.ultralytics)),
        imagesPerS: ips(median(ms.ultralytics)),
        bestFrameMs: r3(best.ultralytics),
        chunks: ms.ultralytics.map(r3),
      },
      quietHostSpinning: {
        note: "the same detectors with onnxruntime's spin-waiting threads on (loupe's default is off: it costs up to 2x when other work shares the cores)",
        loupeFp32: { msPerImage: r3(median(ms.fp32Spinning)), imagesPerS: ips(median(ms.fp32Spinning)) },
        loupeInt8: { msPerImage: r3(median(ms.int8Spinning)), imagesPerS: ips(median(ms.int8Spinning)) },
        spinningVsNotFp32: r3(pairwise(ms.fp32, ms.fp32Spinning)),
        spinningVsNotInt8: r3(pairwise(ms.int8, ms.int8Spinning)),
      },
    };
    return {
      entry: '01-detect-int8',
      machine: {
        models: { fp32, int8 },
        images: `${CHUNK * CHUNKS} frames: metal-tags 450x300 JPEGs, in ${CHUNKS} interleaved chunks of ${CHUNK}`,
        loadAverage1m: { start: +load0.toFixed(2), end: +loadavg()[0].toFixed(2) },
      },
      results: {
        ...table,
        ratios: {
          int8VsFp32ImagesPerS: r3(int8VsFp32),
          int8VsUltralyticsImagesPerS: r3(int8VsUltra),
          fp32VsUltralyticsImagesPerS: r3(pairwise(ms.ultralytics, ms.fp32)),
          bestFrameInt8VsFp32: r3(best.fp32 / best.int8),
          bestFrameInt8VsUltralytics: r3(best.ultralytics / best.int8),
        },
        map50: accuracy,
      },
      targets: [
        {
          name: 'loupe int8 images/s relative to loupe fp32 (interleaved medians)',
          value: r3(int8VsFp32),
          target: '>= 1.8',
          met: int8VsFp32 >= 1.8,
        },
        {
          name: 'loupe int8 images/s relative to ultralytics predict fp32 (interleaved medians)',
          value: r3(int8VsUltra),
          target: '>= 2',
          met: int8VsUltra >= 2,
        },
        {
          name: 'mAP50 loss int8 vs fp32, metal-tags test split',
          value: accuracy['metal-tags']!.loss,
          target: '<= 0.015',
          met: accuracy['metal-tags']!.loss <= 0.015,
        },
        {
          name: 'mAP50 loss int8 vs fp32, NEU-DET test split',
          value: accuracy['neu-det']!.loss,
          target: '<= 0.015',
          met: accuracy['neu-det']!.loss <= 0.015,
        },
      ],
    };
  },
};

export default entry;
