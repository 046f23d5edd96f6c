import type { Labeling } from '../../labeling/jobs.js';
import { done, halted } from '../runner.js';
import type { LoopConfig } from '../config.js';
import type { LabelingPort } from '../ports.js';

/**
 * Labelling by people in loupe's labelling UI (`labeling.backend: "ui"`, `loupe labels serve`):
 * the step waits up to `labeling.waitMinutes` for them, then ends the run (halted); the next run
 * takes the job up where they left it.
 */
export function uiLabeling(config: LoopConfig, jobs: Labeling): LabelingPort {
  const waitMs = config.labeling.waitMinutes * 60_000;
  return {
    backend: 'ui',
    jobs,
    jobName: (runId) => `loop-${runId}`,
    async label(job, h) {
      // Images the server had not consolidated when it stopped are consolidated here.
      await jobs.settle();
      const finished = await waitFor(() => jobs.getJob(job).status !== 'labelling', waitMs, h.signal);
      const j = jobs.getJob(job);
      return finished
        ? done({ job, items: j.counts.items, annotations: j.counts.annotations })
        : halted({ job, items: j.counts.items }, `labelling job ${job} is open for people (loupe labels serve); the next run takes it up`);
    },
    async verify(job, h) {
      const finished = await waitFor(() => jobs.getJob(job).status === 'done', waitMs, h.signal);
      const j = jobs.getJob(job);
      if (!finished)
        return halted({ job, approved: j.counts.approved, rejected: j.counts.rejected }, `verification of ${job} is waiting for people`);
      // The snapshot is taken as of this moment, fixed here so a resumed run gets the same one.
      return done({ job, approved: j.counts.approved, rejected: j.counts.rejected, verifiedAt: Date.now() / 1000, ...(await h.mirror()) });
    },
  };
}

async function waitFor(cond: () => boolean, timeoutMs: number, signal?: AbortSignal): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (cond()) return true;
    if (Date.now() >= deadline || signal?.aborted) return false;
    await new Promise((r) => setTimeout(r, 2000));
  }
}
