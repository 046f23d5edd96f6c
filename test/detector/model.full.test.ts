import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LoupeError } from '../../lib/errors.js';
import { datasetDir } from '../../lib/paths.js';
import { Detector } from '../../components/detector/detector.js';
import { modelInfoFromBytes } from '../../components/detector/model-info.js';
import { runCli } from '../helpers/cli.js';
import { fixtureModel } from '../helpers/models.js';
import { runPython } from '../helpers/python.js';

// Model loading: metadata of every fixture export, and a clear refusal (LoupeError naming the
// file; non-zero exit and nothing on stdout from the CLI) for each model the detector cannot run.

let tmp: string;
const bad: Record<string, string> = {};
let image: string;

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'loupe-model-'));
  const dir = join(datasetDir('metal-tags'), 'bad');
  image = join(dir, readdirSync(dir).sort()[0]);
  const mt = await fixtureModel('metal-tags');
  const dyn = await fixtureModel('metal-tags-dynamic');
  // Odd models made with the onnx package from the real exports (or tiny graphs).
  const code = `
import onnx, json
from onnx import helper, TensorProto
T = ${JSON.stringify(tmp)}
def edit(src, dst, meta=None, drop=False):
    m = onnx.load(src)
    if drop:
        del m.metadata_props[:]
    for k, v in (meta or {}).items():
        for p in m.metadata_props:
            if p.key == k:
                p.value = v
                break
        else:
            m.metadata_props.add(key=k, value=v)
    onnx.save(m, dst)
edit(${JSON.stringify(mt)}, T + '/segment.onnx', {'task': 'segment'})
edit(${JSON.stringify(mt)}, T + '/three-names.onnx', {'names': "{0: 'a', 1: 'b', 2: 'c'}"})
edit(${JSON.stringify(mt)}, T + '/no-meta.onnx', drop=True)
edit(${JSON.stringify(mt)}, T + '/double-quoted.onnx', {'names': '{0: "it\\'s a scratch"}'})
edit(${JSON.stringify(dyn)}, T + '/dyn-no-meta.onnx', drop=True)
def tiny(dst, in_shape, out_shape, elem=TensorProto.FLOAT, meta=None):
    x = helper.make_tensor_value_info('images', elem, in_shape)
    y = helper.make_tensor_value_info('output0', elem, out_shape)
    g = helper.make_graph([helper.make_node('Identity', ['images'], ['output0'])], 'g', [x], [y])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid('', 17)])
    m.ir_version = 8
    for k, v in (meta or {'task': 'detect', 'names': "{0: 'a'}", 'stride': '32', 'imgsz': '[64, 64]'}).items():
        m.metadata_props.add(key=k, value=v)
    onnx.save(m, dst)
tiny(T + '/rank3.onnx', [1, 3, 64], [1, 3, 64])
tiny(T + '/uint8.onnx', [1, 3, 64, 64], [1, 3, 64, 64], TensorProto.UINT8)
tiny(T + '/gray.onnx', [1, 1, 64, 64], [1, 1, 64, 64])
tiny(T + '/batch2.onnx', [2, 3, 64, 64], [2, 3, 64, 64])
tiny(T + '/out-rank2.onnx', [1, 3, 64, 64], [1, 5])
print('ok')
`;
  await runPython(code, { cwd: tmp });
  for (const n of ['segment', 'three-names', 'no-meta', 'double-quoted', 'dyn-no-meta', 'rank3', 'uint8', 'gray', 'batch2', 'out-rank2'])
    bad[n] = join(tmp, `${n}.onnx`);
  await writeFile(join(tmp, 'text.onnx'), 'this is not a model\n');
  await writeFile(join(tmp, 'empty.onnx'), '');
  await copyFile(image, join(tmp, 'photo.onnx'));
  const mtBytes = await readFile(mt);
  await writeFile(join(tmp, 'truncated.onnx'), mtBytes.subarray(0, 50_000));
  for (const n of ['text', 'empty', 'photo', 'truncated']) bad[n] = join(tmp, `${n}.onnx`);
}, 600_000);

afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

async function refusal(path: string, opts: Parameters<typeof Detector.load>[1] = {}): Promise<LoupeError> {
  try {
    const d = await Detector.load(path, opts);
    await d.dispose();
  } catch (e) {
    expect(e).toBeInstanceOf(LoupeError);
    expect((e as LoupeError).message.startsWith(`${path}: `)).toBe(true);
    return e as LoupeError;
  }
  throw new Error(`${path} loaded but should have been refused`);
}

describe('model metadata', () => {
  it('reads every fixture export: names, imgsz, stride, dynamic, nms, fp16', async () => {
    const expectations = {
      'metal-tags': { names: ['scratch'], imgsz: [480, 480], dynamic: false, nmsExport: false, fp16: false, outputShape: [1, 5, 4725] },
      'metal-tags-dynamic': { names: ['scratch'], imgsz: [480, 480], dynamic: true, nmsExport: false, fp16: false },
      'metal-tags-nms': { names: ['scratch'], imgsz: [480, 480], dynamic: false, nmsExport: true, fp16: false, outputShape: [1, 300, 6] },
      'metal-tags-fp16': { names: ['scratch'], imgsz: [480, 480], dynamic: false, nmsExport: false, fp16: true, outputFp16: true },
      'neu-det': {
        names: ['crazing', 'inclusion', 'patches', 'pitted_surface', 'rolled-in_scale', 'scratches'],
        imgsz: [256, 256],
        dynamic: false,
        outputShape: [1, 10, 1344],
      },
      'neu-det-nms': { imgsz: [256, 256], nmsExport: true },
      'neu-det-dynamic': { imgsz: [256, 256], dynamic: true },
    } as const;
    for (const [name, want] of Object.entries(expectations)) {
      const path = await fixtureModel(name as keyof typeof expectations);
      const info = modelInfoFromBytes(await readFile(path), path);
      expect(info, name).toMatchObject({ ...want, stride: 32, task: 'detect', inputName: 'images', outputName: 'output0' });
    }
  }, 600_000);

  it('parses names with either quote style', async () => {
    const info = modelInfoFromBytes(await readFile(bad['double-quoted']), bad['double-quoted']);
    expect(info.names).toEqual(["it's a scratch"]);
  }, 600_000);

  it('runs a model without metadata when --names is given (imgsz from the fixed input)', async () => {
    const det = await Detector.load(bad['no-meta'], { names: ['scratch'] });
    const ref = await Detector.load(await fixtureModel('metal-tags'));
    try {
      expect(det.info.imgsz).toEqual([480, 480]);
      const a = await det.detect(image);
      const b = await ref.detect(image);
      expect(a.detections).toEqual(b.detections);
      expect(a.detections.length).toBeGreaterThan(0);
    } finally {
      await det.dispose();
      await ref.dispose();
    }
  }, 600_000);

  it('runs a dynamic model without metadata when --imgsz and --names are given', async () => {
    const det = await Detector.load(bad['dyn-no-meta'], { names: ['scratch'], imgsz: 470 });
    try {
      expect(det.info.imgsz).toEqual([480, 480]); // rounded up to the stride, as check_imgsz does
      expect(det.info.dynamic).toBe(true);
      expect((await det.detect(image)).detections.length).toBeGreaterThan(0);
    } finally {
      await det.dispose();
    }
  }, 600_000);
});

describe('model refusals', () => {
  const cases: Array<[string, string, RegExp, Parameters<typeof Detector.load>[1]?]> = [
    ['not ONNX (text)', 'text', /MODEL_NOT_ONNX/],
    ['not ONNX (empty file)', 'empty', /MODEL_NOT_ONNX/],
    ['not ONNX (a JPEG)', 'photo', /MODEL_NOT_ONNX/],
    ['truncated ONNX', 'truncated', /MODEL_NOT_ONNX/],
    ['non-detect task', 'segment', /MODEL_NOT_DETECT/],
    ['output rows do not fit the class count', 'three-names', /MODEL_CLASS_MISMATCH/],
    ['--names do not fit the output', 'no-meta', /MODEL_CLASS_MISMATCH/, { names: ['a', 'b'] }],
    ['missing names metadata, no --names', 'no-meta', /MODEL_NO_METADATA/],
    ['dynamic model without imgsz metadata or --imgsz', 'dyn-no-meta', /MODEL_NO_METADATA/, { names: ['scratch'] }],
    ['--imgsz that does not fit a fixed model', 'no-meta', /MODEL_IMGSZ_MISMATCH/, { names: ['scratch'], imgsz: 640 }],
    ['input of rank 3', 'rank3', /MODEL_BAD_INPUT/],
    ['uint8 input', 'uint8', /MODEL_BAD_INPUT/],
    ['one-channel input', 'gray', /MODEL_BAD_INPUT/],
    ['fixed batch of 2', 'batch2', /MODEL_BAD_INPUT/],
    ['output of rank 2', 'out-rank2', /MODEL_BAD_OUTPUT/],
  ];
  for (const [what, file, code, opts] of cases) {
    it(`refuses: ${what}`, async () => {
      const e = await refusal(bad[file], opts);
      expect(e.code).toMatch(code);
      expect(e.message.length).toBeGreaterThan(bad[file].length + 20);
    }, 600_000);
  }

  it('refuses a missing file', async () => {
    const e = await refusal(join(tmp, 'nope.onnx'));
    expect(e.code).toBe('MODEL_MISSING');
  }, 600_000);

  it('explains each refusal in words', async () => {
    expect((await refusal(bad.segment)).message).toMatch(/task is 'segment'.*detection models only/);
    expect((await refusal(bad['three-names'])).message).toMatch(/\[1, 5, 4725\]: 1 class score rows, but 3 class name/);
    expect((await refusal(bad.rank3)).message).toMatch(/rank 3.*expected \[batch, 3, height, width\]/);
    expect((await refusal(bad['no-meta'])).message).toMatch(/pass --names/);
    expect((await refusal(bad['dyn-no-meta'], { names: ['x'] })).message).toMatch(/pass --imgsz/);
  }, 600_000);

  it('CLI: refusal message on stderr naming the model, exit 1, nothing on stdout', async () => {
    for (const [file, msg] of [
      ['segment', /task is 'segment'/],
      ['text', /not an ONNX model/],
      ['no-meta', /pass --names/],
    ] as const) {
      const r = await runCli(['detect', image, '--model', bad[file], '--json']);
      expect(r.code, file).toBe(1);
      expect(r.stdout).toBe('');
      expect(r.stderr).toContain(`loupe: ${bad[file]}: `);
      expect(r.stderr).toMatch(msg);
    }
  }, 600_000);
});
