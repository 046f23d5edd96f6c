import { existsSync } from 'node:fs';
import { copyFile, mkdir, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { cacheDir, projectRoot } from '../../lib/paths.js';
import { sha256, sha256File } from '../../lib/fsutil.js';
import { quantizeModel, quantizeScript } from '../../cloud/quantize/quantize.js';
import { yoloDataset } from './datasets.js';
import { runPython } from './python.js';

/**
 * Models the tests run, all real ultralytics exports of briefly/fully trained YOLOv8n:
 *  - metal-tags: the shipped default model (models/metal-tags, 480 px, 1 class)
 *  - metal-tags-fp16: the same checkpoint exported with half=True (needs a GPU, so committed)
 *  - neu-det: a YOLOv8n trained on ../shared/datasets/neu-det (256 px, 6 classes)
 * Dynamic-shape and nms=True variants are exported here from the committed checkpoints with
 * the pinned ultralytics, and cached by checkpoint digest in ~/.cache/loupe/test-models.
 *  - metal-tags-int8 / neu-det-int8: `loupe quantize` of the fp32 model, calibrated on 64 images of
 *    the data set's train split; cached by the digests of the model and of the quantizer.
 */
export type FixtureModel =
  | 'metal-tags'
  | 'metal-tags-fp16'
  | 'metal-tags-dynamic'
  | 'metal-tags-nms'
  | 'neu-det'
  | 'neu-det-dynamic'
  | 'neu-det-nms'
  | 'metal-tags-int8'
  | 'neu-det-int8';

const base = {
  'metal-tags': {
    pt: join(projectRoot, 'models', 'metal-tags', 'model.pt'),
    onnx: join(projectRoot, 'models', 'metal-tags', 'model.onnx'),
    imgsz: 480,
  },
  'neu-det': {
    pt: join(projectRoot, 'test', 'fixtures', 'models', 'neu-det.pt'),
    onnx: join(projectRoot, 'test', 'fixtures', 'models', 'neu-det.onnx'),
    imgsz: 256,
  },
} as const;

export function checkpointOf(name: 'metal-tags' | 'neu-det'): string {
  return base[name].pt;
}

/** The int8 model `loupe quantize` makes of a base model (train split calibration, 64 images). */
async function int8Model(model: 'metal-tags' | 'neu-det'): Promise<string> {
  const key = sha256(
    `${await sha256File(base[model].onnx)}:${await sha256File(quantizeScript)}:${await sha256File(join(projectRoot, 'cloud', 'quantize', 'calibration.ts'))}`,
  ).slice(0, 16);
  const dir = join(cacheDir(), 'test-models');
  const target = join(dir, `${model}-${key}-int8.onnx`);
  if (existsSync(target)) return target;
  await mkdir(dir, { recursive: true });
  const tmp = join(dir, `work-${process.pid}-${model}-int8.onnx`);
  await quantizeModel({ model: base[model].onnx, calib: await yoloDataset(model), out: tmp });
  await rename(tmp, target);
  return target;
}

export async function fixtureModel(name: FixtureModel): Promise<string> {
  if (name === 'metal-tags' || name === 'neu-det') return base[name].onnx;
  if (name === 'metal-tags-int8' || name === 'neu-det-int8') return int8Model(name === 'metal-tags-int8' ? 'metal-tags' : 'neu-det');
  if (name === 'metal-tags-fp16') return join(projectRoot, 'test', 'fixtures', 'models', 'metal-tags-fp16.onnx');
  const [model, variant] = name.split(/-(?=dynamic$|nms$)/) as ['metal-tags' | 'neu-det', 'dynamic' | 'nms'];
  const src = base[model];
  const digest = (await sha256File(src.pt)).slice(0, 16);
  const dir = join(cacheDir(), 'test-models');
  const target = join(dir, `${model}-${digest}-${variant}.onnx`);
  if (existsSync(target)) return target;
  await mkdir(dir, { recursive: true });
  const work = join(dir, `work-${process.pid}-${variant}`);
  await mkdir(work, { recursive: true });
  await copyFile(src.pt, join(work, 'model.pt'));
  const kw = variant === 'dynamic' ? 'dynamic=True' : 'nms=True';
  await runPython(
    `from ultralytics import YOLO\nprint(YOLO(${JSON.stringify(join(work, 'model.pt'))}).export(format='onnx', imgsz=${src.imgsz}, simplify=False, device='cpu', ${kw}))`,
    { timeoutMs: 300_000 },
  );
  await rename(join(work, 'model.onnx'), target);
  return target;
}
