import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { trainScript } from '../../cloud/training/local-trainer.js';
import { ensureVenv, offlinePythonEnv, venvPython } from '../../cloud/training/venv.js';
import { projectRoot } from '../../lib/paths.js';
import { runCli } from '../helpers/cli.js';
import { checkpointOf } from '../helpers/models.js';
import { metalTagsSubset } from './yolo-fixture.js';

/**
 * Bad input to `loupe train` is refused before any training, with the input named, a non-zero
 * exit, and no output folder left behind. Data-set and checkpoint checks are train.py's own
 * (LOUPE_ERROR → exit 2), so the SageMaker container refuses the same way.
 */
let tmp: string;
let empty: string;
let unlabelled: string;
let renamed: string;

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'lt-err-'));
  empty = await metalTagsSubset(join(tmp, 'empty'), { limit: { train: 0, val: 4, test: 0 } });
  unlabelled = await metalTagsSubset(join(tmp, 'unlabelled'), { limit: { train: 6, val: 2, test: 0 }, dropBoxes: true });
  renamed = await metalTagsSubset(join(tmp, 'renamed'), { limit: { train: 6, val: 2, test: 0 }, names: ['dent'] });
  await ensureVenv();
});

afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

const train = (args: string[]) => runCli(['train', '--epochs', '1', '--imgsz', '160', '--no-eval', ...args], { timeoutMs: 120_000 });

describe('loupe train refuses bad input clearly', () => {
  it('an empty data set (no train images)', async () => {
    const out = join(tmp, 'out-empty');
    const r = await train(['--data', empty, '--out', out]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`loupe: ${empty}: the train split has no images`);
    expect(r.stdout).toBe('');
    expect(existsSync(out)).toBe(false);
  });

  it('a data set with images but no labelled boxes', async () => {
    const out = join(tmp, 'out-unlabelled');
    const r = await train(['--data', unlabelled, '--out', out]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`loupe: ${unlabelled}: the train split has 6 images but no labelled boxes`);
    expect(existsSync(out)).toBe(false);
  });

  it('an unknown base model, by name or by path', async () => {
    let r = await train(['--data', renamed, '--base', 'yolov9q.yaml', '--out', join(tmp, 'o1')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(
      'loupe: yolov9q.yaml: unknown base model (expected yolov8[n|s|m|l|x].yaml, a model YAML file or a local .pt)',
    );
    r = await train(['--data', renamed, '--base', join(tmp, 'missing.pt'), '--out', join(tmp, 'o2')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`loupe: ${join(tmp, 'missing.pt')}: base checkpoint not found (loupe never downloads weights`);
    r = await train(['--data', renamed, '--base', 'yolov8n.pt', '--out', join(tmp, 'o3')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('loupe: yolov8n.pt: base checkpoint not found');
    expect(existsSync(join(tmp, 'o1')) || existsSync(join(tmp, 'o2')) || existsSync(join(tmp, 'o3'))).toBe(false);
  });

  it('train.py itself refuses an unknown base (the SageMaker container has no TypeScript in front)', async () => {
    const r = await new Promise<{ code: number | null; stdout: string }>((resolve) => {
      const child = spawn(venvPython(), [trainScript, '--data', renamed, '--model', 'resnet50', '--out', join(tmp, 'o4')], {
        env: offlinePythonEnv(),
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
      child.on('close', (code) => resolve({ code, stdout }));
    });
    expect(r.code).toBe(2);
    expect(r.stdout).toContain('LOUPE_ERROR {"code": "BASE_UNKNOWN", "message": "resnet50: unknown base model');
    expect(existsSync(join(tmp, 'o4'))).toBe(false); // a refusal leaves no output folder
  });

  it("a data set whose classes differ from the base checkpoint's", async () => {
    const out = join(tmp, 'out-renamed');
    const r = await train(['--data', renamed, '--base', checkpointOf('metal-tags'), '--out', out]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(
      `loupe: ${checkpointOf('metal-tags')}: the checkpoint's classes ['scratch'] differ from the data set's ['dent']; warm-starting would silently re-map classes.`,
    );
    expect(existsSync(out)).toBe(false);
  });

  it('bad numbers, a missing data.yaml, and an output folder that already holds a run', async () => {
    let r = await train(['--data', renamed, '--imgsz', '100', '--out', join(tmp, 'o5')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('loupe: --imgsz: must be a multiple of 32');
    r = await train(['--data', join(tmp, 'nope.yaml'), '--out', join(tmp, 'o5')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`loupe: ${join(tmp, 'nope.yaml')}: data set description not found`);
    r = await runCli(['train', '--data', renamed, '--epochs', '0', '--out', join(tmp, 'o5')]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("option '--epochs <n>' argument '0' is invalid");
    const used = join(tmp, 'used');
    await mkdir(used, { recursive: true });
    await writeFile(join(used, 'model.onnx'), 'an earlier run');
    r = await train(['--data', renamed, '--out', used]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`loupe: ${used}: already holds a training run`);
    expect(existsSync(join(projectRoot, 'o5'))).toBe(false);
  });

  it('the SageMaker backend without its bucket, role or image', async () => {
    const r = await train([
      '--data',
      renamed,
      '--backend',
      'sagemaker',
      '--role-arn',
      'arn:aws:iam::1:role/r',
      '--image',
      'x',
      '--out',
      join(tmp, 'o6'),
    ]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('loupe: bucket: the SageMaker backend needs bucket');
    expect(existsSync(join(tmp, 'o6'))).toBe(false);
  });
});
