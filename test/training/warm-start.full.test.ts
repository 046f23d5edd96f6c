import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readModelCard } from '../../contracts/model-card.js';
import { projectRoot } from '../../lib/paths.js';
import { runCli } from '../helpers/cli.js';
import { yoloDataset } from '../helpers/datasets.js';
import { checkpointOf, fixtureModel } from '../helpers/models.js';

/**
 * Warm start: retraining the shipped model (models/metal-tags/model.pt) on the same data for two
 * epochs at its own 480 px, with loupe's warm-start schedule (AdamW lr0 2e-4, no warmup, no
 * mosaic), keeps its test-split mAP50 (scored by loupe eval) within 0.03. Two epochs is the
 * minimum that shows the checkpoint both loads and keeps improving from where it was rather
 * than being re-initialised or wrecked by a from-scratch schedule; on this 2-core machine an
 * epoch takes 65-135 s depending on load.
 */
let tmp: string;
let data: string;
let run: Awaited<ReturnType<typeof runCli>>;
let shipped: { map50: number; map50_95: number };
let seconds = 0;

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'lt-warm-'));
  data = await yoloDataset('metal-tags');
  const ev = await runCli(['eval', '--model', await fixtureModel('metal-tags'), '--data', data, '--split', 'test', '--json'], {
    timeoutMs: 300_000,
  });
  if (ev.code !== 0) throw new Error(`loupe eval of the shipped model failed:\n${ev.stderr.slice(-2000)}`);
  shipped = JSON.parse(ev.stdout);
  const t0 = Date.now();
  run = await runCli(
    [
      'train',
      '--data',
      data,
      '--base',
      checkpointOf('metal-tags'),
      '--epochs',
      '2',
      '--imgsz',
      '480',
      '--batch',
      '16',
      '--out',
      join(tmp, 'out'),
      '--json',
    ],
    { timeoutMs: 1_500_000 },
  );
  seconds = (Date.now() - t0) / 1000;
  await mkdir(join(projectRoot, 'test-artifacts', 'training'), { recursive: true });
  await writeFile(
    join(projectRoot, 'test-artifacts', 'training', 'warm-start.json'),
    JSON.stringify(
      { wallSeconds: seconds, shipped, exit: run.code, summary: run.code === 0 ? JSON.parse(run.stdout) : run.stderr.slice(-3000) },
      null,
      2,
    ),
  );
}, 1_800_000);

afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

describe('warm start from the shipped checkpoint', () => {
  it('uses the warm-start schedule and keeps test mAP50 within 0.03 of the shipped model', { timeout: 600_000 }, async () => {
    if (run.code !== 0) throw new Error(`loupe train exited ${run.code}:\n${run.stderr.slice(-3000)}`);
    const s = JSON.parse(run.stdout);
    const card = await readModelCard(s.files.card);
    expect(card.trainer.hyperparameters).toMatchObject({
      warm_start: true,
      optimizer: 'AdamW',
      lr0: 0.0002,
      warmup_epochs: 0,
      close_mosaic: 2,
    });
    expect(card.trainer.base).toBe(checkpointOf('metal-tags'));
    expect(card.dataset.testImages).toHaveLength(35);
    expect(s.test.images).toBe(35);
    console.log(
      `warm start (2 epochs @480, ${seconds.toFixed(0)} s wall, ${s.secondsPerEpoch} s/epoch): test mAP50 ${s.test.map50.toFixed(4)} vs shipped ${shipped.map50.toFixed(4)}; ` +
        `mAP50-95 ${s.test.map50_95.toFixed(4)} vs ${shipped.map50_95.toFixed(4)}; trainer val mAP50 ${s.val.map50.toFixed(4)}`,
    );
    expect(Math.abs(s.test.map50 - shipped.map50)).toBeLessThanOrEqual(0.03);
    // the card's test numbers are loupe eval's for the new ONNX
    const ev = await runCli(['eval', '--model', s.files.onnx, '--data', data, '--split', 'test', '--json'], { timeoutMs: 300_000 });
    expect(ev.code, ev.stderr).toBe(0);
    expect(JSON.parse(ev.stdout)).toMatchObject({ images: 35, instances: 73, map50: s.test.map50, map50_95: s.test.map50_95 });
    expect(card.metrics.test).toEqual(s.test);
  });
});
