import { describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loopHome, parseLoopConfig, type LoopConfigInput } from '../../cloud/loop/config.js';
import { LoopEnv, installationId } from '../../cloud/loop/env.js';
import { awsJobNames } from '../../cloud/loop/aws/clients.js';
import { silentLogger } from '../../lib/log.js';

const ROLE = 'arn:aws:iam::111122223333:role/loupe-sagemaker';
const S3: LoopConfigInput['storage'] = { backend: 's3', region: 'eu-west-1', bucket: 'loupe-uploads' };
const all: LoopConfigInput = {
  storage: S3,
  aws: { region: 'eu-west-1', roleArn: ROLE },
  labelStore: { backend: 'featurestore', featureGroupName: 'loupe-labels' },
  labeling: {
    backend: 'groundtruth',
    groundTruth: { workteamArn: 'arn:aws:sagemaker:eu-west-1:111122223333:workteam/private-crowd/inspectors' },
  },
  train: { backend: 'sagemaker', sagemaker: { image: '111122223333.dkr.ecr.eu-west-1.amazonaws.com/loupe-train:1' } },
  registry: { backend: 'sagemaker' },
  fleet: { backend: 'aws', thingGroupArn: 'arn:aws:iot:eu-west-1:111122223333:thinggroup/press-line-3', bucket: 'loupe-fleet' },
};

describe('loop configuration: choosing AWS stages', () => {
  it('defaults every stage to the embedded one', () => {
    const c = parseLoopConfig({ storage: { endpoint: 'http://127.0.0.1:9000' } }, 'x');
    expect(c.storage).toEqual({
      backend: 'embedded',
      endpoint: 'http://127.0.0.1:9000',
      region: 'us-east-1',
      bucket: 'loupe',
      prefix: 'incoming/',
      forcePathStyle: true,
    });
    expect(c.labelStore).toEqual({ backend: 'sqlite' });
    expect(c.labeling.backend).toBe('simulated');
    expect(c.train.backend).toBe('local');
    expect(c.registry).toEqual({ backend: 'sqlite' });
    expect(c.aws).toEqual({});
    // No storage section: Amazon S3 with the SDK's credentials (virtual-hosted style).
    expect(parseLoopConfig({}, 'x').storage).toEqual({
      backend: 's3',
      region: 'us-east-1',
      bucket: 'loupe',
      prefix: 'incoming/',
      forcePathStyle: false,
    });
  });

  it('fills the AWS sections and re-parses what it wrote (the demo writes the parsed file back)', () => {
    const c = parseLoopConfig(all, 'x');
    expect(c.labelStore).toEqual({ backend: 'featurestore', featureGroupName: 'loupe-labels', createGroup: true });
    expect(c.labeling.groundTruth).toEqual({
      workteamArn: 'arn:aws:sagemaker:eu-west-1:111122223333:workteam/private-crowd/inspectors',
      prefix: 'loupe/labeling/',
      taskTimeLimitSeconds: 600,
      taskAvailabilitySeconds: 864000,
      maxConcurrentTaskCount: 1000,
      pollSeconds: 60,
    });
    expect(c.train.sagemaker).toEqual({
      image: '111122223333.dkr.ecr.eu-west-1.amazonaws.com/loupe-train:1',
      prefix: 'loupe/training/',
      instanceType: 'ml.g4dn.xlarge',
      instanceCount: 1,
      volumeSizeGB: 30,
      maxRuntimeSeconds: 3600,
      pollSeconds: 30,
      maxJobs: 3,
    });
    expect(c.registry).toEqual({ backend: 'sagemaker', prefix: 'loupe/models/' });
    expect(c.fleet).toMatchObject({ backend: 'aws', prefix: 'loupe/components', pollSeconds: 15 });
    expect(parseLoopConfig(JSON.parse(JSON.stringify(c)), 'x')).toEqual(c);
  });

  it.each([
    [{ storage: { backend: 'minio' } }, /^\/h\/loop\.json: storage\.backend: .*'embedded' \| 's3'.* \(got "minio"\)/],
    [{ storage: { backend: 'embedded' } }, /^\/h\/loop\.json: storage\.endpoint: /],
    [
      { storage: { backend: 's3', credentials: { accessKeyId: 'a', secretAccessKey: 'b' } } },
      /^\/h\/loop\.json: storage: Unrecognized key: "credentials"/,
    ],
    [{ storage: { region: 'Europe' } }, /^\/h\/loop\.json: storage\.region: expected an AWS region such as eu-west-1 \(got "Europe"\)/],
    [{ labelStore: { backend: 'dynamodb' } }, /labelStore\.backend: .*'sqlite' \| 'featurestore'.* \(got "dynamodb"\)/],
    [
      { labelStore: { backend: 'featurestore', featureGroupName: 'loupe labels' } },
      /labelStore\.featureGroupName: letters, digits, hyphens and underscores, at most 64 \(got "loupe labels"\)/,
    ],
    [
      { labelStore: { backend: 'featurestore', featureGroupName: 'l' } },
      /labelStore\.region: Feature Store needs a region \(here or aws\.region\)/,
    ],
    [
      { aws: { region: 'eu-west-1' }, labelStore: { backend: 'featurestore', featureGroupName: 'l' } },
      /labelStore\.roleArn: creating the feature group needs a role/,
    ],
    [{ labeling: { backend: 'groundtruth' }, storage: S3 }, /labeling\.groundTruth: required when labeling\.backend is "groundtruth"/],
    [
      { labeling: { backend: 'groundtruth', groundTruth: { workteamArn: 'inspectors' } } },
      /labeling\.groundTruth\.workteamArn: expected a SageMaker workteam ARN \(got "inspectors"\)/,
    ],
    [
      { ...all, aws: { region: 'eu-west-1' } },
      /labeling\.groundTruth\.roleArn: Ground Truth needs an execution role \(here or aws\.roleArn\)/,
    ],
    [{ train: { backend: 'sagemaker' }, storage: S3 }, /train\.sagemaker: required when train\.backend is "sagemaker"/],
    [{ train: { backend: 'azureml' } }, /train\.backend: .*\(got "azureml"\)/],
    [
      { train: { backend: 'sagemaker', sagemaker: { image: 'loupe-train:latest' } } },
      /train\.sagemaker\.image: expected an ECR image URI .* \(got "loupe-train:latest"\)/,
    ],
    [
      {
        train: {
          backend: 'sagemaker',
          sagemaker: { image: '111122223333.dkr.ecr.eu-west-1.amazonaws.com/t:1', instanceType: 'p3.2xlarge' },
        },
      },
      /train\.sagemaker\.instanceType: .*\(got "p3\.2xlarge"\)/,
    ],
    [
      { train: { backend: 'sagemaker', sagemaker: { image: '111122223333.dkr.ecr.eu-west-1.amazonaws.com/t:1' } }, storage: S3 },
      /train\.sagemaker\.region: SageMaker training needs a region/,
    ],
    [{ registry: { backend: 'mlflow' } }, /registry\.backend: .*'sqlite' \| 'sagemaker'.* \(got "mlflow"\)/],
    [{ registry: { backend: 'sagemaker' }, storage: S3 }, /registry\.region: the SageMaker Model Registry needs a region/],
    [
      { fleet: { backend: 'aws', thingGroupArn: 'press-line-3', bucket: 'b-1' } },
      /fleet\.thingGroupArn: expected a thing group ARN .* \(got "press-line-3"\)/,
    ],
    [{ aws: { roleArn: 'loupe-role' } }, /aws\.roleArn: expected an IAM role ARN .* \(got "loupe-role"\)/],
    [{ aws: { namePrefix: 'my_loupe' } }, /aws\.namePrefix: letters, digits and single hyphens \(got "my_loupe"\)/],
    // AWS services cannot reach the embedded store on this machine.
    [
      { ...all, storage: { endpoint: 'http://127.0.0.1:9000' } },
      /storage\.backend: must be "s3", not "embedded", when labeling\.backend is "groundtruth": AWS services exchange files with loupe through S3/,
    ],
  ])('names the key and the bad value: %j', (raw, re) => {
    expect(() => parseLoopConfig(raw, '/h/loop.json')).toThrow(re);
  });

  it('opens the AWS stages without calling AWS; job names carry the installation id', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'lc-aws-'));
    try {
      const home = loopHome(dir);
      const id = installationId(home);
      expect(id).toMatch(/^[0-9a-f]{8}$/);
      expect(installationId(home)).toBe(id);
      const env = await LoopEnv.open(parseLoopConfig(all, 'x'), home, silentLogger);
      try {
        expect(env.installationId).toBe(id);
        expect(env.awsNamePrefix).toBe(`loupe-${id}`);
        expect(env.labelsMirror?.watermark()).toBe(0);
        expect(env.registryMirror).not.toBeNull();
        // One adapter per port, chosen from the configuration when the env opened.
        expect(env.ports.labeling.backend).toBe('groundtruth');
        expect(env.ports.labeling.jobName(12)).toBe(`loupe-${id}-r12`);
        expect(env.ports.training.backend).toBe('sagemaker');
        expect(env.ports.storage.backend).toBe('s3');
        expect(env.fleet.kind).toBe('aws');
        expect(env.fleet.target).toBe('arn:aws:iot:eu-west-1:111122223333:thinggroup/press-line-3');
      } finally {
        await env.close();
      }
      const names = awsJobNames(`loupe-${id}`, 12);
      expect(names.labeling).toBe(`loupe-${id}-r12`);
      expect([names.training(), names.training(2)]).toEqual([`loupe-${id}-r12-train`, `loupe-${id}-r12-train-2`]);
      // Within SageMaker's 63 characters with the longest prefix allowed.
      expect(awsJobNames('x'.repeat(36), 99999).training(9).length).toBeLessThanOrEqual(63);
      expect(`${awsJobNames('x'.repeat(36), 99999).labeling}-verify`.length).toBeLessThanOrEqual(63);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
