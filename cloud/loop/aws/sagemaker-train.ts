import { rm } from 'node:fs/promises';
import { LoupeError } from '../../../lib/errors.js';
import {
  attachTrainingJob,
  describeTrainingJob,
  trainSageMaker,
  type SageMakerClients,
  type SageMakerHooks,
  type SageMakerTrainConfig,
} from '../../training/sagemaker-trainer.js';
import type { TrainOptions, TrainResult } from '../../training/options.js';

/**
 * The train step on SageMaker. The job is named after the run (`<prefix>-r<run>-train`), and
 * the step asks SageMaker for that name before anything else: a job that is running or
 * finished is re-attached to (waited for, its model.tar.gz fetched), so a loop killed after
 * CreateTrainingJob never starts a second paid job. Only a job that failed or was stopped is
 * followed by a new one, `-2`, `-3`, ... up to `maxJobs` (a person resuming a failed run wants
 * it trained again). Channels are uploaded under the job's own prefix, so a retry after a crash
 * before CreateTrainingJob overwrites the same keys.
 */
export interface SageMakerTrainStep {
  jobName: (n: number) => string;
  maxJobs: number;
  options: TrainOptions;
  dir: string;
  config: Omit<SageMakerTrainConfig, 'jobName'>;
  clients: SageMakerClients;
  hooks: SageMakerHooks;
}

export async function trainOrAttach(
  s: SageMakerTrainStep,
): Promise<{ result: TrainResult; attached: boolean; earlier: { job: string; status: string; reason?: string }[] }> {
  const earlier: { job: string; status: string; reason?: string }[] = [];
  for (let n = 1; n <= s.maxJobs; n++) {
    const name = s.jobName(n);
    const d = await describeTrainingJob(s.clients.sagemaker, name);
    if (d && (d.TrainingJobStatus === 'Failed' || d.TrainingJobStatus === 'Stopped')) {
      earlier.push({ job: name, status: d.TrainingJobStatus, ...(d.FailureReason ? { reason: d.FailureReason } : {}) });
      continue;
    }
    // Whatever an earlier attempt unpacked may be cut off: fetch again into an empty folder.
    await rm(s.dir, { recursive: true, force: true });
    if (d) return { result: await attachTrainingJob(name, s.dir, s.config, s.clients, s.hooks), attached: true, earlier };
    return { result: await trainSageMaker(s.options, s.dir, { ...s.config, jobName: name }, s.clients, s.hooks), attached: false, earlier };
  }
  throw new LoupeError(
    'SAGEMAKER_TOO_MANY_JOBS',
    `${s.maxJobs} training job(s) of this run failed or stopped (${earlier.map((e) => `${e.job}: ${e.status}${e.reason ? ` ${e.reason}` : ''}`).join('; ')}); raise train.sagemaker.maxJobs or abandon the run (loupe loop abandon)`,
    { input: s.jobName(1) },
  );
}
