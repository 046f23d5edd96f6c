import { ConditionalCheckFailedException, DynamoDBClient, UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import { SFNClient, StartExecutionCommand, ExecutionAlreadyExists } from '@aws-sdk/client-sfn';
import type { Logger } from 'pino';
import { LoupeError, errorMessage } from '../../lib/errors.js';
import { createLogger } from '../../lib/log.js';
import { lambdaError } from './cloud-step.js';

/**
 * The labelling state machine's second trigger (the first is a schedule): every device upload
 * that lands in the bucket (an S3 "Object Created" event for a sidecar under the upload prefix,
 * routed by EventBridge) adds one to a counter in DynamoDB; the upload that brings the counter to
 * the threshold resets it and starts an execution.
 *
 * Exactly one start per window, without a lock: the increment is atomic (UpdateItem ADD), the
 * reset is conditional on the counter still being at or above the threshold (only one of two
 * racing invocations wins it) and bumps the window number, and the execution is named after the
 * window (`uploads-<window>`), so a retried invocation that reset but did not start finds the
 * same name (ExecutionAlreadyExists: already started). Uploads are counted, not listed: ingest,
 * the execution's first step, finds what actually arrived.
 *
 *   LOUPE_COUNTER_TABLE          the DynamoDB table (partition key `pk`, string)
 *   LOUPE_UPLOAD_THRESHOLD       uploads per execution (integer >= 1)
 *   LOUPE_LABELLING_STATE_MACHINE the state machine's ARN
 */
export interface UploadTriggerConfig {
  table: string;
  threshold: number;
  stateMachineArn: string;
  dynamodb: DynamoDBClient;
  sfn: SFNClient;
  log: Logger;
}

const KEY = { pk: { S: 'uploads' } };

export function uploadTriggerConfig(env: NodeJS.ProcessEnv = process.env): UploadTriggerConfig {
  const need = (k: string) => {
    const v = env[k];
    if (!v) throw new LoupeError('TRIGGER_CONFIG', 'not set', { input: k });
    return v;
  };
  const threshold = Number(need('LOUPE_UPLOAD_THRESHOLD'));
  if (!Number.isInteger(threshold) || threshold < 1)
    throw new LoupeError('TRIGGER_CONFIG', `expected an integer >= 1 (got ${JSON.stringify(env.LOUPE_UPLOAD_THRESHOLD)})`, {
      input: 'LOUPE_UPLOAD_THRESHOLD',
    });
  return {
    table: need('LOUPE_COUNTER_TABLE'),
    threshold,
    stateMachineArn: need('LOUPE_LABELLING_STATE_MACHINE'),
    dynamodb: new DynamoDBClient({}),
    sfn: new SFNClient({}),
    log: createLogger('loupe-upload-trigger'),
  };
}

export interface S3ObjectCreatedEvent {
  detail?: { bucket?: { name?: string }; object?: { key?: string } };
}

export async function countUpload(c: UploadTriggerConfig, e: S3ObjectCreatedEvent): Promise<{ count: number; started: string | null }> {
  const key = e.detail?.object?.key ?? '(unknown)';
  const r = await c.dynamodb.send(
    new UpdateItemCommand({
      TableName: c.table,
      Key: KEY,
      UpdateExpression: 'ADD #n :one',
      ExpressionAttributeNames: { '#n': 'count' },
      ExpressionAttributeValues: { ':one': { N: '1' } },
      ReturnValues: 'UPDATED_NEW',
    }),
  );
  const count = Number(r.Attributes?.count?.N ?? 0);
  if (count < c.threshold) {
    c.log.info({ key, count, threshold: c.threshold }, 'upload counted');
    return { count, started: null };
  }
  let window: number;
  try {
    const reset = await c.dynamodb.send(
      new UpdateItemCommand({
        TableName: c.table,
        Key: KEY,
        UpdateExpression: 'SET #n = :zero ADD #w :one',
        ConditionExpression: '#n >= :t',
        ExpressionAttributeNames: { '#n': 'count', '#w': 'window' },
        ExpressionAttributeValues: { ':zero': { N: '0' }, ':one': { N: '1' }, ':t': { N: String(c.threshold) } },
        ReturnValues: 'UPDATED_NEW',
      }),
    );
    window = Number(reset.Attributes?.window?.N ?? 0);
  } catch (err) {
    if (err instanceof ConditionalCheckFailedException || (err as { name?: string }).name === 'ConditionalCheckFailedException') {
      c.log.info({ key, count }, 'another upload already started this window');
      return { count, started: null };
    }
    throw err;
  }
  const name = `uploads-${window}`;
  try {
    await c.sfn.send(
      new StartExecutionCommand({ stateMachineArn: c.stateMachineArn, name, input: JSON.stringify({ trigger: 'uploads', window }) }),
    );
    c.log.info({ key, count, execution: name }, 'upload threshold reached: labelling started');
  } catch (err) {
    if (!(err instanceof ExecutionAlreadyExists || (err as { name?: string }).name === 'ExecutionAlreadyExists')) throw err;
    c.log.info({ execution: name, err: errorMessage(err) }, 'execution for this window already started');
  }
  return { count, started: name };
}

let config: UploadTriggerConfig | undefined;
export async function handler(e: S3ObjectCreatedEvent): Promise<{ count: number; started: string | null }> {
  try {
    config ??= uploadTriggerConfig();
    return await countUpload(config, e);
  } catch (err) {
    throw lambdaError(err);
  }
}
