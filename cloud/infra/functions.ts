import { Duration, RemovalPolicy, Size, Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as s3 from 'aws-cdk-lib/aws-s3';
import type { InfraConfig } from './config.js';
import { Construct } from 'constructs';
import type { ImageRef } from './images.js';
import { cloudLoopConfig, ML_PREFIX, namesOf, type CloudRefs } from './layout.js';
import { RUNTIME_ENV } from '../serverless/runtime.js';
import { nagSuppress, wildcardResource, type NagAcknowledgement } from './nag.js';

/**
 * One Lambda function of the cloud side: the loupe cloud image with a handler as its command,
 * its own log group (one year), and its own role with exactly the statements given plus writing
 * its log streams, and, for the handlers that run loop steps, the loop home in the ML bucket
 * (list the home prefix, read and write objects under it; nothing else of the bucket).
 */
export interface LoupeFunctionProps {
  image: ImageRef;
  /** `dist/cloud/serverless/<file>.<export>` */
  handler: string;
  description: string;
  environment: Record<string, string>;
  statements: iam.PolicyStatement[];
  /** The ML bucket, when the function uses the loop home. */
  home?: s3.IBucket;
  timeout?: Duration;
  memoryMiB?: number;
  /** Findings of the statements above that are right for this function (IAM5 on object prefixes). */
  acknowledgements?: NagAcknowledgement[];
}

export class LoupeFunction extends Construct {
  readonly fn: lambda.DockerImageFunction;
  readonly role: iam.Role;

  constructor(scope: Construct, id: string, p: LoupeFunctionProps) {
    super(scope, id);
    const logGroup = new logs.LogGroup(this, 'Logs', { retention: logs.RetentionDays.ONE_YEAR, removalPolicy: RemovalPolicy.DESTROY });
    const statements = [
      new iam.PolicyStatement({ sid: 'Logs', actions: ['logs:CreateLogStream', 'logs:PutLogEvents'], resources: [logGroup.logGroupArn] }),
      ...p.statements,
    ];
    if (p.home) {
      statements.push(
        new iam.PolicyStatement({
          sid: 'ListHome',
          actions: ['s3:ListBucket'],
          resources: [p.home.bucketArn],
          conditions: { StringLike: { 's3:prefix': [`${ML_PREFIX.home}*`] } },
        }),
        new iam.PolicyStatement({
          sid: 'ReadWriteHome',
          actions: ['s3:GetObject', 's3:PutObject'],
          resources: [p.home.arnForObjects(`${ML_PREFIX.home}*`)],
        }),
      );
    }
    this.role = new iam.Role(this, 'Role', {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: p.description,
      inlinePolicies: { fn: new iam.PolicyDocument({ statements }) },
    });
    this.fn = new lambda.DockerImageFunction(this, 'Function', {
      code: p.image.lambdaCode([p.handler]),
      description: p.description,
      role: this.role,
      logGroup,
      timeout: p.timeout ?? Duration.minutes(5),
      memorySize: p.memoryMiB ?? 2048,
      ephemeralStorageSize: Size.gibibytes(4),
      architecture: lambda.Architecture.X86_64,
      environment: p.environment,
    });
    const acks: NagAcknowledgement[] = [
      {
        id: wildcardResource(this, logGroup.logGroupArn),
        reason: "Log streams are created by Lambda at run time inside the function's own log group.",
      },
      ...(p.acknowledgements ?? []),
    ];
    if (p.home)
      acks.push({
        id: wildcardResource(this, p.home.arnForObjects(`${ML_PREFIX.home}*`)),
        reason:
          'The loop home holds files named at run time (SQLite stores, registry artefacts by digest); the grant is limited to the home prefix.',
      });
    nagSuppress(this.role, acks);
  }
}

/** The app's two data buckets, by their names (layout.ts), as seen from any stack. */
export function appBuckets(scope: Construct, c: InfraConfig): { uploads: s3.IBucket; ml: s3.IBucket } {
  const b = namesOf(c).buckets;
  return { uploads: s3.Bucket.fromBucketName(scope, 'UploadsBucket', b.uploads), ml: s3.Bucket.fromBucketName(scope, 'MlBucket', b.ml) };
}

/** What the edge and labelling stacks hand to the stacks whose functions run the loop's steps (app.ts). */
export type StepRefs = Pick<CloudRefs, 'thingGroupArn' | 'groundTruthRoleArn' | 'featureGroupName'>;

/** The environment of a function that runs the loop's steps: its loop.json (the AWS ports) and the loop home in S3. */
export function stepEnvironment(
  scope: Construct,
  c: InfraConfig,
  buckets: { uploads: s3.IBucket; ml: s3.IBucket },
  refs: StepRefs,
): Record<string, string> {
  const config = cloudLoopConfig(c, { uploadsBucket: buckets.uploads.bucketName, mlBucket: buckets.ml.bucketName, ...refs });
  return {
    [RUNTIME_ENV.config]: Stack.of(scope).toJsonString(config),
    [RUNTIME_ENV.home]: `s3://${buckets.ml.bucketName}/${ML_PREFIX.home}`,
  };
}

/** `arn:<partition>:<service>:<region>:<account>:<resource>` of the stack. */
export function arnOf(scope: Construct, service: string, resource: string): string {
  const { partition, region, account } = Stack.of(scope);
  return `arn:${partition}:${service}:${region}:${account}:${resource}`;
}
