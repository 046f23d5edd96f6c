import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { readModelCard } from '../../cloud/training/card.js';
import { DEMO_CHAMPION_DIR } from '../../cloud/loop/reference.js';
import { runCli } from '../helpers/cli.js';

/**
 * The CI-sized closed loop, as a user runs it (the README's first command): uploads from the
 * device in, a new model version running on the local nucleus out, with the numbers in the
 * summary. One training epoch at 480 px, warm-started from the starting champion
 * (models/metal-tags-early); both scored on the held-out benchmark set.
 */
describe('loupe demo --fast --json', () => {
  it('closes the loop: the device ends up running the model trained on its own uploads', async () => {
    const r = await runCli(['demo', '--fast', '--json'], { timeoutMs: 1_200_000 });
    const lines = r.stdout.trim().split('\n');
    expect(lines.length).toBe(1); // stdout holds the summary only; progress went to stderr
    const s = JSON.parse(lines[0]!);
    expect(r.code, `${s.error ?? ''}\n${r.stderr.slice(-3000)}`).toBe(0);
    expect(s.ok).toBe(true);
    expect(s.seed).toBe(1);
    expect(s.framesInspected).toBeGreaterThan(0);
    expect(s.inferred).toBeGreaterThan(0);
    expect(s.defectsFound).toBeGreaterThan(0);
    expect(s.imagesUploaded).toBeGreaterThanOrEqual(12);
    expect(s.imagesLabelled).toBe(12);
    expect(s.labelsApproved + s.labelsRejected).toBe(12);
    // The snapshot holds the history as of DEMO_HISTORY_UNTIL minus the benchmark set (37 images)
    // plus the newly approved uploads: the camera shows only photos labelled after that time.
    expect(s.snapshot.images).toBe(37 + s.labelsApproved);
    expect(s.snapshot.train + s.snapshot.val + s.snapshot.test).toBe(s.snapshot.images);
    const card = await readModelCard(join(DEMO_CHAMPION_DIR, 'card.json'));
    expect(s.modelBefore).toEqual({
      ref: 'metal-tags:1',
      componentVersion: '1.0.0',
      sha256: card.files.onnx.sha256,
      source: 'models/metal-tags-early',
    });
    expect(s.modelAfter).toMatchObject({ ref: 'metal-tags:2', componentVersion: '1.0.1', status: 'approved' });
    expect(s.modelAfter.sha256).not.toBe(s.modelBefore.sha256);
    // The CI-sized gate compares on the val split (the history's 7 val images + the uploads').
    expect(s.gate).toMatchObject({ passed: true, metric: 'map50', split: 'val' });
    expect(s.gate.images).toBe(s.snapshot.val);
    expect(s.gate.images).toBeGreaterThanOrEqual(7);
    expect(s.gate.challenger).toBeGreaterThanOrEqual(s.gate.champion - 0.02);
    // The held-out benchmark set: the champion scores as its card says; the gain is challenger - champion.
    expect(s.benchmark).toMatchObject({ images: 35, instances: 73, source: 'models/metal-tags/card.json dataset.testImages' });
    expect(s.benchmark.champion.ref).toBe('metal-tags:1');
    expect(s.benchmark.champion.map50).toBeCloseTo(card.metrics.test!.map50, 4);
    expect(s.benchmark.champion.map50_95).toBeCloseTo(card.metrics.test!.map50_95, 4);
    expect(s.benchmark.gain.map50).toBeCloseTo(s.benchmark.challenger.map50 - s.benchmark.champion.map50, 3);
    expect(s.benchmark.gain.map50_95).toBeCloseTo(s.benchmark.challenger.map50_95 - s.benchmark.champion.map50_95, 3);
    expect(s.fleetRunsNewVersion).toBe(true);
    expect(s.resultsWithNewModel).toBeGreaterThan(0);
    for (const k of [
      'stack',
      'inspect',
      'ingest',
      'label',
      'verify',
      'snapshot',
      'train',
      'evaluate',
      'gate',
      'register',
      'publish',
      'deploy',
      'confirm',
      'benchmark',
      'total',
    ]) {
      expect(typeof s.seconds[k], k).toBe('number');
    }
    expect(s.home).toBeNull(); // its temp folder is gone
  }, 1_500_000);
});
