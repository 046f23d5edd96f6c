import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { reproducingCommand } from '../../cli/commands/train.js';
import { localTraining } from '../../cloud/loop/adapters/training-local.js';
import { sageMakerTraining } from '../../cloud/loop/adapters/training-sagemaker.js';
import { SageMakerClient } from '@aws-sdk/client-sagemaker';
import { S3Client } from '@aws-sdk/client-s3';
import { trainPyArgs, type TrainOptions } from '../../cloud/training/options.js';
import { silentLogger } from '../../lib/log.js';

/**
 * `loupe train` goes through the loop's training port with adapters that start afresh (no run to
 * resume), and both of its command lines (the reproducing `loupe train` line on the card and
 * train.py's argv) come from one flag table (cloud/training/options.ts TRAIN_FLAGS).
 */
const full: TrainOptions = {
  data: 'data/metal tags/data.yaml',
  base: 'runs/7/best.pt',
  epochs: 30,
  imgsz: 480,
  batch: 8,
  patience: 10,
  seed: 3,
  timeMinutes: 1.5,
  optimizer: 'AdamW',
  lr0: 0.0002,
  warmupEpochs: 0,
  closeMosaic: 5,
  device: 'cpu',
  workers: 2,
  cache: 'ram',
};
const minimal: TrainOptions = { data: 'd.yaml', base: 'yolov8n.yaml', epochs: 50, imgsz: 480, batch: 16, patience: 50, seed: 0 };

describe('the two command lines of a training run, from one table', () => {
  it("train.py's argv: required flags, --out, then the optional ones that are set", () => {
    expect(trainPyArgs(full, '/o')).toEqual(
      // prettier-ignore
      ['--data', 'data/metal tags/data.yaml', '--model', 'runs/7/best.pt', '--epochs', '30', '--imgsz', '480', '--batch', '8',
       '--patience', '10', '--seed', '3', '--out', '/o', '--time-minutes', '1.5', '--optimizer', 'AdamW', '--lr0', '0.0002',
       '--warmup-epochs', '0', '--close-mosaic', '5', '--device', 'cpu', '--workers', '2', '--cache', 'ram'],
    );
    expect(trainPyArgs(minimal, '/o')).toEqual(
      // prettier-ignore
      ['--data', 'd.yaml', '--model', 'yolov8n.yaml', '--epochs', '50', '--imgsz', '480', '--batch', '16', '--patience', '50',
       '--seed', '0', '--out', '/o'],
    );
  });

  it("the card's reproducing loupe train line: no machine-specific flags, backend and --out last", () => {
    expect(reproducingCommand(full, { backend: 'local', instanceType: 'ml.g4dn.xlarge', out: 'runs/8' })).toBe(
      "loupe train --data 'data/metal tags/data.yaml' --base runs/7/best.pt --epochs 30 --imgsz 480 --batch 8 --patience 10 --seed 3 " +
        '--time 1.5 --optimizer AdamW --lr0 0.0002 --warmup-epochs 0 --close-mosaic 5 --cache ram --out runs/8',
    );
    expect(reproducingCommand(minimal, { backend: 'sagemaker', instanceType: 'ml.g5.xlarge', out: 'o' })).toBe(
      'loupe train --data d.yaml --base yolov8n.yaml --epochs 50 --imgsz 480 --batch 16 --patience 50 --seed 0 ' +
        '--backend sagemaker --instance-type ml.g5.xlarge --out o',
    );
  });
});

describe("loupe train's training adapters start afresh; the loop's resume", () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'lp-trainport-'));
    await writeFile(join(dir, 'notes.txt'), 'a file of the user');
  });
  afterEach(async () => rm(dir, { recursive: true, force: true }));
  const bad: TrainOptions = { ...minimal, data: '/nonexistent/data.yaml' };

  it('local without resumeRun leaves the folder as it is (a refused run deletes nothing)', async () => {
    await expect(localTraining({ resumeRun: false }).train({ dir, options: bad }, { log: silentLogger })).rejects.toMatchObject({
      code: 'DATA_MISSING',
    });
    expect(existsSync(join(dir, 'notes.txt'))).toBe(true);
  });

  it('local with resumeRun empties what an unfinished earlier attempt left before training', async () => {
    await expect(localTraining({ resumeRun: true }).train({ runId: 1, dir, options: bad }, { log: silentLogger })).rejects.toMatchObject({
      code: 'DATA_MISSING',
    });
    expect(existsSync(join(dir, 'notes.txt'))).toBe(false);
  });

  it('sagemaker without resumeRun names what is missing before any AWS call, as loupe train always did', async () => {
    const port = sageMakerTraining({
      config: { bucket: '', roleArn: 'arn:aws:iam::1:role/r', image: 'img' },
      clients: { s3: new S3Client({ region: 'eu-west-1' }), sagemaker: new SageMakerClient({ region: 'eu-west-1' }) },
    });
    await expect(port.train({ dir, options: { ...minimal, data: join(dir, 'notes.txt') } }, { log: silentLogger })).rejects.toMatchObject({
      code: 'BAD_OPTION',
      input: 'bucket',
    });
  });
});
