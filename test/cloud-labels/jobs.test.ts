import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Labeling } from '../../cloud/labeling/jobs.js';
import {
  compareWithTruth,
  runSimulatedVerifier,
  runSimulatedWorkforce,
  seededRandom,
  simulateLabels,
} from '../../cloud/labeling/workforce.js';
import { openLabelStore, type SqliteLabelStore } from '../../cloud/labelstore/index.js';
import type { GtBox } from '../../contracts/box.js';
import { makeRecord } from '../../contracts/label-record.js';

const pending = (ref: string, t: number, pre: GtBox[] = []) =>
  makeRecord({
    source_ref: ref,
    image_width: 200,
    image_height: 100,
    annotations: pre,
    event_time: t,
    labeling_job: '',
    status: 'PENDING',
    device: 'dev-1',
    meta: { frame: { source: ref.split('/').pop() } },
  });

describe('labelling jobs, verification and the simulated workforce', () => {
  let dir: string;
  let store: SqliteLabelStore;
  let clock: number;
  let lab: Labeling;
  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'job-'));
    store = openLabelStore(join(dir, 'labels.db'));
    clock = 1000;
    lab = new Labeling(store, { now: () => clock });
    await store.append([
      pending('s3://b/incoming/a.jpg', 10, [{ class_id: 0, left: 5, top: 5, width: 20, height: 20, confidence: 0.4 }]),
      pending('s3://b/incoming/b.jpg', 11),
      pending('s3://b/incoming/c.jpg', 12),
    ]);
  });
  afterEach(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('runs a two-worker job through consolidation and verification into the store', async () => {
    const job = await lab.createJob({
      name: 'job-1',
      classes: ['scratch'],
      instructions: 'Box every scratch.',
      workersPerImage: 2,
      cap: 2,
    });
    expect(job).toMatchObject({ name: 'job-1', status: 'labelling', counts: { items: 2 }, labelingJob: 'labeling-job/job-1' });
    expect(await lab.createJob({ name: 'job-1', classes: ['other'] })).toMatchObject({ classes: ['scratch'] }); // idempotent by name

    const t1 = lab.nextTask('job-1', 'ann')!;
    expect(t1).toMatchObject({ sourceRef: 's3://b/incoming/a.jpg', width: 200, height: 100, remaining: 2, device: 'dev-1' });
    expect(t1.preAnnotations).toEqual([{ class_id: 0, left: 5, top: 5, width: 20, height: 20, confidence: 0.4 }]);
    // The lease keeps a second worker off nothing: 2 workers per image, so bob may take a.jpg too.
    expect(lab.nextTask('job-1', 'bob')!.sourceRef).toBe('s3://b/incoming/a.jpg');

    await expect(lab.submit('job-1', t1.sourceRef, 'ann', [{ class_id: 1, left: 0, top: 0, width: 5, height: 5 }])).rejects.toThrow(
      /job-1: s3:\/\/b\/incoming\/a\.jpg \(worker ann\): box 0: class_id 1 is not one of the job's 1 classes/,
    );
    await expect(lab.submit('job-1', t1.sourceRef, 'ann', [{ class_id: 0, left: 150, top: 0, width: 80, height: 5 }])).rejects.toThrow(
      /outside the 200x100 image/,
    );
    expect(await lab.submit('job-1', t1.sourceRef, 'ann', [{ class_id: 0, left: 10, top: 10, width: 44, height: 20 }])).toEqual({
      complete: false,
    });
    await expect(lab.submit('job-1', t1.sourceRef, 'ann', [])).rejects.toThrow(/already labelled this image/);
    // ann goes back and amends her boxes while the image still waits for bob
    expect(lab.taskFor('job-1', t1.sourceRef, 'ann').submitted).toEqual([{ class_id: 0, left: 10, top: 10, width: 44, height: 20 }]);
    expect(
      await lab.submit('job-1', t1.sourceRef, 'ann', [{ class_id: 0, left: 10, top: 10, width: 40, height: 20 }], { replace: true }),
    ).toEqual({ complete: false });
    expect(lab.itemsFor('job-1', 'ann').map((i) => i.state)).toEqual(['labelled', 'to-label']);
    // a submission over the job's box cap is refused before anything is recorded
    await lab.createJob({ name: 'capped', classes: ['scratch'], maxBoxes: 2, batch: ['s3://b/incoming/c.jpg'] });
    const many = Array.from({ length: 3 }, () => ({ class_id: 0, left: 1, top: 1, width: 5, height: 5 }));
    await expect(lab.submit('capped', 's3://b/incoming/c.jpg', 'ann', many)).rejects.toMatchObject({ code: 'LABEL_TOO_MANY_BOXES' });
    expect(lab.getJob('capped')).toMatchObject({ maxBoxes: 2, counts: { annotations: 0 } });
    lab.release('capped', 's3://b/incoming/c.jpg');
    await expect(lab.createJob({ name: 'uncapped', classes: ['x'], maxBoxes: 0 })).rejects.toThrow(/maxBoxes must be/);
    clock = 1001;
    const done = await lab.submit('job-1', t1.sourceRef, 'bob', [{ class_id: 0, left: 12, top: 10, width: 40, height: 24 }]);
    expect(done).toEqual({ complete: true });
    await expect(lab.submit('job-1', t1.sourceRef, 'ann', [], { replace: true })).rejects.toThrow(/already has all its labels/);
    await lab.settle();
    // mean of (10,10,50,30) and (12,10,52,34) = (11,10,51,32); IoUs with it: 800/(800+880-800)... both ≈ 0.9
    const consolidated = lab.items('job-1').find((i) => i.sourceRef === t1.sourceRef)!.consolidated!;
    expect(consolidated.map(({ confidence: _c, ...b }) => b)).toEqual([{ class_id: 0, left: 11, top: 10, width: 40, height: 22 }]);
    const mid = await store.latest({ sourceRefs: [t1.sourceRef] });
    expect(mid[0]).toMatchObject({
      status: 'PENDING',
      labeling_job: 'labeling-job/job-1',
      event_time: 1001,
      meta: { workers: ['ann', 'bob'] },
    });

    // b.jpg: nobody sees anything
    for (const w of ['ann', 'bob']) {
      const t = lab.nextTask('job-1', w)!;
      expect(t.sourceRef).toBe('s3://b/incoming/b.jpg');
      await lab.submit('job-1', t.sourceRef, w, []);
    }
    expect(lab.nextTask('job-1', 'ann')).toBeNull();
    await lab.settle();
    expect(lab.getJob('job-1').status).toBe('verifying');

    // a labeller never verifies an image they labelled
    expect(lab.nextVerification('job-1', 'ann')).toBeNull();
    await expect(lab.verify('job-1', t1.sourceRef, { verdict: 'approve', verifier: 'bob' })).rejects.toMatchObject({
      code: 'VERIFY_OWN_LABEL',
    });
    const v1 = lab.nextVerification('job-1', 'vera')!;
    expect(v1.sourceRef).toBe('s3://b/incoming/a.jpg');
    await expect(lab.verify('job-1', v1.sourceRef, { verdict: 'reject', verifier: 'vera' })).rejects.toThrow(/needs a reason/);
    clock = 1002;
    await lab.verify('job-1', v1.sourceRef, { verdict: 'approve', verifier: 'vera' });
    await expect(lab.verify('job-1', v1.sourceRef, { verdict: 'approve', verifier: 'vera' })).rejects.toThrow(
      /already verified \(APPROVED\)/,
    );
    const v2 = lab.nextVerification('job-1', 'vera')!;
    await lab.verify('job-1', v2.sourceRef, { verdict: 'reject', reason: 'scratch at the left edge not boxed', verifier: 'vera' });
    expect(lab.getJob('job-1')).toMatchObject({
      status: 'done',
      counts: { items: 2, annotations: 4, consolidating: 0, consolidated: 2, approved: 1, rejected: 1 },
    });

    const latest = await store.latest();
    expect(latest.map((r) => `${r.source_ref.slice(-5)} ${r.status} ${r.labeling_job}`)).toEqual([
      'a.jpg APPROVED labeling-job/job-1',
      'b.jpg REJECTED labeling-job/job-1',
      'c.jpg PENDING ',
    ]);
    expect(latest[1]!.meta).toMatchObject({ reason: 'scratch at the left edge not boxed', verifier: 'vera' });
    // Point in time: before the verdicts a.jpg was awaiting verification.
    expect((await store.latest({ asOf: 1001.5, status: 'APPROVED' })).length).toBe(0);

    // The rejected image and the one beyond the cap go to the next job, oldest first (capture
    // time, else the latest record's time: c.jpg was ingested at 12, b.jpg rejected at 1002).
    const next = await lab.createJob({ name: 'job-2', classes: ['scratch'] });
    expect(lab.items('job-2').map((i) => i.sourceRef)).toEqual(['s3://b/incoming/c.jpg', 's3://b/incoming/b.jpg']);
    expect(next.counts.items).toBe(2);
    await expect(lab.createJob({ name: 'bad name!', classes: ['x'] })).rejects.toThrow(/job name/);
    await expect(lab.createJob({ classes: [] })).rejects.toThrow(/classes: classes must be a non-empty list/);
  });

  it('leases keep a second worker off an image that needs one label', async () => {
    await lab.createJob({ name: 'one', classes: ['scratch'], workersPerImage: 1 });
    const a = lab.nextTask('one', 'ann')!;
    const b = lab.nextTask('one', 'bob')!;
    expect(a.sourceRef).not.toBe(b.sourceRef);
    clock += 301; // leases expire after 300 s
    expect(lab.nextTask('one', 'cat')!.sourceRef).toBe(a.sourceRef);
  });

  it('simulated workers are reproducible by seed and follow their miss rate; the verifier rejects what does not match', async () => {
    const truth: GtBox[] = Array.from({ length: 400 }, (_, i) => ({
      class_id: 0,
      left: (i % 20) * 9,
      top: Math.floor(i / 20) * 4,
      width: 8,
      height: 3,
    }));
    const w = { id: 'w', seed: 7, noise: 0.02, missRate: 0.25 };
    const a = simulateLabels(truth, 200, 100, w, seededRandom(7));
    expect(simulateLabels(truth, 200, 100, w, seededRandom(7))).toEqual(a);
    expect(simulateLabels(truth, 200, 100, w, seededRandom(8))).not.toEqual(a);
    expect(a.length / truth.length).toBeGreaterThan(0.69); // 1 - 0.25 ± sampling
    expect(a.length / truth.length).toBeLessThan(0.81);
    expect(compareWithTruth([], [])).toMatchObject({ missed: 0, extra: 0 });

    const t: Record<string, GtBox[]> = {
      'a.jpg': [{ class_id: 0, left: 20, top: 20, width: 60, height: 40 }],
      'b.jpg': [],
      // c.jpg: unknown to the truth source -> released, not invented
    };
    await lab.createJob({ name: 'sim', classes: ['scratch'], workersPerImage: 3 });
    const truthSource = async (task: { sourceRef: string }) => t[task.sourceRef.split('/').pop()!] ?? null;
    const res = await runSimulatedWorkforce(lab, 'sim', {
      workers: [
        { id: 's1', seed: 1, noise: 0.02, missRate: 0 },
        { id: 's2', seed: 2, noise: 0.02, missRate: 0 },
        { id: 's3', seed: 3, noise: 0.02, missRate: 1, falsePositiveRate: 1 }, // misses everything, invents a box
      ],
      truth: truthSource,
    });
    expect(res).toMatchObject({ submitted: 6, perWorker: { s1: 2, s2: 2, s3: 2 }, released: ['s3://b/incoming/c.jpg'] });
    const items = lab.items('sim');
    // s3's invented box has one vote of three: dropped; the true box has two: kept.
    expect(items.find((i) => i.sourceRef.endsWith('a.jpg'))!.consolidated).toHaveLength(1);
    const v = await runSimulatedVerifier(lab, 'sim', { id: 'sv', truth: truthSource });
    expect(v).toMatchObject({ approved: 2, rejected: 0 });
    expect(lab.getJob('sim').status).toBe('done');
    // A verifier with a stricter truth rejects, with the reason recorded.
    await lab.createJob({ name: 'sim2', classes: ['scratch'], batch: ['s3://b/incoming/c.jpg'] });
    const c = lab.nextTask('sim2', 'x')!;
    await lab.submit('sim2', c.sourceRef, 'x', [{ class_id: 0, left: 1, top: 1, width: 10, height: 10 }]);
    const v2 = await runSimulatedVerifier(lab, 'sim2', { id: 'sv', truth: async () => [] });
    expect(v2).toMatchObject({ approved: 0, rejected: 1, reasons: { 's3://b/incoming/c.jpg': '1 box(es) on no defect' } });
  });
});

describe('labelling over a store that is not the job database (the Feature Store path)', () => {
  it('appends each record once even when a step is retried after a crash between store and job tables', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'job2-'));
    const inner = openLabelStore(join(dir, 'remote.db'));
    // A store that only offers the LabelStore interface (not the SQLite store the jobs live in), and
    // fails once right after an append has gone through, like a crash before the job row is marked.
    let failAfterAppend = false;
    const remote = {
      kind: 'remote',
      append: async (rs: Parameters<typeof inner.append>[0]) => {
        await inner.append(rs);
        if (failAfterAppend) {
          failAfterAppend = false;
          throw new Error('connection lost after the write');
        }
      },
      latest: inner.latest.bind(inner),
      history: inner.history.bind(inner),
      known: inner.known.bind(inner),
      close: inner.close.bind(inner),
    };
    try {
      await inner.append([pending('s3://b/incoming/a.jpg', 10)]);
      expect(() => new Labeling(remote)).toThrow(/labelling database path is needed/);
      const lab = new Labeling(remote, { dbPath: join(dir, 'jobs.db'), now: () => 500 });
      await lab.createJob({ name: 'r1', classes: ['scratch'] });
      const t = lab.nextTask('r1', 'w')!;
      failAfterAppend = true;
      // the submission is recorded; its consolidation (in the background) fails after the store write
      expect(await lab.submit('r1', t.sourceRef, 'w', [{ class_id: 0, left: 1, top: 1, width: 10, height: 10 }])).toEqual({
        complete: true,
      });
      await expect(lab.settle()).rejects.toThrow(/connection lost/);
      expect(lab.getJob('r1').counts).toMatchObject({ consolidating: 1, consolidated: 0 });
      // the retry finds the PENDING record already there and only marks the job
      await lab.settle();
      expect(lab.getJob('r1').counts).toMatchObject({ consolidating: 0, consolidated: 1 });
      failAfterAppend = true;
      await expect(lab.verify('r1', t.sourceRef, { verdict: 'approve', verifier: 'v' })).rejects.toThrow(/connection lost/);
      await lab.verify('r1', t.sourceRef, { verdict: 'approve', verifier: 'v' });
      expect((await inner.history(t.sourceRef)).map((r) => `${r.status}:${r.labeling_job}`)).toEqual([
        'PENDING:',
        'PENDING:labeling-job/r1',
        'APPROVED:labeling-job/r1',
      ]);
      expect(lab.getJob('r1').status).toBe('done');
      lab.close();
    } finally {
      await inner.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
