import { runSimulatedVerifier, runSimulatedWorkforce } from '../../labeling/workforce.js';
import type { Labeling } from '../../labeling/jobs.js';
import { done } from '../runner.js';
import type { LoopConfig } from '../config.js';
import type { LabelingPort, LabelStorePort, ObjectStoragePort } from '../ports.js';
import { truthByContent } from '../truth.js';

/**
 * Labelling by simulated workers and a simulated verifier (`labeling.backend: "simulated"`): the
 * demo's and the tests' stand-in for people, with the reference labels as ground truth (truth.ts).
 */
export function simulatedLabeling(config: LoopConfig, jobs: Labeling, labels: LabelStorePort, storage: ObjectStoragePort): LabelingPort {
  const l = config.labeling;
  const truth = () => truthByContent(labels.store, storage.images, config.history.labelsCsv);
  return {
    backend: 'simulated',
    jobs,
    jobName: (runId) => `loop-${runId}`,
    async label(job, h) {
      const workers = Array.from({ length: l.workersPerImage }, (_, i) => ({
        id: `sim-${i + 1}`,
        seed: l.seed * 100 + i,
        noise: l.noise,
        missRate: l.missRate,
        falsePositiveRate: l.falsePositiveRate,
      }));
      const r = await runSimulatedWorkforce(jobs, job, { workers, truth: await truth(), log: h.log });
      const j = jobs.getJob(job);
      return done({
        job,
        items: j.counts.items,
        submitted: r.submitted,
        annotations: j.counts.annotations,
        released: r.released.length,
        ...(await h.mirror()),
      });
    },
    async verify(job, h) {
      await runSimulatedVerifier(jobs, job, { id: 'sim-verifier', truth: await truth(), log: h.log });
      const j = jobs.getJob(job);
      // The snapshot is taken as of this moment, fixed here so a resumed run gets the same one.
      return done({ job, approved: j.counts.approved, rejected: j.counts.rejected, verifiedAt: Date.now() / 1000, ...(await h.mirror()) });
    },
  };
}
