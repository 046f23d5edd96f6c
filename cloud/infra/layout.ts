import { Aws } from 'aws-cdk-lib';
import type { LoopConfigInput } from '../loop/config.js';
import type { InfraConfig } from './config.js';

/**
 * Where things live in the ML bucket, and the loop configuration the handlers on AWS run with
 * (the same schema as `loop.json`, so the same ports are chosen: cloud/loop/config.ts). Values
 * may be CDK tokens (bucket names, role ARNs); the stacks render them into the functions'
 * environments and the `LoopJson` output.
 */
export const ML_PREFIX = {
  /** The loop home: SQLite stores, the ingest watermark, registry artefacts (cloud/serverless/state-home.ts). */
  home: 'loupe/home/',
  labeling: 'loupe/labeling/',
  training: 'loupe/training/',
  pipeline: 'loupe/pipeline/',
  models: 'loupe/models/',
  components: 'loupe/components',
  featureStore: 'loupe/featurestore/',
  athena: 'loupe/athena/',
} as const;

export interface CloudRefs {
  uploadsBucket: string;
  mlBucket: string;
  /** The role Ground Truth jobs run as. */
  groundTruthRoleArn: string;
  featureGroupName: string;
  thingGroupArn: string;
  /** For a person's loop.json: the SageMaker training image and the role training jobs run as. */
  trainingImage?: string;
  trainingRoleArn?: string;
}

/** Names derived from the app's name. */
export function namesOf(c: InfraConfig) {
  const n = c.name;
  // Bucket names are global: the app's name, what the bucket is, the account and the region
  // (the account may be a token: `${AWS::AccountId}` in an account-agnostic template).
  const account = c.account ?? Aws.ACCOUNT_ID;
  return {
    buckets: {
      uploads: `${n}-uploads-${account}-${c.region}`,
      ml: `${n}-ml-${account}-${c.region}`,
      logs: `${n}-logs-${account}-${c.region}`,
    },
    stack: (part: 'storage' | 'edge' | 'labelling' | 'model-build' | 'deploy') => `${n}-${part}`,
    featureGroup: `${n}-labels`,
    pipeline: `${n}-model-build`,
    labellingStateMachine: `${n}-labelling`,
    deployStateMachine: `${n}-deploy`,
    roleAlias: `${n}-tes`,
    tesPolicy: `${n}-tes-policy`,
    corePolicy: `${n}-core-policy`,
    /** Prefix of AWS job names (Ground Truth): <name>-r<run>. */
    jobPrefix: n,
    counterTable: `${n}-upload-counter`,
    /** IAM role names are per account: the region keeps two regions' apps apart. */
    groundTruthRole: `${n}-ground-truth-${c.region}`,
  };
}

/**
 * The loop configuration of the handlers (`person: false`) or of a person's `loop.json` for
 * `loupe loop` against the same resources (`person: true`: training on SageMaker, the confirm
 * step waiting longer).
 */
export function cloudLoopConfig(c: InfraConfig, r: CloudRefs, o: { person?: boolean } = {}): LoopConfigInput {
  const l = c.labelling;
  const mb = c.modelBuild;
  return {
    group: c.group,
    classes: c.classes,
    storage: { backend: 's3', region: c.region, bucket: r.uploadsBucket, prefix: `${c.storage.uploadPrefix}/` },
    aws: { region: c.region, roleArn: r.groundTruthRoleArn, bucket: r.mlBucket, namePrefix: namesOf(c).jobPrefix },
    labelStore: {
      backend: 'featurestore',
      featureGroupName: r.featureGroupName,
      createGroup: false,
      offlineStoreS3Uri: `s3://${r.mlBucket}/${ML_PREFIX.featureStore}`,
    },
    labeling: {
      backend: 'groundtruth',
      workersPerImage: l.workersPerImage,
      cap: l.cap,
      // On AWS the state machine waits between looks; a step only looks once.
      waitMinutes: o.person ? l.pollMinutes : 0,
      groundTruth: {
        workteamArn: l.workteamArn,
        prefix: ML_PREFIX.labeling,
        taskTimeLimitSeconds: l.taskTimeLimitSeconds,
        taskAvailabilitySeconds: l.taskAvailabilitySeconds,
        pollSeconds: 60,
      },
    },
    train: {
      epochs: mb.epochs,
      imgsz: mb.imgsz,
      batch: mb.batch,
      ...(o.person && r.trainingImage && r.trainingRoleArn
        ? {
            backend: 'sagemaker' as const,
            sagemaker: {
              image: r.trainingImage,
              roleArn: r.trainingRoleArn,
              prefix: ML_PREFIX.training,
              instanceType: mb.trainingInstanceType,
              maxRuntimeSeconds: mb.maxRuntimeSeconds,
            },
          }
        : { backend: 'local' as const }),
    },
    gate: { metric: mb.gate.metric, threshold: mb.gate.threshold, tolerance: mb.gate.tolerance, split: mb.gate.split },
    policy: { autoApprove: mb.approval === 'auto', requireGate: true },
    registry: { backend: 'sagemaker', prefix: ML_PREFIX.models },
    fleet: {
      backend: 'aws',
      thingGroupArn: r.thingGroupArn,
      bucket: r.mlBucket,
      prefix: ML_PREFIX.components,
      rollout: c.edge.rollout,
      pollSeconds: 15,
      // The state machine retries confirm until the rollout's own timeout; one look lasts a minute.
      confirmTimeoutSeconds: o.person ? 1800 : 60,
    },
  };
}

/** The merge each edge component gets in the thing group's deployment (the uploader's bucket, region, prefix). */
export function componentConfiguration(c: InfraConfig, r: Pick<CloudRefs, 'uploadsBucket'>): Record<string, Record<string, unknown>> {
  return {
    'loupe.Uploader': { bucket: r.uploadsBucket, prefix: c.storage.uploadPrefix, region: c.region },
  };
}
