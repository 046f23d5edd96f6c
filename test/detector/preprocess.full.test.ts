import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeImage } from '../../components/detector/decode.js';
import { inputPlan, letterboxGeometry, pyRound, TensorWriter } from '../../components/detector/letterbox.js';
import { modelInfoFromBytes, type ModelInfo } from '../../components/detector/model-info.js';
import { LinearResizer, resizeLinear } from '../../components/detector/resize.js';
import { datasetDir, requireDataset } from '../../lib/paths.js';
import { fixtureModel } from '../helpers/models.js';
import { yoloDataset } from '../helpers/datasets.js';
import { ultralytics } from './reference.js';

// loupe's input tensors must equal ultralytics' byte for byte: same decode (cv2.imdecode), same
// OpenCV resize, same letterbox rounding, same /255 in float32 or float16.

let tmp: string;
beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'loupe-pre-'));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

async function info(model: string): Promise<ModelInfo> {
  return modelInfoFromBytes(await readFile(model), model);
}

/** Our tensor for one image in predict or val mode (the Detector's own plan and writer). */
async function ourTensor(
  file: string,
  mi: ModelInfo,
  mode: 'predict' | 'val',
): Promise<{ data: Float32Array | Uint16Array; shape: number[] }> {
  const img = await decodeImage(file);
  const plan = inputPlan(img.width, img.height, mi, mode);
  const w = new TensorWriter();
  const src = plan.load ? w.resizeImage(img, plan.load[0], plan.load[1]) : img;
  const g = plan.geometry;
  const n = 3 * g.outW * g.outH;
  const data = mi.fp16 ? new Uint16Array(n) : new Float32Array(n);
  w.write(src, g, data);
  return { data, shape: [1, 3, g.outH, g.outW] };
}

function firstDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return -2;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i] && !(Number.isNaN(a[i]) && Number.isNaN(b[i]))) return i;
  return -1;
}

describe('pyRound and letterbox geometry', () => {
  it('rounds half to even like Python', () => {
    expect([0.5, 1.5, 2.5, 3.5, 2.4999, 2.5001, 7.9].map(pyRound)).toEqual([0, 2, 2, 4, 2, 3, 8]);
  }, 600_000);
  it('centres with round(d - 0.1) / round(d + 0.1)', () => {
    // 450x300 into 480: r = 1.0667, unpadded 480x320, dh = 160 -> 80 / 80
    expect(letterboxGeometry(450, 300, [480, 480])).toMatchObject({ newW: 480, newH: 320, top: 80, left: 0, outW: 480, outH: 480 });
    // odd padding: 101 px of padding splits 50 / 51
    expect(letterboxGeometry(100, 379, [480, 480])).toMatchObject({ newW: 127, newH: 480, left: 176, outW: 480 });
    expect(letterboxGeometry(100, 100, [64, 64], { scaleup: false })).toMatchObject({ newW: 64, newH: 64 });
    expect(letterboxGeometry(450, 300, [480, 480], { auto: true, stride: 32 })).toMatchObject({ outW: 480, outH: 320, top: 0 });
  }, 600_000);
});

describe('resize', () => {
  it('is bit-exact with cv2.resize(INTER_LINEAR) up and down, odd sizes, tails', async () => {
    const sizes = [
      [450, 300, 480, 320],
      [300, 450, 320, 480],
      [200, 200, 256, 256],
      [450, 300, 256, 171],
      [640, 480, 480, 360],
      [37, 23, 100, 61],
      [100, 61, 37, 23],
      [1920, 1080, 480, 270],
      [200, 200, 100, 100],
      [33, 17, 66, 34],
      [5, 3, 13, 9],
      [450, 301, 451, 300],
      [1000, 999, 480, 480],
      [1, 7, 5, 3],
    ];
    const cases = await ultralytics<Array<{ src: string; dst: string; size: number[] }>>('resize', { sizes, seed: 7, out: tmp, cwd: tmp });
    const rz = new LinearResizer();
    for (const c of cases) {
      const [sw, sh, dw, dh] = c.size;
      const got = resizeLinear(rz, new Uint8Array(await readFile(c.src)), sw, sh, 3, dw, dh);
      expect(firstDiff(got, new Uint8Array(await readFile(c.dst))), `${sw}x${sh} -> ${dw}x${dh}`).toBe(-1);
    }
  }, 600_000);
});

describe('decoding like cv2.imdecode(IMREAD_COLOR)', () => {
  it('handles grayscale, RGBA (alpha dropped, not composited), palette, 16-bit, EXIF-rotated and BMP images', async () => {
    const src = join(datasetDir('metal-tags'), 'bad', readdirSync(join(datasetDir('metal-tags'), 'bad')).sort()[3]);
    const made = await ultralytics<Record<string, { path: string; rgb: string; width: number; height: number }>>('images', {
      src,
      out: tmp,
      cwd: tmp,
    });
    expect(Object.keys(made).length).toBe(18);
    for (const [name, m] of Object.entries(made)) {
      const img = await decodeImage(m.path);
      expect([img.width, img.height], name).toEqual([m.width, m.height]);
      expect(firstDiff(img.data, new Uint8Array(await readFile(m.rgb))), name).toBe(-1);
    }
    // orientation 6 turns the 450x300 landscape into a 300x450 portrait
    expect([made['exif6.jpg'].width, made['exif6.jpg'].height]).toEqual([300, 450]);
  }, 600_000);
});

describe("input tensors equal ultralytics' (predict)", () => {
  async function compare(model: string, files: string[], kwargs: Record<string, unknown> = {}): Promise<void> {
    const mi = await info(model);
    const out = join(tmp, `cap-${Math.random().toString(36).slice(2)}`);
    await import('node:fs/promises').then((fs) => fs.mkdir(out));
    const caps = await ultralytics<Array<{ file: string; shape: number[]; dtype: string; path: string }>>('capture', {
      model,
      files,
      out,
      kwargs,
      cwd: tmp,
    });
    expect(caps.length).toBe(files.length);
    for (const c of caps) {
      const ours = await ourTensor(c.file, mi, 'predict');
      expect(ours.shape, c.file).toEqual(c.shape);
      const raw = await readFile(c.path);
      const theirs =
        c.dtype === 'float16'
          ? new Uint16Array(raw.buffer, raw.byteOffset, raw.length / 2)
          : new Float32Array(raw.buffer, raw.byteOffset, raw.length / 4);
      expect(c.dtype).toBe(mi.fp16 ? 'float16' : 'float32');
      expect(firstDiff(ours.data, theirs), c.file).toBe(-1);
    }
  }

  async function oddImages(): Promise<string[]> {
    const src = join(datasetDir('metal-tags'), 'bad', readdirSync(join(datasetDir('metal-tags'), 'bad')).sort()[5]);
    const d = join(tmp, 'odd');
    await import('node:fs/promises').then((fs) => fs.mkdir(d, { recursive: true }));
    const made = await ultralytics<Record<string, { path: string }>>('images', { src, out: d, cwd: tmp });
    return ['gray.jpg', 'rgba.png', 'exif6.jpg', 'rgb16.png'].map((n) => made[n].path);
  }

  it('metal-tags (fixed 480): dataset images plus grayscale, RGBA PNG, EXIF-rotated JPEG, 16-bit PNG', async () => {
    const dir = join(datasetDir('metal-tags'), 'bad');
    const files = readdirSync(dir)
      .sort()
      .slice(0, 3)
      .map((f) => join(dir, f));
    await compare(await fixtureModel('metal-tags'), [...files, ...(await oddImages())]);
  }, 600_000);

  it('neu-det (fixed 256, 200x200 grayscale-as-RGB upscaled)', async () => {
    const dir = join(requireDataset('neu-det'), 'IMAGES');
    const files = readdirSync(dir)
      .sort()
      .filter((_, i) => i % 400 === 0)
      .map((f) => join(dir, f));
    await compare(await fixtureModel('neu-det'), files);
  }, 600_000);

  it('dynamic export: minimal stride-multiple rectangle (auto letterbox)', async () => {
    const dir = join(datasetDir('metal-tags'), 'bad');
    const files = readdirSync(dir)
      .sort()
      .slice(10, 12)
      .map((f) => join(dir, f));
    await compare(await fixtureModel('metal-tags-dynamic'), [...files, ...(await oddImages()).slice(2, 3)], { imgsz: 480 });
  }, 600_000);

  it('fp16 export: half-precision input (uint8.half() / 255)', async () => {
    const dir = join(datasetDir('metal-tags'), 'bad');
    const files = readdirSync(dir)
      .sort()
      .slice(20, 22)
      .map((f) => join(dir, f));
    // includes the padding value 114/255 and every pixel value present, as half bits
    await compare(await fixtureModel('metal-tags-fp16'), files);
  }, 600_000);
});

describe("input tensors equal the validator's (val)", () => {
  for (const [name, model] of [
    ['metal-tags', 'metal-tags'],
    ['neu-det', 'neu-det'],
  ] as const) {
    it(`${name}: load_image long-side resize then LetterBox(scaleup=False)`, async () => {
      const m = await fixtureModel(model);
      const mi = await info(m);
      const data = await yoloDataset(name);
      const out = join(tmp, `vcap-${name}`);
      await import('node:fs/promises').then((fs) => fs.mkdir(out));
      const caps = await ultralytics<Array<{ file: string; shape: number[]; path: string; ratio_pad: number[][] }>>('val_capture', {
        model: m,
        data,
        split: 'test',
        imgsz: mi.imgsz[0],
        limit: 4,
        out,
        tmp,
        cwd: tmp,
      });
      expect(caps.length).toBe(4);
      for (const c of caps) {
        const ours = await ourTensor(c.file, mi, 'val');
        expect(ours.shape.slice(1), c.file).toEqual(c.shape);
        const u8 = new Uint8Array(await readFile(c.path));
        const theirs = Float32Array.from(u8, (v) => v / 255);
        expect(firstDiff(ours.data, theirs), c.file).toBe(-1);
        const img = await decodeImage(c.file);
        const plan = inputPlan(img.width, img.height, mi, 'val');
        expect([plan.gain, plan.padX, plan.padY]).toEqual([c.ratio_pad[0][0], c.ratio_pad[1][0], c.ratio_pad[1][1]]);
      }
    }, 600_000);
  }
});
