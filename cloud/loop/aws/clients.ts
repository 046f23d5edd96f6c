import { S3Client } from '@aws-sdk/client-s3';
import type { SageMakerClient } from '@aws-sdk/client-sagemaker';
import type { SageMakerFeatureStoreRuntimeClient } from '@aws-sdk/client-sagemaker-featurestore-runtime';
import type { AthenaClient } from '@aws-sdk/client-athena';
import type { GreengrassV2Client } from '@aws-sdk/client-greengrassv2';
import { LoupeError } from '../../../lib/errors.js';
import { readKeysFile } from '../../../contracts/store-keys.js';
import type { LoopConfig } from '../config.js';

/**
 * The connections one loop process makes, from the configuration: the S3 client (embedded
 * object store or Amazon S3, shared by the devices' bucket and every AWS stage's files) and the
 * control-plane clients of the AWS stages, one per service and region, made when first asked
 * for and destroyed together. Credentials for AWS come from the SDK's default chain; the
 * embedded store's keys come from its key file (`storage.keysFile`, read on each refresh), or
 * from `storage.credentials` given inline.
 */
export function s3ClientFor(storage: LoopConfig['storage']): S3Client {
  if (storage.backend === 'embedded') {
    const { keysFile, credentials } = storage;
    if (!credentials && !keysFile) {
      throw new LoupeError(
        'LOOP_STORAGE_KEYS',
        "the embedded object store needs its key pair: set storage.keysFile to the store's credentials.json (or storage.credentials)",
        { input: 'storage' },
      );
    }
    return new S3Client({
      region: storage.region,
      endpoint: storage.endpoint,
      forcePathStyle: storage.forcePathStyle,
      credentials: credentials ?? (async () => readKeysFile(keysFile!)),
    });
  }
  return new S3Client({
    region: storage.region,
    forcePathStyle: storage.forcePathStyle,
    // Buckets of AWS stages may live in another region than the uploads bucket.
    followRegionRedirects: true,
    ...(storage.endpoint ? { endpoint: storage.endpoint } : {}),
  });
}

/** Where one AWS stage works: its region, role and bucket, with the `aws` section's defaults filled in. */
export interface AwsStage {
  region: string;
  roleArn: string | undefined;
  bucket: string;
}

export function awsStage(config: LoopConfig, section: { region?: string; roleArn?: string; bucket?: string }): AwsStage {
  // Validation (config.ts) made sure a region exists wherever a stage runs on AWS.
  return {
    region: section.region ?? config.aws.region ?? '',
    roleArn: section.roleArn ?? config.aws.roleArn,
    bucket: section.bucket ?? config.aws.bucket ?? config.storage.bucket,
  };
}

/**
 * The control-plane clients, one per service and region. Each service's SDK package is imported
 * on first use (they cost 0.1-0.3 s each to load), so a process on the embedded backends never
 * loads them.
 */
export class AwsClients {
  private readonly made: { destroy(): void }[] = [];
  private readonly cache = new Map<string, Promise<unknown>>();

  private get<T extends { destroy(): void }>(key: string, make: () => Promise<T>): Promise<T> {
    let c = this.cache.get(key) as Promise<T> | undefined;
    if (!c) {
      c = make().then((client) => {
        this.made.push(client);
        return client;
      });
      this.cache.set(key, c);
    }
    return c;
  }

  sagemaker(region: string): Promise<SageMakerClient> {
    return this.get(`sagemaker:${region}`, async () => new (await import('@aws-sdk/client-sagemaker')).SageMakerClient({ region }));
  }

  featureStoreRuntime(region: string): Promise<SageMakerFeatureStoreRuntimeClient> {
    return this.get(
      `featurestore:${region}`,
      async () => new (await import('@aws-sdk/client-sagemaker-featurestore-runtime')).SageMakerFeatureStoreRuntimeClient({ region }),
    );
  }

  athena(region: string): Promise<AthenaClient> {
    return this.get(`athena:${region}`, async () => new (await import('@aws-sdk/client-athena')).AthenaClient({ region }));
  }

  greengrass(region: string): Promise<GreengrassV2Client> {
    return this.get(`greengrass:${region}`, async () => new (await import('@aws-sdk/client-greengrassv2')).GreengrassV2Client({ region }));
  }

  destroy(): void {
    for (const c of this.made.splice(0)) c.destroy();
    this.cache.clear();
  }
}

/**
 * Names of AWS jobs for a run. SageMaker job names are unique per account and region for good
 * (a deleted job's name cannot be reused), so they carry the installation's prefix as well as
 * the run id: `<prefix>-r<run>` (Ground Truth labelling; its verification job adds `-verify`)
 * and `<prefix>-r<run>-train[-<n>]` (training; `-2`, `-3` only after a failed or stopped job).
 * Deterministic, so a resumed run finds what an earlier attempt started.
 */
export function awsJobNames(prefix: string, runId: number) {
  return {
    labeling: `${prefix}-r${runId}`,
    training: (n = 1) => `${prefix}-r${runId}-train${n > 1 ? `-${n}` : ''}`,
  };
}
