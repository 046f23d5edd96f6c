import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { datasetDir } from '../../lib/paths.js';
import { Detector } from '../../components/detector/detector.js';
import { calibrationSet, evenlySpaced, writeCalibrationTensors } from '../../cloud/quantize/calibration.js';
import { runCli } from '../helpers/cli.js';
import { yoloDataset } from '../helpers/datasets.js';
import { fixtureModel } from '../helpers/models.js';
import { venvDir } from '../../cloud/training/venv.js';

// `loupe quantize`: deterministic output, the quantizer's record in the model, calibration on the
// detector's own input tensors, progress, and refusals that name the bad input and leave an
// existing output untouched.

let tmp: string;
let fp32: string;
let data: string;

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'loupe-quantize-'));
  fp32 = await fixtureModel('metal-tags');
  data = await yoloDataset('metal-tags');
}, 600_000);

afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

interface QuantizeJson {
  out: string;
  sha256: string;
  bytes: number;
  sourceSha256: string;
  calibration: { kind: string; images: number; available: number };
  floatNodes: number;
  quantizeLinear: number;
}

describe('loupe quantize', () => {
  it('is deterministic: the same model and calibration images give a byte-identical int8 model', async () => {
    const outs = [join(tmp, 'a', 'm.int8.onnx'), join(tmp, 'b', 'm.int8.onnx')];
    const runs = [];
    for (const out of outs) {
      // The second run names its venv as the cloud image does (LOUPE_QUANTIZER_VENV); here that is
      // the trainer venv, whose pins the quantizer's requirements repeat: same bytes either way.
      const env = out === outs[1] ? { ...process.env, LOUPE_QUANTIZER_VENV: venvDir() } : undefined;
      const r = await runCli(['quantize', '--model', fp32, '--calib', data, '--out', out, '--images', '8', '--json'], {
        timeoutMs: 900_000,
        env,
      });
      expect(r.code, r.stderr).toBe(0);
      // progress: the preprocessing and the calibration, as structured log lines on stderr
      expect(r.stderr).toContain('quantize: preprocess 8/8');
      expect(r.stderr).toContain('quantize: calibrate 8/8');
      runs.push(JSON.parse(r.stdout) as QuantizeJson);
    }
    const [a, b] = await Promise.all(outs.map((o) => readFile(o)));
    expect(a!.equals(b!)).toBe(true);
    expect(runs[0]!.sha256).toBe(runs[1]!.sha256);
    expect(runs[0]).toMatchObject({ calibration: { kind: 'dataset', images: 8, available: 163 }, floatNodes: 74 });
    expect(runs[0]!.quantizeLinear).toBeGreaterThan(100);
    expect(runs[0]!.bytes).toBeLessThan(0.4 * (await readFile(fp32)).length); // int8 weights

    const det = await Detector.load(outs[0]!);
    expect(det.info.precision).toBe('int8');
    // The export's metadata survives; the quantizer adds its record (nothing time-dependent).
    expect(det.info.names).toEqual(['scratch']);
    expect(det.info.imgsz).toEqual([480, 480]);
    const rec = JSON.parse(det.info.metadata.loupe_quantization!) as Record<string, unknown>;
    expect(rec).toMatchObject({
      format: 'QDQ',
      weights: 'int8, per output channel, symmetric',
      activations: 'uint8, per tensor, asymmetric',
      calibration: { method: 'MinMax', images: 8 },
      float_nodes: { head: 'model.22', count: 74 },
      source_sha256: runs[0]!.sourceSha256,
    });
    const r = await det.detect(join(datasetDir('metal-tags'), 'bad', readdirSync(join(datasetDir('metal-tags'), 'bad')).sort()[0]!));
    expect(r.detections.length).toBeGreaterThan(0);
    await det.dispose();
  }, 1_800_000);

  it('calibration images: the train split or a folder, sorted and evenly spaced; tensors are exactly the detector input', async () => {
    expect(evenlySpaced([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 4)).toEqual([1, 3, 6, 8]);
    expect(evenlySpaced([1, 2], 4)).toEqual([1, 2]);
    const set = calibrationSet(data, 5);
    expect(set.kind).toBe('dataset');
    expect(set.files).toHaveLength(5);
    expect(set.files.every((f) => f.includes('/images/train/'))).toBe(true);
    expect([...set.files].sort()).toEqual(set.files);
    const folder = calibrationSet(join(datasetDir('metal-tags'), 'good'), 3);
    expect(folder).toMatchObject({ kind: 'folder', available: readdirSync(join(datasetDir('metal-tags'), 'good')).length });

    const det = await Detector.load(fp32);
    const dir = join(tmp, 'tensors');
    await writeCalibrationTensors(det, { ...set, files: set.files.slice(0, 2) }, dir);
    const manifest = JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8')) as { files: string[]; dims: number[][] };
    expect(manifest.dims).toEqual([
      [1, 3, 480, 480],
      [1, 3, 480, 480],
    ]);
    for (let i = 0; i < 2; i++) {
      const raw = await readFile(join(dir, manifest.files[i]!));
      const t = await det.inputTensor(set.files[i]!);
      expect(Buffer.from((t.data as Float32Array).buffer).equals(raw)).toBe(true);
    }
    await det.dispose();
  });

  it('refuses bad input with a message naming it, and leaves an existing output as it was', async () => {
    const out = join(tmp, 'keep', 'out.onnx');
    await mkdir(join(tmp, 'keep'), { recursive: true });
    await writeFile(out, 'previous model');
    const empty = join(tmp, 'empty');
    await mkdir(empty);
    const notes = join(tmp, 'notes.txt');
    await writeFile(notes, 'hello');
    const noTrain = join(tmp, 'notrain');
    await mkdir(join(noTrain, 'images', 'val'), { recursive: true });
    await copyFile(
      join(datasetDir('metal-tags'), 'good', readdirSync(join(datasetDir('metal-tags'), 'good'))[0]!),
      join(noTrain, 'images', 'val', 'a.jpg'),
    );
    await writeFile(join(noTrain, 'data.yaml'), `path: ${noTrain}\nval: images/val\nnames: {0: scratch}\n`);
    const corrupt = join(tmp, 'corrupt');
    await mkdir(corrupt);
    await writeFile(join(corrupt, 'broken.jpg'), Buffer.from([0xff, 0xd8, 0xff, 0xe0, 1, 2, 3]));

    const cases: Array<[string[], RegExp]> = [
      [['--model', join(tmp, 'nope.onnx'), '--calib', data], /nope\.onnx: model file not found/],
      [['--model', fp32, '--calib', join(tmp, 'missing')], /missing: calibration source not found/],
      [['--model', fp32, '--calib', empty], /empty: the folder holds no images/],
      [['--model', fp32, '--calib', notes], /notes\.txt: expected a data\.yaml .* or a folder of images/],
      [['--model', fp32, '--calib', join(noTrain, 'data.yaml')], /data\.yaml: the data set has no train images/],
      [['--model', fp32, '--calib', corrupt], /broken\.jpg: not a readable image/],
      [['--model', await fixtureModel('metal-tags-fp16'), '--calib', data], /metal-tags-fp16\.onnx: the model is a float16 export/],
      [['--model', await fixtureModel('metal-tags-int8'), '--calib', data], /int8\.onnx: the model is already quantized/],
      [['--model', fp32, '--calib', data, '--out', fp32], /would overwrite the input model/],
      [
        ['--model', await fixtureModel('metal-tags-nms'), '--calib', data],
        /nms\.onnx: the model is an nms=True export; quantize the plain export/,
      ],
      [['--model', fp32, '--calib', data, '--images', '0'], /--images.*positive integer/],
    ];
    for (const [args, message] of cases) {
      const r = await runCli(['quantize', ...args, ...(args.includes('--out') ? [] : ['--out', out])], { timeoutMs: 300_000 });
      expect(r.code, args.join(' ')).not.toBe(0);
      expect(r.stderr, args.join(' ')).toMatch(message);
      expect(await readFile(out, 'utf8')).toBe('previous model');
    }
    // A quantizer venv named by the environment that is not one (the cloud image's is built with a marker).
    const r = await runCli(['quantize', '--model', fp32, '--calib', data, '--out', out], {
      timeoutMs: 300_000,
      env: { ...process.env, LOUPE_QUANTIZER_VENV: empty },
    });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/LOUPE_QUANTIZER_VENV=.*empty is not a ready loupe venv/);
    expect(await readFile(out, 'utf8')).toBe('previous model');
  }, 1_800_000);
});
