import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DescribeModelPackageGroupCommand, SageMakerClient } from '@aws-sdk/client-sagemaker';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { SageMakerModelRegistry } from '../../cloud/registry/sagemaker-registry.js';
import { findByKeyConformance } from '../helpers/registry-conformance.js';
import { startMoto, type MotoServer } from '../helpers/moto.js';

/**
 * The findByKey contract on the SageMaker Model Registry adapter, answered by moto's server
 * (ListModelPackages with CreationTimeAfter, DescribeModelPackage's CustomerMetadataProperties,
 * DescribeModelPackageGroup): the same suite as the SQLite registry's. Full tier: moto is Python.
 */
describe("findByKey conformance: SageMaker Model Registry on moto's server", () => {
  let moto: MotoServer;
  let sagemaker: SageMakerClient;
  let s3: S3Client;
  let reg: SageMakerModelRegistry;
  beforeAll(async () => {
    moto = await startMoto('us-east-1');
    sagemaker = new SageMakerClient(moto.clientConfig);
    s3 = new S3Client({ ...moto.clientConfig, forcePathStyle: true });
    await s3.send(new CreateBucketCommand({ Bucket: 'models-bucket' }));
    reg = new SageMakerModelRegistry({ sagemaker, s3, bucket: 'models-bucket' });
  }, 180_000);
  afterAll(async () => {
    sagemaker?.destroy();
    s3?.destroy();
    await moto?.stop();
  });
  findByKeyConformance(() => reg);

  it('looking up in a group that does not exist creates nothing', async () => {
    expect(await reg.findByKey('never-made', 'k')).toBeUndefined();
    expect(await reg.get('never-made:1')).toBeUndefined();
    await expect(sagemaker.send(new DescribeModelPackageGroupCommand({ ModelPackageGroupName: 'never-made' }))).rejects.toThrow(
      /does not exist|not found/i,
    );
  });
});
