import { describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';

/**
 * The CI-sized closed loop, as a user runs it (the README's first command): uploads from the
 * device in, a new model version running on the local nucleus out, with the numbers in the
 * summary. One training epoch at 480 px, warm-started from the shipped model.
 */
describe('loupe demo --fast --json', () => {
  it('closes the loop: the device ends up running the model trained on its own uploads', async () => {
    const r = await runCli(['demo', '--fast', '--json'], { timeoutMs: 1_200_000 });
    const lines = r.stdout.trim().split('\n');
    expect(lines.length).toBe(1); // stdout holds the summary only; progress went to stderr
    const s = JSON.parse(lines[0]!);
    expect(r.code, `${s.error ?? ''}\n${r.stderr.slice(-3000)}`).toBe(0);
    expect(s.ok).toBe(true);
    expect(s.framesInspected).toBeGreaterThan(0);
    expect(s.inferred).toBeGreaterThan(0);
    expect(s.defectsFound).toBeGreaterThan(0);
    expect(s.imagesUploaded).toBeGreaterThanOrEqual(12);
    expect(s.imagesLabelled).toBe(12);
    expect(s.labelsApproved + s.labelsRejected).toBe(12);
    // The snapshot holds the history as of DEMO_HISTORY_UNTIL (44 images) plus the newly approved
    // uploads: the camera shows only photos labelled after that time, so none is a copy.
    expect(s.snapshot.images).toBe(44 + s.labelsApproved);
    expect(s.snapshot.train + s.snapshot.val + s.snapshot.test).toBe(s.snapshot.images);
    expect(s.modelBefore).toMatchObject({ ref: 'metal-tags:1', componentVersion: '1.0.0' });
    expect(s.modelAfter).toMatchObject({ ref: 'metal-tags:2', componentVersion: '1.0.1', status: 'approved' });
    expect(s.modelAfter.sha256).not.toBe(s.modelBefore.sha256);
    expect(s.gate.passed).toBe(true);
    expect(s.gate.challenger).toBeGreaterThanOrEqual(s.gate.champion - 0.02);
    expect(s.fleetRunsNewVersion).toBe(true);
    expect(s.resultsWithNewModel).toBeGreaterThan(0);
    for (const k of ['stack', 'inspect', 'ingest', 'label', 'verify', 'snapshot', 'train', 'evaluate', 'gate', 'register', 'publish', 'deploy', 'confirm', 'total']) {
      expect(typeof s.seconds[k], k).toBe('number');
    }
    expect(s.home).toBeNull(); // its temp folder is gone
  }, 1_500_000);
});
