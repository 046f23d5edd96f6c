import { trainSageMaker, type SageMakerClients, type SageMakerTrainConfig } from '../../training/sagemaker-trainer.js';
import { trainOrAttach } from '../aws/sagemaker-train.js';
import type { TrainingPort } from '../ports.js';

export interface SageMakerTrainingSettings {
  config: Omit<SageMakerTrainConfig, 'jobName'>;
  clients: SageMakerClients;
  /**
   * Resume the run's job (the loop): jobs are named after the run, re-attached by a resumed run,
   * and only a failed or stopped job is followed by another, up to `maxJobs`
   * (aws/sagemaker-train.ts). Without it (`loupe train`) every call starts one new job named
   * after the time.
   */
  resumeRun?: { jobName: (runId: number, n: number) => string; maxJobs: number };
}

/** Training on SageMaker (`train.backend: "sagemaker"`, `loupe train --backend sagemaker`). Channels and artefacts go through `clients.s3`. */
export function sageMakerTraining(s: SageMakerTrainingSettings): TrainingPort {
  return {
    backend: 'sagemaker',
    async train({ runId, dir, options }, h) {
      const hooks = { log: h.log, signal: h.signal, progressStream: h.progressStream };
      const resume = s.resumeRun;
      if (!resume) return { result: await trainSageMaker(options, dir, s.config, s.clients, hooks) };
      if (runId === undefined) throw new Error('unreachable: the loop trains with a run id');
      const r = await trainOrAttach({
        jobName: (n) => resume.jobName(runId, n),
        maxJobs: resume.maxJobs,
        options,
        dir,
        config: s.config,
        clients: s.clients,
        hooks,
      });
      return { result: r.result, extra: { sagemaker: { ...r.result.job, attached: r.attached, earlier: r.earlier } } };
    },
  };
}
