import type { S3Client } from '@aws-sdk/client-s3';
import type { AwsClients } from '../aws/clients.js';
import { awsJobNames, awsStage } from '../aws/clients.js';
import { trainOrAttach } from '../aws/sagemaker-train.js';
import type { LoopConfig } from '../config.js';
import type { TrainingPort } from '../ports.js';

/**
 * Training on SageMaker (`train.backend: "sagemaker"`): a training job named after the run,
 * re-attached by a resumed run; only a failed or stopped job is followed by another, up to
 * `train.sagemaker.maxJobs` (aws/sagemaker-train.ts). Channels and artefacts go through `s3`.
 */
export function sageMakerTraining(config: LoopConfig, aws: AwsClients, s3: S3Client, namePrefix: string): TrainingPort {
  const sm = config.train.sagemaker!;
  const a = awsStage(config, sm);
  return {
    backend: 'sagemaker',
    async train({ runId, dir, options }, h) {
      const r = await trainOrAttach({
        jobName: awsJobNames(namePrefix, runId).training,
        maxJobs: sm.maxJobs,
        options,
        dir,
        config: {
          bucket: a.bucket,
          prefix: sm.prefix.replace(/\/$/, ''),
          roleArn: a.roleArn!,
          image: sm.image,
          instanceType: sm.instanceType,
          instanceCount: sm.instanceCount,
          volumeSizeGB: sm.volumeSizeGB,
          maxRuntimeSeconds: sm.maxRuntimeSeconds,
          pollSeconds: sm.pollSeconds,
        },
        clients: { s3, sagemaker: aws.sagemaker(a.region) },
        hooks: { log: h.log, signal: h.signal, progressStream: h.progressStream },
      });
      return { result: r.result, extra: { sagemaker: { ...r.result.job, attached: r.attached, earlier: r.earlier } } };
    },
  };
}
