import type { Command } from 'commander';
import { createLogger } from '../../lib/log.js';
import { parsePositiveInt } from '../../components/detector/options.js';
import { DEFAULT_CALIBRATION_IMAGES } from '../../cloud/quantize/calibration.js';
import { quantizeModel } from '../../cloud/quantize/quantize.js';

interface QuantizeCliOptions {
  model: string;
  calib: string;
  out?: string;
  images: number;
  json?: boolean;
}

/**
 * `loupe quantize --model M.onnx --calib DATA.yaml|FOLDER --out M.int8.onnx`: onnxruntime static
 * quantization (QDQ, int8 per-channel weights, uint8 activations, the detection head's decode kept
 * in float) calibrated on images preprocessed exactly as loupe's detector does. Progress on stderr;
 * a summary line (or one JSON object with --json) on stdout.
 */
export function register(program: Command): void {
  program
    .command('quantize')
    .description('quantize a YOLOv8 ONNX export to int8 (QDQ) for faster CPU inference on devices')
    .requiredOption('--model <onnx>', 'float32 ultralytics YOLOv8 detection export (.onnx)')
    .requiredOption('--calib <data>', 'calibration images: a YOLO data.yaml (its train split) or a folder of images')
    .option('--out <onnx>', 'where to write the int8 model (default: <model>.int8.onnx beside the model)')
    .option('--images <n>', 'calibration images to use (evenly spaced over the sorted list)', parsePositiveInt, DEFAULT_CALIBRATION_IMAGES)
    .option('--json', 'print the result as one JSON object')
    .action(async (o: QuantizeCliOptions) => {
      const log = createLogger('quantize', { stream: 'stderr', level: process.env.LOUPE_LOG_LEVEL ?? 'info' });
      const out = o.out ?? o.model.replace(/(\.onnx)?$/i, '.int8.onnx');
      const r = await quantizeModel({ model: o.model, calib: o.calib, out, images: o.images, log, progressStream: process.stderr });
      if (o.json) {
        process.stdout.write(`${JSON.stringify(r)}\n`);
        return;
      }
      const mb = (n: number) => (n / 1e6).toFixed(1);
      process.stdout.write(
        `${r.out}: int8 (QDQ) model, ${mb(r.bytes)} MB (fp32 ${mb(r.sourceBytes)} MB), sha256 ${r.sha256}\n` +
          `  calibrated on ${r.calibration.images} of ${r.calibration.available} images from ${r.calibration.source}; ${r.floatNodes} nodes kept in float (the head's decode); ${r.seconds} s\n`,
      );
    });
}
