import { existsSync } from 'node:fs';
import { copyFile, mkdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { cacheDir, projectRoot } from '../../lib/paths.js';
import { sha256File } from '../../lib/fsutil.js';
import { runPython } from './python.js';

/**
 * A real, worse metal-tags model for gate tests: the shipped checkpoint exported with the pinned
 * ultralytics at 160 px instead of 480 (same classes, same weights, a third of the resolution:
 * thin scratches get lost), cached by checkpoint digest in ~/.cache/loupe/test-models.
 */
export async function worseMetalTagsModel(): Promise<string> {
  const pt = join(projectRoot, 'models', 'metal-tags', 'model.pt');
  const digest = (await sha256File(pt)).slice(0, 16);
  const dir = join(cacheDir(), 'test-models');
  const target = join(dir, `metal-tags-${digest}-160px.onnx`);
  if (existsSync(target)) return target;
  const work = join(dir, `work-${process.pid}-160px`);
  await mkdir(work, { recursive: true });
  try {
    await copyFile(pt, join(work, 'model.pt'));
    await runPython(
      `from ultralytics import YOLO\nprint(YOLO(${JSON.stringify(join(work, 'model.pt'))}).export(format='onnx', imgsz=160, simplify=False, device='cpu'))`,
      { timeoutMs: 300_000 },
    );
    await rename(join(work, 'model.onnx'), target);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  return target;
}
