import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import * as tasks from 'aws-cdk-lib/aws-stepfunctions-tasks';
import type { Construct } from 'constructs';

/**
 * A task of loupe's state machines: one Lambda handler, given `payload`, its reply kept at
 * `resultPath` (the state carries every step's reply, so later states read `$.ingest.runId`).
 * Retries: Lambda's own service errors (CDK's default retry) and throttling, and `Loupe.STATE_CONFLICT`
 * (another execution changed the loop home between this one's pull and push: pulling again
 * and re-running the idempotent step is the fix). Any other error goes to `failed` with the
 * error at `$.error`.
 */
export function lambdaStep(
  scope: Construct,
  id: string,
  fn: lambda.IFunction,
  payload: Record<string, unknown>,
  resultPath: string,
  failed: sfn.IChainable,
  timeout: Duration = Duration.minutes(5),
  retries: sfn.RetryProps[] = [],
): tasks.LambdaInvoke {
  const t = new tasks.LambdaInvoke(scope, id, {
    lambdaFunction: fn,
    payload: sfn.TaskInput.fromObject(payload),
    payloadResponseOnly: true,
    retryOnServiceExceptions: true,
    resultPath,
    taskTimeout: sfn.Timeout.duration(timeout),
  });
  t.addRetry({
    errors: ['Loupe.STATE_CONFLICT'],
    interval: Duration.seconds(5),
    maxAttempts: 8,
    backoffRate: 2,
    maxDelay: Duration.minutes(2),
    jitterStrategy: sfn.JitterType.FULL,
  });
  // Lambda's throttling answer (a burst of executions beyond the account's concurrency) is not
  // among CDK's service-exception retries; it is transient, so wait and try again.
  t.addRetry({
    errors: ['Lambda.TooManyRequestsException'],
    interval: Duration.seconds(2),
    maxAttempts: 6,
    backoffRate: 2,
    jitterStrategy: sfn.JitterType.FULL,
  });
  for (const r of retries) t.addRetry(r);
  t.addCatch(failed, { resultPath: '$.error' });
  return t;
}

/** Every event of every execution to CloudWatch Logs (one year), as cdk-nag's SF1 asks. */
export function stateMachineLogging(scope: Construct, id: string): sfn.LogOptions {
  const destination = new logs.LogGroup(scope, id, { retention: logs.RetentionDays.ONE_YEAR, removalPolicy: RemovalPolicy.DESTROY });
  return { destination, level: sfn.LogLevel.ALL, includeExecutionData: true };
}
