import { readdirSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { datasetDir } from '../../lib/paths.js';
import { decodeImage } from '../../components/detector/decode.js';
import { Detector, detectorSessionOptions } from '../../components/detector/detector.js';
import { inputPlan, TensorWriter } from '../../components/detector/letterbox.js';
import { fixtureModel } from '../helpers/models.js';
import type { BenchEntry, BenchReport } from './run.js';
import { UltralyticsWorker, median } from './ultralytics-worker.js';

/**
 * Bench 01: loupe detect's pipeline (decode, letterbox, inference, NMS, scale back) against
 * - bare onnxruntime `session.run` on a ready input tensor (the limit: no decode, no pre/post), with
 *   onnxruntime's default spin-waiting worker threads (the quiet-host figure) and with spinning off
 *   (the detector's default since it costs up to 2x on a shared host); the limit per chunk is the
 *   faster of the two, and

 * - ultralytics `predict` with the same ONNX model on the same images (a resident Python process
 *   in the pinned venv, so its imports and model load are not timed).
 *
 * The machine is shared, so the three are measured in interleaved chunks of CHUNK images (bare,
 * loupe, ultralytics, in an order rotated every chunk), and each comparison is the median over chunks of the
 * ratio between neighbouring measurements: background load then hits both sides of a ratio alike.
 * loupe is measured two ways: serial latency (await each image) and pipelined throughput (the next
 * image decodes while the current one infers, as `loupe detect` and the inference component run).
 * Each variant's fastest single frame over all chunks (best-of-N) is also reported: the least
 * disturbed samples are the nearest to an idle core and give the steadier ratios. Targets: loupe's images/s within 8% of bare
 * session.run (ratio >= 0.92), and at least 1.2x ultralytics' images/s, checked both ways.
 */

const CHUNK = Number(process.env.LOUPE_BENCH_CHUNK ?? 8);
const CHUNKS = Number(process.env.LOUPE_BENCH_CHUNKS ?? 10);

const entry: BenchEntry = {
  name: '01-detect',
  async run(): Promise<BenchReport> {
    const model = await fixtureModel('metal-tags');
    const dir = join(datasetDir('metal-tags'), 'bad');
    const all = readdirSync(dir)
      .sort()
      .map((f) => join(dir, f));
    const load0 = loadavg()[0];

    // Bare sessions: spinning (onnxruntime's default) and not (the Detector's); one real image as the ready tensor.
    const session = await ort.InferenceSession.create(model, detectorSessionOptions({ spinning: true }));
    const sessionNoSpin = await ort.InferenceSession.create(model, detectorSessionOptions());
    const det = await Detector.load(model);
    const img = await decodeImage(all[0]);
    const plan = inputPlan(img.width, img.height, det.info, 'predict');
    const ready = new Float32Array(3 * plan.geometry.outW * plan.geometry.outH);
    new TensorWriter().write(img, plan.geometry, ready);
    const tensor = new ort.Tensor('float32', ready, [1, 3, plan.geometry.outH, plan.geometry.outW]);
    const feeds = { [det.info.inputName]: tensor };
    const py = await UltralyticsWorker.start(model);

    const bare: number[] = [];
    const bareSpin: number[] = [];
    const bareNoSpin: number[] = [];
    const serial: number[] = [];
    const piped: number[] = [];
    const ultra: number[] = [];
    const stages = { decodeMs: 0, preprocessMs: 0, inferenceMs: 0, postprocessMs: 0 };
    // Fastest single frame of each, over all chunks: the least disturbed samples on a shared box.
    const best = {
      bare: Infinity,
      total: Infinity,
      decode: Infinity,
      preprocess: Infinity,
      inference: Infinity,
      postprocess: Infinity,
      ultralytics: Infinity,
    };
    const uSpeed = { preprocess: 0, inference: 0, postprocess: 0 };
    try {
      // warm all three
      for (let i = 0; i < 3; i++) await session.run(feeds);
      for (let i = 0; i < 3; i++) await sessionNoSpin.run(feeds);
      await det.warmup();
      for (const f of all.slice(0, 3)) await det.detect(f);
      await py.run(all.slice(0, 3));

      for (let c = 0; c < CHUNKS; c++) {
        const files = Array.from({ length: CHUNK }, (_, i) => all[(c * CHUNK + i) % all.length]);
        const steps: Array<() => Promise<void>> = [
          async () => {
            const t0 = performance.now();
            for (let i = 0; i < CHUNK; i++) {
              const t1 = performance.now();
              await session.run(feeds);
              best.bare = Math.min(best.bare, performance.now() - t1);
            }
            bareSpin[c] = (performance.now() - t0) / CHUNK;
          },
          async () => {
            const t0 = performance.now();
            for (let i = 0; i < CHUNK; i++) {
              const t1 = performance.now();
              await sessionNoSpin.run(feeds);
              best.bare = Math.min(best.bare, performance.now() - t1);
            }
            bareNoSpin[c] = (performance.now() - t0) / CHUNK;
          },
          async () => {
            const t0 = performance.now();
            let next = det.detect(files[0]);
            for (let i = 0; i < CHUNK; i++) {
              const cur = next;
              if (i + 1 < CHUNK) next = det.detect(files[i + 1]);
              await cur;
            }
            piped[c] = (performance.now() - t0) / CHUNK;
          },
          async () => {
            const t0 = performance.now();
            for (const f of files) {
              const t1 = performance.now();
              const r = await det.detect(f);
              best.total = Math.min(best.total, performance.now() - t1);
              best.decode = Math.min(best.decode, r.timings.decodeMs);
              best.preprocess = Math.min(best.preprocess, r.timings.preprocessMs);
              best.inference = Math.min(best.inference, r.timings.inferenceMs);
              best.postprocess = Math.min(best.postprocess, r.timings.postprocessMs);
              for (const k of Object.keys(stages) as Array<keyof typeof stages>) stages[k] += r.timings[k] / (CHUNK * CHUNKS);
            }
            serial[c] = (performance.now() - t0) / CHUNK;
          },
          async () => {
            const u = await py.run(files);
            ultra[c] = u.ms;
            best.ultralytics = Math.min(best.ultralytics, u.min);
            for (const k of Object.keys(uSpeed) as Array<keyof typeof uSpeed>) uSpeed[k] += u.speed[k] / CHUNKS;
          },
        ];
        // Rotate the order every chunk so no variant always follows the same neighbour.
        for (let k = 0; k < steps.length; k++) await steps[(k + c) % steps.length]();
        bare[c] = Math.min(bareSpin[c], bareNoSpin[c]);
        process.stderr.write(
          `bench 01-detect chunk ${c + 1}/${CHUNKS}: bare ${bareSpin[c].toFixed(1)} (spinning) / ${bareNoSpin[c].toFixed(1)} ms, loupe ${piped[c].toFixed(1)} pipelined / ${serial[c].toFixed(1)} serial, ultralytics ${ultra[c].toFixed(1)} ms per image\n`,
        );
      }
    } finally {
      await py.stop();
      await det.dispose();
      await session.release();
      await sessionNoSpin.release();
    }

    const ips = (ms: number): number => +(1000 / ms).toFixed(2);
    const r2 = (x: number): number => +x.toFixed(2);
    const pairwise = (a: number[], b: number[]): number => median(a.map((v, i) => b[i] / v)); // images/s ratio a vs b
    const vsBare = pairwise(piped, bare); // (1/piped) / (1/bare)
    const serialVsBare = pairwise(serial, bare);
    const vsUltra = pairwise(piped, ultra);
    return {
      entry: '01-detect',
      machine: {
        onnxruntimeNode: ort.env.versions?.node ?? 'unknown',
        model:
          'models/metal-tags/model.onnx (YOLOv8n, 480x480, float32, onnxruntime CPU, default threads; loupe without spinning, its default)',
        images: `${CHUNK * CHUNKS} frames: metal-tags 450x300 JPEGs, in ${CHUNKS} interleaved chunks of ${CHUNK}`,
        loadAverage1m: { start: r2(load0), end: r2(loadavg()[0]) },
      },
      results: {
        bareSessionRun: {
          msPerImage: r2(median(bare)),
          imagesPerS: ips(median(bare)),
          note: 'per chunk the faster of the two bare sessions below',
          chunks: bare.map(r2),
        },
        bareSessionRunSpinning: {
          note: "onnxruntime's default spin-waiting threads: the quiet-host figure",
          msPerImage: r2(median(bareSpin)),
          imagesPerS: ips(median(bareSpin)),
          chunks: bareSpin.map(r2),
        },
        bareSessionRunNoSpinning: {
          note: "the detector's session options (no spinning)",
          msPerImage: r2(median(bareNoSpin)),
          imagesPerS: ips(median(bareNoSpin)),
          chunks: bareNoSpin.map(r2),
        },
        loupeDetectPipelined: { msPerImage: r2(median(piped)), imagesPerS: ips(median(piped)), chunks: piped.map(r2) },
        loupeDetectSerial: {
          msPerImage: r2(median(serial)),
          imagesPerS: ips(median(serial)),
          meanStagesMs: Object.fromEntries(Object.entries(stages).map(([k, v]) => [k, r2(v)])),
          chunks: serial.map(r2),
        },
        ultralyticsPredict: {
          msPerImage: r2(median(ultra)),
          imagesPerS: ips(median(ultra)),
          meanSpeedMs: Object.fromEntries(Object.entries(uSpeed).map(([k, v]) => [k, r2(v)])),
          chunks: ultra.map(r2),
        },
        bestOf: {
          samples: CHUNK * CHUNKS,
          bareSessionRunMs: r2(best.bare),
          loupeDetectMs: r2(best.total),
          loupeStagesMs: {
            decode: r2(best.decode),
            preprocess: r2(best.preprocess),
            inference: r2(best.inference),
            postprocess: r2(best.postprocess),
          },
          ultralyticsPredictMs: r2(best.ultralytics),
          loupeVsBareImagesPerS: +(best.bare / best.total).toFixed(3),
          loupeVsUltralyticsImagesPerS: +(best.ultralytics / best.total).toFixed(3),
        },
        ratios: {
          loupePipelinedVsBareImagesPerS: +vsBare.toFixed(3),
          loupeSerialVsBareImagesPerS: +serialVsBare.toFixed(3),
          loupePipelinedVsUltralyticsImagesPerS: +vsUltra.toFixed(3),
          loupeSerialVsUltralyticsImagesPerS: +pairwise(serial, ultra).toFixed(3),
        },
      },
      targets: [
        {
          name: 'best-of-N: loupe detect (serial, decode included) images/s relative to bare session.run',
          value: +(best.bare / best.total).toFixed(3),
          target: '>= 0.92 (within 8%)',
          met: best.bare / best.total >= 0.92,
        },
        {
          name: 'best-of-N: loupe detect images/s relative to ultralytics predict',
          value: +(best.ultralytics / best.total).toFixed(3),
          target: '>= 1.2',
          met: best.ultralytics / best.total >= 1.2,
        },
        {
          name: 'interleaved medians: loupe detect (pipelined) images/s relative to bare session.run',
          value: +vsBare.toFixed(3),
          target: '>= 0.92 (within 8%)',
          met: vsBare >= 0.92,
        },
        {
          name: 'interleaved medians: loupe detect (pipelined) images/s relative to ultralytics predict',
          value: +vsUltra.toFixed(3),
          target: '>= 1.2',
          met: vsUltra >= 1.2,
        },
      ],
    };
  },
};

export default entry;
