import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { S3Client } from '@aws-sdk/client-s3';
import {
  CreateTrainingJobCommand,
  DescribeTrainingJobCommand,
  SageMakerClient,
  SageMakerServiceException,
} from '@aws-sdk/client-sagemaker';
import { mockClient } from 'aws-sdk-client-mock';
import { startObjectStore, type ObjectStore } from '../../embedded/objectstore/index.js';
import { trainOrAttach } from '../../cloud/loop/aws/sagemaker-train.js';
import { SageMakerRegistryMirror } from '../../cloud/loop/aws/registry-mirror.js';
import { SageMakerModelRegistry } from '../../cloud/registry/sagemaker-registry.js';
import { openRegistry } from '../../cloud/registry/sqlite-registry.js';
import { seedShippedModel, SHIPPED_MODEL_DIR } from '../../cloud/registry/seed.js';
import { isLoupeError } from '../../lib/errors.js';
import { metalTagsSubset } from '../training/yolo-fixture.js';
import { installFakeAws, readCalls } from './fake-aws.js';

const ROLE = 'arn:aws:iam::111122223333:role/loupe-sagemaker';
const IMAGE = '111122223333.dkr.ecr.eu-west-1.amazonaws.com/loupe-train:1';

let dir: string;
let store: ObjectStore;
let s3: S3Client;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lp-awss-'));
  store = await startObjectStore({ dir: join(dir, 's3'), buckets: ['loupe-ml'] });
  s3 = new S3Client(store.clientConfig);
});
afterAll(async () => {
  s3?.destroy();
  await store?.stop();
  await rm(dir, { recursive: true, force: true });
});

describe('SageMaker training step: names derived from the run, a new job only after a failed one', () => {
  const sm = mockClient(SageMakerClient);
  afterEach(() => sm.reset());
  afterAll(() => sm.restore());

  it('skips a failed job, creates <name>-2, and gives up after maxJobs naming each job', async () => {
    const data = await metalTagsSubset(join(dir, 'data'), { limit: { train: 4, val: 2, test: 2 } });
    const failed = (name: string, reason: string) => ({
      TrainingJobName: name,
      TrainingJobStatus: 'Failed' as const,
      SecondaryStatus: 'Failed' as const,
      FailureReason: reason,
    });
    const created = new Set<string>();
    sm.on(DescribeTrainingJobCommand).callsFake((input: { TrainingJobName: string }) => {
      if (input.TrainingJobName === 'loupe-ab12cd34-r7-train') return failed(input.TrainingJobName, 'AlgorithmError: CUDA out of memory');
      // The job this attempt creates fails as train.py refuses the data (FailureReason `CODE: message`).
      if (created.has(input.TrainingJobName)) return failed(input.TrainingJobName, 'DATA_NO_LABELS: the train split has no labelled boxes');
      throw new SageMakerServiceException({
        name: 'ValidationException',
        $fault: 'client',
        message: 'Requested resource not found.',
        $metadata: {},
      });
    });
    sm.on(CreateTrainingJobCommand).callsFake((input: { TrainingJobName: string }) => {
      created.add(input.TrainingJobName);
      return { TrainingJobArn: `arn:aws:sagemaker:eu-west-1:111122223333:training-job/${input.TrainingJobName}` };
    });
    const step = {
      jobName: (n: number) => `loupe-ab12cd34-r7-train${n > 1 ? `-${n}` : ''}`,
      maxJobs: 2,
      options: { data, base: join(SHIPPED_MODEL_DIR, 'model.pt'), epochs: 1, imgsz: 160, batch: 4, patience: 5, seed: 0, workers: 0 },
      dir: join(dir, 'train'),
      config: { bucket: 'loupe-ml', roleArn: ROLE, image: IMAGE, pollSeconds: 0.01 },
      clients: { s3, sagemaker: new SageMakerClient({ region: 'eu-west-1' }) },
      hooks: {},
    };
    const first = await trainOrAttach(step).catch((e: unknown) => e);
    expect(isLoupeError(first) && first.code).toBe('DATA_NO_LABELS');
    expect(sm.commandCalls(CreateTrainingJobCommand).map((c) => c.args[0].input.TrainingJobName)).toEqual(['loupe-ab12cd34-r7-train-2']);
    expect(
      sm
        .commandCalls(DescribeTrainingJobCommand)
        .slice(0, 2)
        .map((c) => c.args[0].input),
    ).toEqual([{ TrainingJobName: 'loupe-ab12cd34-r7-train' }, { TrainingJobName: 'loupe-ab12cd34-r7-train-2' }]);
    // Resumed again: both jobs failed, maxJobs is 2 → refused, nothing created.
    const again = await trainOrAttach(step).catch((e: unknown) => e);
    expect(isLoupeError(again) && again.code).toBe('SAGEMAKER_TOO_MANY_JOBS');
    expect((again as Error).message).toBe(
      'loupe-ab12cd34-r7-train: 2 training job(s) of this run failed or stopped (loupe-ab12cd34-r7-train: Failed AlgorithmError: CUDA out of memory; loupe-ab12cd34-r7-train-2: Failed DATA_NO_LABELS: the train split has no labelled boxes); raise train.sagemaker.maxJobs or abandon the run (loupe loop abandon)',
    );
    expect(sm.commandCalls(CreateTrainingJobCommand)).toHaveLength(1);
  });
});

describe('SageMaker Model Registry mirror: status changes made locally reach SageMaker', () => {
  it('mirrors each version once, then sends a rejection as UpdateModelPackage (exact shape), once', async () => {
    const fake = installFakeAws(join(dir, 'aws'), { region: 'eu-west-1' });
    const local = openRegistry(join(dir, 'registry'));
    const mirror = new SageMakerRegistryMirror(
      local,
      new SageMakerModelRegistry({
        sagemaker: new SageMakerClient({ region: 'eu-west-1' }),
        s3,
        bucket: 'loupe-ml',
        prefix: 'loupe/models',
      }),
      join(dir, 'registry'),
    );
    try {
      const seed = await seedShippedModel(local);
      const [m] = await mirror.sync('metal-tags');
      expect(m).toEqual({
        localRef: 'metal-tags:1',
        ref: 'metal-tags:1',
        arn: 'arn:aws:sagemaker:eu-west-1:111122223333:model-package/metal-tags/1',
        status: 'approved',
      });
      expect(await mirror.sync('metal-tags')).toEqual([m]);
      await local.setStatus(seed.ref, 'rejected', { by: 'user:ines', reason: 'false alarms on line 3' });
      const [r] = await mirror.sync('metal-tags');
      expect(r!.status).toBe('rejected');
      await mirror.sync('metal-tags');
      const calls = readCalls(join(dir, 'aws'));
      expect(calls.filter((c) => c.cmd === 'CreateModelPackage')).toHaveLength(1);
      expect(calls.filter((c) => c.cmd === 'UpdateModelPackage').map((c) => c.input)).toEqual([
        {
          ModelPackageArn: 'arn:aws:sagemaker:eu-west-1:111122223333:model-package/metal-tags/1',
          ModelApprovalStatus: 'Rejected',
          ApprovalDescription: 'user:ines: false alarms on line 3',
          CustomerMetadataProperties: { 'loupe:status-by': 'user:ines' },
        },
      ]);
      expect(calls.some((c) => c.cmd === 'ListModelPackages')).toBe(false);
    } finally {
      mirror.close();
      local.close();
      fake.restore();
    }
  });
});
