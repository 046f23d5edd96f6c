import { copyFile, mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { projectRoot } from '../../lib/paths.js';
import { runCli } from '../helpers/cli.js';
import { yoloDataset } from '../helpers/datasets.js';

// `loupe eval --out` writes the pictures ultralytics val writes (curves, confusion matrices as
// PNG) and predicted-vs-truth grids; copies are kept under test-artifacts/eval/ for people.

const model = join(projectRoot, 'models', 'metal-tags', 'model.onnx');
const art = join(projectRoot, 'test-artifacts', 'eval');
let dir: string;
let data: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'loupe-eval-pictures-'));
  data = await yoloDataset('metal-tags');
}, 300_000);
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function redPixels(file: string): Promise<number> {
  const { data: px, info } = await sharp(file).raw().toBuffer({ resolveWithObject: true });
  let n = 0;
  for (let i = 0; i < px.length; i += info.channels) if (px[i]! > 180 && px[i + 1]! < 110 && px[i + 2]! < 110) n++;
  return n;
}

describe('loupe eval --out pictures', () => {
  it('writes PR/F1/P/R curves, raw and normalised confusion matrices as PNG, and truth/prediction grids', async () => {
    const out = join(dir, 'eval');
    const r = await runCli(['eval', '--model', model, '--data', data, '--out', out, '--json'], { timeoutMs: 300_000 });
    expect(r.code, r.stderr).toBe(0);
    const m = JSON.parse(r.stdout) as { images: number };
    expect(m.images).toBe(35);
    for (const f of [
      'PR_curve.png',
      'F1_curve.png',
      'P_curve.png',
      'R_curve.png',
      'confusion_matrix.png',
      'confusion_matrix_normalized.png',
    ]) {
      const meta = await sharp(join(out, f)).metadata();
      expect(meta.format, f).toBe('png');
      expect(meta.width! * meta.height!, f).toBeGreaterThan(400 * 300);
    }
    // The normalised matrix shows each true class's shares: its column of the raw matrix divided by the column sum.
    const cm = JSON.parse(await readFile(join(out, 'confusion_matrix.json'), 'utf8')) as { matrix: number[][] };
    const col0 = cm.matrix.map((row) => row[0]!);
    const share = col0[0]! / col0.reduce((a, b) => a + b, 0);
    // 35 test images: batches of 16, 16 and 3, each as a truth grid and a prediction grid, 4 columns of 320 px tiles (+ caption).
    for (const b of [0, 1, 2]) {
      for (const kind of ['labels', 'pred']) {
        const f = join(out, `val_batch${b}_${kind}.jpg`);
        const meta = await sharp(f).metadata();
        expect(meta.width, f).toBe(4 * 320);
        expect(meta.height, f).toBe((b < 2 ? 4 : 1) * (320 + 18));
        expect(await redPixels(f), `${f} has boxes drawn (class 0 is red)`).toBeGreaterThan(200);
      }
    }
    expect(share).toBeGreaterThan(0.5);
    // normalised by column: 3 of 4 true 'a' found as 'a' shows 0.75, the missed one 0.25 in 'background'
    const { confusionSvg } = await import('../../cloud/evaluation/artifacts.js');
    const fake = {
      split: 'test',
      confusionMatrix: {
        labels: ['a', 'background'],
        matrix: [
          [3, 1],
          [1, 0],
        ],
        conf: 0.25,
        iou: 0.45,
      },
    } as unknown as Parameters<typeof confusionSvg>[0];
    const text = confusionSvg(fake, true);
    expect(text).toContain('>0.75<');
    expect(text).toContain('>0.25<');
    expect(text).toContain('>1.00<');
    await mkdir(art, { recursive: true });
    for (const f of ['PR_curve.png', 'F1_curve.png', 'confusion_matrix_normalized.png', 'val_batch0_labels.jpg', 'val_batch0_pred.jpg'])
      await copyFile(join(out, f), join(art, f));
  }, 300_000);
});
