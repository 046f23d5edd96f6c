import { join } from 'node:path';
import { Stack } from 'aws-cdk-lib';
import * as ecr from 'aws-cdk-lib/aws-ecr';
import { DockerImageAsset, Platform } from 'aws-cdk-lib/aws-ecr-assets';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import type { Construct } from 'constructs';
import { LoupeError } from '../../lib/errors.js';
import { projectRoot } from '../../lib/paths.js';

/**
 * The two images of the cloud side, as CDK Docker assets of the stacks that run them: CDK stages the
 * folder and hashes it at synth (no Docker engine needed); `cdk deploy` builds and pushes it.
 *
 *  - training: cloud/training/Dockerfile (train.py, ultralytics, torch): the pipeline's Train step.
 *  - cloud: cloud/infra/images/cloud.Dockerfile (Node.js 20 + loupe's built code): every Lambda
 *    handler and the pipeline's processing steps. Its context is the repository root with
 *    everything excluded but what the Dockerfile copies (Docker ignore syntax, `!` re-includes),
 *    so the asset's hash changes only when the code the cloud runs changes.
 */
export const TRAINING_IMAGE = { directory: join(projectRoot, 'cloud', 'training'), file: 'Dockerfile' };

export const CLOUD_IMAGE = {
  directory: projectRoot,
  file: 'cloud/infra/images/cloud.Dockerfile',
  exclude: [
    '*',
    '!package.json',
    '!package-lock.json',
    '!.npmrc',
    '!cloud/infra/images/cloud.Dockerfile',
    '!cloud/quantize/quantize.py',
    '!cloud/quantize/requirements.txt',
    '!dist',
    'dist/test',
    'dist/cli',
    'dist/cloud/infra',
    'dist/**/*.map',
    '!models/metal-tags/model.onnx',
    '!models/metal-tags/model.pt',
    '!models/metal-tags/card.json',
    '!models/metal-tags/train-metrics.json',
  ],
};

/** An image a stack runs: its URI, the repository to grant pulls on, and Lambda code with a command. */
export interface ImageRef {
  uri: string;
  repository: ecr.IRepository;
  tag: string;
  lambdaCode(cmd: string[]): lambda.DockerImageCode;
}

/**
 * The image for `configured` ("asset": built from this checkout by `cdk deploy`; otherwise the
 * ECR URI given), defined in `scope`. Stacks that run the same asset each define it: one build
 * and push (same hash), and no cross-stack reference to the asset repository.
 */
export function imageRef(
  scope: Construct,
  id: string,
  configured: string,
  source: { directory: string; file: string; exclude?: string[] },
): ImageRef {
  if (configured !== 'asset') {
    const m = /^(\d{12})\.dkr\.ecr\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?\/([^:@]+)(?::([\w.-]+)|@(sha256:[0-9a-f]{64}))$/.exec(configured);
    if (!m) throw new LoupeError('INFRA_BAD_IMAGE', 'expected an ECR image URI with a tag or digest', { input: configured });
    const repository = ecr.Repository.fromRepositoryAttributes(scope, `${id}Repository`, {
      repositoryName: m[3]!,
      repositoryArn: `arn:${Stack.of(scope).partition}:ecr:${m[2]}:${m[1]}:repository/${m[3]}`,
    });
    const tag = m[4] ?? m[5]!;
    return { uri: configured, repository, tag, lambdaCode: (cmd) => lambda.DockerImageCode.fromEcr(repository, { tagOrDigest: tag, cmd }) };
  }
  const asset = new DockerImageAsset(scope, id, {
    directory: source.directory,
    file: source.file,
    exclude: source.exclude,
    platform: Platform.LINUX_AMD64,
  });
  return {
    uri: asset.imageUri,
    repository: asset.repository,
    tag: asset.imageTag,
    lambdaCode: (cmd) => lambda.DockerImageCode.fromEcr(asset.repository, { tagOrDigest: asset.imageTag, cmd }),
  };
}
