import { CfnOutput, Duration, RemovalPolicy, Stack, type StackProps } from 'aws-cdk-lib';
import * as ecr from 'aws-cdk-lib/aws-ecr';
import * as s3 from 'aws-cdk-lib/aws-s3';
import type { Construct } from 'constructs';
import type { InfraConfig } from '../config.js';
import { ML_PREFIX, namesOf } from '../layout.js';

/**
 * Storage: the bucket devices upload to (raw uploads move to Standard-IA, then expire), the ML
 * bucket (the loop home, labelling manifests, pipeline data, model artefacts, component
 * artefacts, the Feature Store offline store; versioned, so a bad push of the loop home can be
 * undone), their access-log bucket, and an ECR repository for images pushed outside CDK (CI, or
 * `images.*` in the configuration). The images CDK builds are Docker assets of the stacks that
 * run them (images.ts).
 */
export class StorageStack extends Stack {
  readonly uploads: s3.Bucket;
  readonly ml: s3.Bucket;
  readonly repository: ecr.Repository;

  constructor(scope: Construct, id: string, c: InfraConfig, props: StackProps) {
    super(scope, id, props);
    const removal = c.storage.removalPolicy === 'destroy' ? RemovalPolicy.DESTROY : RemovalPolicy.RETAIN;
    const autoDelete = c.storage.removalPolicy === 'destroy';
    const common = {
      encryption: s3.BucketEncryption.S3_MANAGED,
      enforceSSL: true,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      removalPolicy: removal,
      autoDeleteObjects: autoDelete,
    };
    const names = namesOf(c).buckets;
    const logs = new s3.Bucket(this, 'AccessLogs', {
      ...common,
      bucketName: names.logs,
      // The log delivery writes with the bucket owner's ACL-less permissions (bucket policy added by CDK).
      lifecycleRules: [{ id: 'expire-access-logs', expiration: Duration.days(365) }],
    });
    // No AwsSolutions-S1 acknowledgement needed: cdk-nag does not ask the target of other buckets' access logs to log itself.

    this.uploads = new s3.Bucket(this, 'Uploads', {
      ...common,
      bucketName: names.uploads,
      serverAccessLogsBucket: logs,
      serverAccessLogsPrefix: 'uploads/',
      lifecycleRules: [
        {
          id: 'raw-uploads',
          prefix: `${c.storage.uploadPrefix}/`,
          transitions: [
            { storageClass: s3.StorageClass.INFREQUENT_ACCESS, transitionAfter: Duration.days(c.storage.infrequentAccessDays) },
          ],
          expiration: Duration.days(c.storage.expireDays),
        },
        { id: 'abort-incomplete-uploads', abortIncompleteMultipartUploadAfter: Duration.days(7) },
      ],
    });
    // S3 → EventBridge for the upload counter (labelling's threshold trigger). Set on the bucket
    // resource itself, not through CDK's notifications custom resource (one Lambda fewer).
    (this.uploads.node.defaultChild as s3.CfnBucket).notificationConfiguration = { eventBridgeConfiguration: { eventBridgeEnabled: true } };

    this.ml = new s3.Bucket(this, 'Ml', {
      ...common,
      bucketName: names.ml,
      versioned: true,
      serverAccessLogsBucket: logs,
      serverAccessLogsPrefix: 'ml/',
      lifecycleRules: [
        { id: 'old-versions', noncurrentVersionExpiration: Duration.days(30) },
        { id: 'pipeline-scratch', prefix: ML_PREFIX.pipeline, expiration: Duration.days(90) },
        { id: 'athena-results', prefix: ML_PREFIX.athena, expiration: Duration.days(7) },
        { id: 'abort-incomplete-uploads', abortIncompleteMultipartUploadAfter: Duration.days(7) },
      ],
    });

    this.repository = new ecr.Repository(this, 'Images', {
      repositoryName: `${namesOf(c).jobPrefix}-images`,
      imageScanOnPush: true,
      imageTagMutability: ecr.TagMutability.IMMUTABLE,
      encryption: ecr.RepositoryEncryption.AES_256,
      lifecycleRules: [{ description: 'keep the newest 20 images', maxImageCount: 20 }],
      removalPolicy: removal,
      emptyOnDelete: autoDelete,
    });

    new CfnOutput(this, 'UploadsBucketName', {
      value: this.uploads.bucketName,
      description: 'Devices upload here (loupe.Uploader bucket)',
    });
    new CfnOutput(this, 'MlBucketName', {
      value: this.ml.bucketName,
      description: 'Loop home, labelling, pipeline data, models, component artefacts',
    });
    new CfnOutput(this, 'ImageRepositoryUri', {
      value: this.repository.repositoryUri,
      description: 'ECR repository for images pushed outside CDK',
    });
  }
}
