import { readdirSync, statSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { extname, join, resolve } from 'node:path';
import type { Logger } from 'pino';
import { LoupeError } from '../../lib/errors.js';
import { Progress } from '../../lib/progress.js';
import type { Detector } from '../../components/detector/detector.js';
import { IMAGE_EXTENSIONS, readYoloDataset } from '../dataset/yolo-read.js';

/**
 * The calibration set of an int8 quantization: images from a data set's train split (a
 * data.yaml) or a folder of images, chosen deterministically (sorted by path, then evenly spaced
 * when there are more than asked for), and turned into the exact input tensors loupe's detector
 * feeds the model (Detector.inputTensor: decode, EXIF orientation, letterbox, /255, CHW).
 */
export interface CalibrationSet {
  source: string;
  kind: 'dataset' | 'folder';
  /** Images available before sampling. */
  available: number;
  files: string[];
}

export const DEFAULT_CALIBRATION_IMAGES = 64;

function imagesIn(dir: string): string[] {
  return readdirSync(dir)
    .filter((n) => IMAGE_EXTENSIONS.has(extname(n).toLowerCase()))
    .map((n) => join(dir, n))
    .filter((f) => {
      try {
        return statSync(f).isFile();
      } catch {
        return false;
      }
    });
}

/** `count` of `files` (already sorted), evenly spaced so the whole range is represented. */
export function evenlySpaced<T>(files: T[], count: number): T[] {
  if (files.length <= count) return files;
  return Array.from({ length: count }, (_, i) => files[Math.floor((i * files.length) / count)]!);
}

export function calibrationSet(calib: string, count = DEFAULT_CALIBRATION_IMAGES): CalibrationSet {
  if (!Number.isInteger(count) || count < 1)
    throw new LoupeError('QUANTIZE_BAD_OPTION', `must be a positive integer, got ${count}`, { input: '--images' });
  const abs = resolve(calib);
  let st;
  try {
    st = statSync(abs);
  } catch {
    throw new LoupeError('QUANTIZE_BAD_CALIB', 'calibration source not found (give a data.yaml or a folder of images)', { input: calib });
  }
  let files: string[];
  let kind: CalibrationSet['kind'];
  if (st.isDirectory()) {
    kind = 'folder';
    files = imagesIn(abs);
    if (files.length === 0)
      throw new LoupeError('QUANTIZE_NO_IMAGES', `the folder holds no images (${[...IMAGE_EXTENSIONS].join(', ')})`, { input: calib });
  } else if (/\.ya?ml$/i.test(abs)) {
    kind = 'dataset';
    const ds = readYoloDataset(abs);
    files = (ds.splits.train ?? []).map((i) => i.imagePath);
    if (files.length === 0)
      throw new LoupeError('QUANTIZE_NO_IMAGES', 'the data set has no train images to calibrate on', { input: calib });
  } else {
    throw new LoupeError('QUANTIZE_BAD_CALIB', 'expected a data.yaml (its train split is used) or a folder of images', { input: calib });
  }
  files.sort();
  return { source: abs, kind, available: files.length, files: evenlySpaced(files, count) };
}

/**
 * Write each calibration image's input tensor as raw little-endian float32 into `dir`, with
 * manifest.json ({files, dims}) for quantize.py. An unreadable image stops it, named.
 */
export async function writeCalibrationTensors(
  det: Detector,
  set: CalibrationSet,
  dir: string,
  log?: Logger,
  progressStream?: NodeJS.WriteStream,
): Promise<void> {
  if (det.info.fp16)
    throw new LoupeError('QUANTIZE_BAD_MODEL', 'the model is a float16 export; quantize the float32 export', { input: det.info.path });
  await mkdir(dir, { recursive: true });
  const progress = new Progress('quantize: preprocess', set.files.length, log, { logEveryMs: 10_000, stream: progressStream });
  const names: string[] = [];
  const dims: number[][] = [];
  for (let i = 0; i < set.files.length; i++) {
    const t = await det.inputTensor(set.files[i]!);
    const name = `${String(i).padStart(5, '0')}.f32`;
    const data = t.data as Float32Array;
    await writeFile(join(dir, name), new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    names.push(name);
    dims.push(t.dims);
    progress.update(i + 1);
  }
  progress.finish();
  await writeFile(join(dir, 'manifest.json'), JSON.stringify({ files: names, dims, images: set.files }));
}
