import type { S3Client } from '@aws-sdk/client-s3';
import type { Logger } from 'pino';
import { LoupeError, errorMessage } from '../../lib/errors.js';
import { createLogger } from '../../lib/log.js';
import { parseLoopConfig, type LoopConfig } from '../loop/config.js';
import { s3ClientFor } from '../loop/aws/clients.js';

/**
 * What a handler on AWS (a Lambda function of the state machines, a SageMaker Pipeline step)
 * is configured with: the loop configuration (the same schema as `loop.json`, so the ports are
 * chosen the same way: storage "s3", labelling "groundtruth", label store "featurestore",
 * registry "sagemaker", fleet "aws"), and where the loop home lives in S3. The CDK app writes
 * both into each function's environment; tests point them at the embedded object store.
 *
 *   LOUPE_LOOP_CONFIG   the loop configuration, JSON (validated here, errors name the key)
 *   LOUPE_HOME_URI      s3://bucket/prefix/ of the loop home (state-home.ts)
 *   LOUPE_LOG_LEVEL     pino level (default info); logs are JSON lines (CloudWatch Logs)
 */
export const RUNTIME_ENV = { config: 'LOUPE_LOOP_CONFIG', home: 'LOUPE_HOME_URI', logLevel: 'LOUPE_LOG_LEVEL' } as const;

export interface CloudRuntime {
  config: LoopConfig;
  homeUri: string;
  log: Logger;
  /** The S3 connection of the configuration (uploads bucket, the home, every stage's files). */
  s3(): S3Client;
}

export function runtimeFromEnv(env: NodeJS.ProcessEnv = process.env, log?: Logger): CloudRuntime {
  const raw = env[RUNTIME_ENV.config];
  if (!raw) throw new LoupeError('CLOUD_NO_CONFIG', 'the loop configuration is not set', { input: RUNTIME_ENV.config });
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch (e) {
    throw new LoupeError('CLOUD_BAD_CONFIG', `not valid JSON (${errorMessage(e)})`, { input: RUNTIME_ENV.config });
  }
  const config = parseLoopConfig(parsed, RUNTIME_ENV.config);
  const homeUri = env[RUNTIME_ENV.home];
  if (!homeUri)
    throw new LoupeError('CLOUD_NO_HOME', 'where the loop home lives in S3 is not set (s3://bucket/prefix/)', { input: RUNTIME_ENV.home });
  let client: S3Client | undefined;
  return {
    config,
    homeUri,
    log: log ?? createLogger('loupe-cloud', { level: env[RUNTIME_ENV.logLevel] ?? 'info' }),
    s3: () => (client ??= s3ClientFor(config.storage)),
  };
}
