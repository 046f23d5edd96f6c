import type { Logger } from 'pino';
import { LoupeError } from '../../../lib/errors.js';
import { GroundTruthBackend } from '../../labeling/groundtruth.js';
import type { Labeling } from '../../labeling/jobs.js';
import { done, waiting, type StepOutcome } from '../runner.js';
import type { LabelResult, VerifyResult } from '../ports.js';

/**
 * The label and verify steps on SageMaker Ground Truth. Each step finds its job by name first
 * (DescribeLabelingJob) and creates it only when SageMaker has none, so a run killed after
 * CreateLabelingJob re-attaches to the job it started instead of paying for a second one. People
 * take hours: a step waits up to `waitMs`, then pauses the run (`wait`); the next run resumes the
 * step, which re-attaches and, once the job completed, reads its output manifest into the label
 * store (idempotent per image: see Labeling.recordConsolidated and verify).
 */
export interface GroundTruthStepDeps {
  gt: GroundTruthBackend;
  labeling: Labeling;
  waitMs: number;
  pollMs: number;
  signal?: AbortSignal;
  log: Logger;
}

type JobState = Awaited<ReturnType<GroundTruthBackend['status']>>;
const TERMINAL = new Set(['Completed', 'Failed', 'Stopped']);

/** DescribeLabelingJob, or undefined when SageMaker knows no job of that name. */
export async function labelingJobState(gt: GroundTruthBackend, name: string): Promise<JobState | undefined> {
  try {
    return await gt.status(name);
  } catch (e) {
    const err = e as { name?: string; message?: string };
    if (err.name === 'ResourceNotFound' || (err.name === 'ValidationException' && /not found|does not exist/i.test(err.message ?? '')))
      return undefined;
    throw e;
  }
}

async function waitForJob(d: GroundTruthStepDeps, name: string): Promise<JobState> {
  const deadline = Date.now() + d.waitMs;
  for (;;) {
    const st = await d.gt.status(name);
    if (TERMINAL.has(st.status) || Date.now() + d.pollMs > deadline || d.signal?.aborted) return st;
    await new Promise((r) => setTimeout(r, d.pollMs));
  }
}

function progressText(st: JobState): string {
  const c = st.counters;
  return c ? `${c.TotalLabeled ?? 0} labelled, ${c.Unlabeled ?? 0} to go` : 'no counts yet';
}

async function attachOrStart(d: GroundTruthStepDeps, name: string, start: () => Promise<unknown>): Promise<{ created: boolean }> {
  if (await labelingJobState(d.gt, name)) {
    d.log.info({ job: name }, 're-attached to the Ground Truth job');
    return { created: false };
  }
  await start();
  return { created: true };
}

export async function groundTruthLabel(d: GroundTruthStepDeps, job: string): Promise<StepOutcome<LabelResult>> {
  const { created } = await attachOrStart(d, job, () => d.gt.startLabelingJob(d.labeling, job));
  const st = await waitForJob(d, job);
  const items = d.labeling.getJob(job).counts.items;
  const gt = { job, status: st.status, created, counters: st.counters ?? null };
  if (!TERMINAL.has(st.status)) {
    return waiting(
      { job, items, groundTruth: gt },
      `Ground Truth labelling job ${job} is ${st.status} (${progressText(st)}); \`loupe loop run\` or \`loupe loop watch\` picks it up`,
    );
  }
  if (st.status === 'Failed')
    throw new LoupeError('GT_FAILED', `Ground Truth labelling job failed: ${st.failure ?? 'no reason given'}`, { input: job });
  const r = await d.gt.importLabels(d.labeling, job);
  const j = d.labeling.getJob(job);
  return done({
    job,
    items: j.counts.items,
    consolidated: j.counts.consolidated,
    recorded: r.recorded,
    released: r.failed,
    groundTruth: gt,
  });
}

export async function groundTruthVerify(d: GroundTruthStepDeps, job: string): Promise<StepOutcome<VerifyResult>> {
  const name = GroundTruthBackend.verificationJobName(job);
  const { created } = await attachOrStart(d, name, () => d.gt.startVerificationJob(d.labeling, job));
  const st = await waitForJob(d, name);
  const gt = { job: name, status: st.status, created, counters: st.counters ?? null };
  if (!TERMINAL.has(st.status)) {
    const j = d.labeling.getJob(job);
    return waiting(
      { job, approved: j.counts.approved, rejected: j.counts.rejected, groundTruth: gt },
      `Ground Truth verification job ${name} is ${st.status} (${progressText(st)}); \`loupe loop run\` or \`loupe loop watch\` picks it up`,
    );
  }
  if (st.status === 'Failed')
    throw new LoupeError('GT_FAILED', `Ground Truth verification job failed: ${st.failure ?? 'no reason given'}`, { input: name });
  const r = await d.gt.importVerification(d.labeling, job);
  const j = d.labeling.getJob(job);
  return done({ job, approved: j.counts.approved, rejected: j.counts.rejected, unverified: r.unverified, groundTruth: gt });
}
