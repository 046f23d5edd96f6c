import type { GroundTruthBackend } from '../../labeling/groundtruth.js';
import type { Labeling } from '../../labeling/jobs.js';
import { awsJobNames } from '../aws/clients.js';
import { groundTruthLabel, groundTruthVerify, type GroundTruthStepDeps } from '../aws/groundtruth-steps.js';
import type { LoopConfig } from '../config.js';
import { done } from '../runner.js';
import type { LabelingHooks, LabelingPort } from '../ports.js';

/**
 * Labelling on SageMaker Ground Truth (`labeling.backend: "groundtruth"`): a labelling job and a
 * verification job per run, named after the run with the installation's prefix, attached to
 * again by a resumed run (aws/groundtruth-steps.ts). While people work the run waits.
 */
export function groundTruthLabeling(config: LoopConfig, jobs: Labeling, gt: GroundTruthBackend, namePrefix: string): LabelingPort {
  const deps = (h: LabelingHooks): GroundTruthStepDeps => ({
    gt,
    labeling: jobs,
    waitMs: config.labeling.waitMinutes * 60_000,
    pollMs: (config.labeling.groundTruth?.pollSeconds ?? 60) * 1000,
    signal: h.signal,
    log: h.log,
  });
  return {
    backend: 'groundtruth',
    jobs,
    jobName: (runId) => awsJobNames(namePrefix, runId).labeling,
    async label(job, h) {
      const r = await groundTruthLabel(deps(h), job);
      return { ...r, output: { ...r.output, ...(await h.mirror()) } };
    },
    async verify(job, h) {
      const j0 = jobs.getJob(job);
      if (j0.counts.consolidated === 0) return done({ job, approved: 0, rejected: 0, verifiedAt: Date.now() / 1000 });
      const r = await groundTruthVerify(deps(h), job);
      if (r.status !== 'done') return r;
      // The snapshot is taken as of this moment, fixed here so a resumed run gets the same one.
      return done({ ...r.output, verifiedAt: Date.now() / 1000, ...(await h.mirror()) });
    },
  };
}
