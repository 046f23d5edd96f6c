import { CfnOutput, Duration, RemovalPolicy, Stack, type StackProps } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as sagemaker from 'aws-cdk-lib/aws-sagemaker';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import * as tasks from 'aws-cdk-lib/aws-stepfunctions-tasks';
import type { Construct } from 'constructs';
import { FEATURE_DEFINITIONS } from '../../labelstore/featurestore.js';
import type { InfraConfig } from '../config.js';
import { appBuckets, arnOf, LoupeFunction, stepEnvironment } from '../functions.js';
import { CLOUD_IMAGE, imageRef } from '../images.js';
import { ML_PREFIX, namesOf } from '../layout.js';
import { nagSuppress, wildcardResource } from '../nag.js';
import { lambdaStep, stateMachineLogging } from '../state-machines.js';

/**
 * Labelling, as in the reference solution: a Step Functions state machine
 *
 *   Start → Ingest (find new uploads) → ShouldLabel? → Label (start the Ground Truth job, or look
 *   at it) ⟲ WaitForLabellers → Verify (the verification job) ⟲ WaitForVerifiers →
 *   WriteFeatureGroup → NewLabels? → StartModelBuild (the SageMaker Pipeline, with the run id)
 *
 * every task a Lambda function running the loop's own step (cloud/serverless/handlers.ts), with
 * retries (Lambda service errors; STATE_CONFLICT when another execution changed the loop home),
 * task timeouts, an execution timeout and one failure path. Triggers: an EventBridge schedule,
 * and the upload counter (S3 events → a Lambda → DynamoDB counter → StartExecution at the
 * threshold). Also here: the Feature Store feature group (offline store in the ML bucket, Glue
 * table made by Feature Store) and the role Ground Truth jobs run as.
 */
export class LabellingStack extends Stack {
  readonly stateMachine: sfn.StateMachine;
  readonly groundTruthRole: iam.Role;
  readonly featureGroupName: string;

  constructor(scope: Construct, id: string, c: InfraConfig, refs: { thingGroupArn: string }, props: StackProps) {
    super(scope, id, props);
    const { uploads, ml } = appBuckets(this, c);
    const n = namesOf(c);
    const removal = c.storage.removalPolicy === 'destroy' ? RemovalPolicy.DESTROY : RemovalPolicy.RETAIN;
    const uploadsObjects = uploads.arnForObjects(`${c.storage.uploadPrefix}/*`);
    const labelingObjects = ml.arnForObjects(`${ML_PREFIX.labeling}*`);

    // ---- Feature Store --------------------------------------------------------------------------
    const featureStoreRole = new iam.Role(this, 'FeatureStoreRole', {
      assumedBy: new iam.ServicePrincipal('sagemaker.amazonaws.com'),
      description: 'Feature Store writes the offline store of the label feature group',
      inlinePolicies: {
        offline: new iam.PolicyDocument({
          statements: [
            new iam.PolicyStatement({
              sid: 'OfflineStore',
              actions: ['s3:PutObject', 's3:GetObject', 's3:PutObjectAcl'],
              resources: [ml.arnForObjects(`${ML_PREFIX.featureStore}*`)],
            }),
            new iam.PolicyStatement({ sid: 'BucketAcl', actions: ['s3:GetBucketAcl'], resources: [ml.bucketArn] }),
          ],
        }),
      },
    });
    nagSuppress(featureStoreRole, [
      {
        id: wildcardResource(this, ml.arnForObjects(`${ML_PREFIX.featureStore}*`)),
        reason:
          'Feature Store names its offline-store files (per partition and time) itself; the grant is limited to the feature store prefix.',
      },
    ]);
    this.featureGroupName = n.featureGroup;
    const featureGroup = new sagemaker.CfnFeatureGroup(this, 'FeatureGroup', {
      featureGroupName: n.featureGroup,
      recordIdentifierFeatureName: 'source_ref',
      eventTimeFeatureName: 'event_time',
      // The definitions loupe's Feature Store adapter writes (labelstore/featurestore.ts).
      featureDefinitions: FEATURE_DEFINITIONS.map((f) => ({ featureName: f.FeatureName!, featureType: f.FeatureType! })),
      offlineStoreConfig: {
        S3StorageConfig: { S3Uri: `s3://${ml.bucketName}/${ML_PREFIX.featureStore}` },
        DisableGlueTableCreation: false,
      },
      onlineStoreConfig: { EnableOnlineStore: false },
      roleArn: featureStoreRole.roleArn,
      description: 'loupe label records (reference feature-store layout + device, capture time, model version)',
    });
    featureGroup.applyRemovalPolicy(removal);

    // ---- Ground Truth's role ---------------------------------------------------------------------
    this.groundTruthRole = new iam.Role(this, 'GroundTruthRole', {
      // Named, so the other stacks and the loop configuration refer to it by ARN without an import.
      roleName: n.groundTruthRole,
      assumedBy: new iam.ServicePrincipal('sagemaker.amazonaws.com'),
      description: 'Ground Truth labelling and verification jobs: read device images and manifests, write outputs',
      inlinePolicies: {
        labeling: new iam.PolicyDocument({
          statements: [
            new iam.PolicyStatement({ sid: 'Images', actions: ['s3:GetObject'], resources: [uploadsObjects] }),
            new iam.PolicyStatement({ sid: 'Manifests', actions: ['s3:GetObject', 's3:PutObject'], resources: [labelingObjects] }),
            new iam.PolicyStatement({
              sid: 'ListLabeling',
              actions: ['s3:ListBucket'],
              resources: [ml.bucketArn],
              conditions: { StringLike: { 's3:prefix': [`${ML_PREFIX.labeling}*`] } },
            }),
            new iam.PolicyStatement({
              sid: 'JobLogs',
              actions: ['logs:CreateLogGroup', 'logs:CreateLogStream', 'logs:PutLogEvents', 'logs:DescribeLogStreams'],
              resources: [
                arnOf(this, 'logs', 'log-group:/aws/sagemaker/LabelingJobs'),
                arnOf(this, 'logs', 'log-group:/aws/sagemaker/LabelingJobs:log-stream:*'),
              ],
            }),
            new iam.PolicyStatement({
              sid: 'JobMetrics',
              actions: ['cloudwatch:PutMetricData'],
              resources: ['*'],
              conditions: { StringEquals: { 'cloudwatch:namespace': '/aws/sagemaker/LabelingJobs' } },
            }),
          ],
        }),
      },
    });
    nagSuppress(this.groundTruthRole, [
      {
        id: wildcardResource(this, uploadsObjects),
        reason: 'Workers see device images named at upload time; read-only on the upload prefix.',
      },
      {
        id: wildcardResource(this, labelingObjects),
        reason: 'Manifests, templates and outputs are named per job at run time; limited to the labelling prefix.',
      },
      {
        id: wildcardResource(this, arnOf(this, 'logs', 'log-group:/aws/sagemaker/LabelingJobs:log-stream:*')),
        reason: 'Ground Truth creates one log stream per job in its log group.',
      },
      {
        id: 'AwsSolutions-IAM5[Resource::*]',
        reason:
          'cloudwatch:PutMetricData has no resource-level permissions; the statement is limited to the LabelingJobs namespace by condition.',
      },
    ]);

    // ---- the handlers ------------------------------------------------------------------------------
    const image = imageRef(this, 'CloudImage', c.images.cloud, CLOUD_IMAGE);
    const environment = stepEnvironment(
      this,
      c,
      { uploads, ml },
      { groundTruthRoleArn: this.groundTruthRole.roleArn, featureGroupName: n.featureGroup, thingGroupArn: refs.thingGroupArn },
    );
    const featureGroupArn = arnOf(this, 'sagemaker', `feature-group/${n.featureGroup}`);
    const putRecord = new iam.PolicyStatement({ sid: 'FeatureStore', actions: ['sagemaker:PutRecord'], resources: [featureGroupArn] });
    const readUploads = [
      new iam.PolicyStatement({
        sid: 'ListUploads',
        actions: ['s3:ListBucket'],
        resources: [uploads.bucketArn],
        conditions: { StringLike: { 's3:prefix': [`${c.storage.uploadPrefix}/*`] } },
      }),
      new iam.PolicyStatement({ sid: 'ReadUploads', actions: ['s3:GetObject'], resources: [uploadsObjects] }),
    ];
    const uploadsAck = {
      id: wildcardResource(this, uploadsObjects),
      reason: 'Device uploads are named at upload time; read-only on the upload prefix.',
    };
    const labelingAck = {
      id: wildcardResource(this, labelingObjects),
      reason: 'Manifests and job outputs are named per job; limited to the labelling prefix.',
    };
    const jobsAck = {
      id: wildcardResource(this, arnOf(this, 'sagemaker', `labeling-job/${n.jobPrefix}-*`)),
      reason: "Labelling jobs are named per loop run (<name>-r<run>, -verify); the grant covers this app's prefix only.",
    };
    const groundTruth = [
      new iam.PolicyStatement({
        sid: 'LabelingJobs',
        actions: ['sagemaker:CreateLabelingJob', 'sagemaker:DescribeLabelingJob', 'sagemaker:AddTags'],
        resources: [arnOf(this, 'sagemaker', `labeling-job/${n.jobPrefix}-*`)],
      }),
      new iam.PolicyStatement({
        sid: 'PassGroundTruthRole',
        actions: ['iam:PassRole'],
        resources: [this.groundTruthRole.roleArn],
        conditions: { StringEquals: { 'iam:PassedToService': 'sagemaker.amazonaws.com' } },
      }),
      new iam.PolicyStatement({ sid: 'LabelingFiles', actions: ['s3:GetObject', 's3:PutObject'], resources: [labelingObjects] }),
      ...readUploads,
    ];
    const fn = (
      id: string,
      handler: string,
      description: string,
      statements: iam.PolicyStatement[],
      acks: { id: string; reason: string }[],
      timeout = Duration.minutes(5),
    ) =>
      new LoupeFunction(this, `${id}Handler`, {
        image,
        handler: `dist/cloud/serverless/handlers.${handler}`,
        description,
        environment,
        statements,
        home: ml,
        acknowledgements: acks,
        timeout,
      }).fn;
    const ingest = fn(
      'Ingest',
      'ingest',
      'loupe: ingest new uploads (the loop ingest step)',
      [...readUploads, putRecord],
      [uploadsAck],
      Duration.minutes(15),
    );
    const label = fn(
      'Label',
      'label',
      'loupe: start or look at the Ground Truth labelling job (the loop label step)',
      [...groundTruth, putRecord],
      [uploadsAck, labelingAck, jobsAck],
    );
    const verify = fn(
      'Verify',
      'verify',
      'loupe: start or look at the Ground Truth verification job (the loop verify step)',
      [...groundTruth, putRecord],
      [uploadsAck, labelingAck, jobsAck],
    );
    const publishLabels = fn(
      'WriteFeatureGroup',
      'publishLabels',
      'loupe: label records into the Feature Store feature group',
      [putRecord],
      [],
    );

    // ---- the state machine -------------------------------------------------------------------------
    const failed = new sfn.Fail(this, 'LabellingFailed', { errorPath: '$.error.Error', causePath: '$.error.Cause' });
    const run = sfn.JsonPath.numberAt('$.ingest.runId');
    const start = new sfn.Pass(this, 'Start', {
      comment: 'The trigger (schedule, uploads, manual) with defaults for a manual start',
      parameters: { input: sfn.JsonPath.jsonMerge(sfn.JsonPath.stringToJson('{"trigger":"manual"}'), sfn.JsonPath.entirePayload) },
      outputPath: '$.input',
    });
    const ingestTask = lambdaStep(
      this,
      'Ingest',
      ingest,
      { trigger: sfn.JsonPath.stringAt('$.trigger'), execution: sfn.JsonPath.stringAt('$$.Execution.Name') },
      '$.ingest',
      failed,
      Duration.minutes(15),
    );
    const labelTask = lambdaStep(this, 'Label', label, { runId: run }, '$.label', failed);
    const verifyTask = lambdaStep(this, 'Verify', verify, { runId: run }, '$.verify', failed);
    const writeTask = lambdaStep(this, 'WriteFeatureGroup', publishLabels, { runId: run }, '$.featureStore', failed);
    const poll = Duration.minutes(c.labelling.pollMinutes);
    const waitLabel = new sfn.Wait(this, 'WaitForLabellers', { time: sfn.WaitTime.duration(poll) });
    const waitVerify = new sfn.Wait(this, 'WaitForVerifiers', { time: sfn.WaitTime.duration(poll) });
    const pipelineArn = arnOf(this, 'sagemaker', `pipeline/${n.pipeline}`);
    const startBuild = new tasks.CallAwsService(this, 'StartModelBuild', {
      service: 'sagemaker',
      action: 'startPipelineExecution',
      parameters: {
        PipelineName: n.pipeline,
        PipelineExecutionDescription: sfn.JsonPath.format(
          'labelling execution {}, loop run {}',
          sfn.JsonPath.stringAt('$$.Execution.Name'),
          sfn.JsonPath.stringAt('$.ingest.runId'),
        ),
        PipelineParameters: [{ Name: 'LoopRun', Value: sfn.JsonPath.format('{}', sfn.JsonPath.stringAt('$.ingest.runId')) }],
        // One pipeline execution per labelling execution, also when this state is retried.
        ClientRequestToken: sfn.JsonPath.stringAt('$$.Execution.Name'),
      },
      iamResources: [pipelineArn],
      iamAction: 'sagemaker:StartPipelineExecution',
      resultPath: '$.modelBuild',
    });
    startBuild.addRetry({
      errors: ['SageMaker.ThrottlingException', 'States.Timeout'],
      interval: Duration.seconds(10),
      maxAttempts: 3,
      backoffRate: 2,
    });
    startBuild.addCatch(failed, { resultPath: '$.error' });

    const pending = '$.ingest.pending';
    const shouldLabel = new sfn.Choice(this, 'ShouldLabel', {
      comment: 'Label when enough uploads wait (the upload trigger), or any on a schedule or manual start',
    });
    const enough = c.labelling.minUploads > 0 ? [sfn.Condition.numberGreaterThanEquals(pending, c.labelling.minUploads)] : [];
    shouldLabel.when(
      sfn.Condition.or(
        ...enough,
        sfn.Condition.and(
          sfn.Condition.not(sfn.Condition.stringEquals('$.trigger', 'uploads')),
          sfn.Condition.numberGreaterThan(pending, 0),
        ),
      ),
      labelTask,
    );
    shouldLabel.otherwise(new sfn.Succeed(this, 'NothingToLabel'));

    const labelDone = new sfn.Choice(this, 'LabellingDone')
      .when(sfn.Condition.stringEquals('$.label.status', 'waiting'), waitLabel.next(labelTask))
      .otherwise(verifyTask);
    const verifyDone = new sfn.Choice(this, 'VerificationDone')
      .when(sfn.Condition.stringEquals('$.verify.status', 'waiting'), waitVerify.next(verifyTask))
      .otherwise(writeTask);
    const newLabels = new sfn.Choice(this, 'NewLabels')
      .when(sfn.Condition.numberGreaterThan('$.featureStore.approved', 0), startBuild.next(new sfn.Succeed(this, 'ModelBuildStarted')))
      .otherwise(new sfn.Succeed(this, 'NoNewLabels'));

    const definition = start.next(ingestTask).next(shouldLabel);
    labelTask.next(labelDone);
    verifyTask.next(verifyDone);
    writeTask.next(newLabels);

    this.stateMachine = new sfn.StateMachine(this, 'StateMachine', {
      stateMachineName: n.labellingStateMachine,
      definitionBody: sfn.DefinitionBody.fromChainable(definition),
      timeout: Duration.hours(c.labelling.timeoutHours),
      tracingEnabled: true,
      logs: stateMachineLogging(this, 'StateMachineLogs'),
      comment: 'loupe labelling: ingest → Ground Truth labelling → verification → Feature Store → model build',
    });
    nagSuppress(this.stateMachine, [
      {
        id: 'AwsSolutions-IAM5[Resource::*]',
        reason:
          'X-Ray tracing and CloudWatch Logs delivery (both added by CDK for tracing and logging) have no resource-level permissions.',
      },
      ...[ingest, label, verify, publishLabels].map((f) => ({
        id: wildcardResource(this, `${f.functionArn}:*`),
        reason: 'Invoking the versions and aliases of a function this state machine owns (CDK LambdaInvoke grants both forms).',
      })),
    ]);

    // ---- triggers ------------------------------------------------------------------------------------
    new events.Rule(this, 'Schedule', {
      description: 'loupe: run labelling on a schedule',
      schedule: events.Schedule.expression(c.labelling.schedule),
      targets: [new targets.SfnStateMachine(this.stateMachine, { input: events.RuleTargetInput.fromObject({ trigger: 'schedule' }) })],
    });
    if (c.labelling.minUploads > 0) {
      const table = new dynamodb.Table(this, 'UploadCounter', {
        tableName: n.counterTable,
        partitionKey: { name: 'pk', type: dynamodb.AttributeType.STRING },
        billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
        pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
        encryption: dynamodb.TableEncryption.AWS_MANAGED,
        removalPolicy: RemovalPolicy.DESTROY,
      });
      const counter = new LoupeFunction(this, 'UploadTrigger', {
        image,
        handler: 'dist/cloud/serverless/upload-trigger.handler',
        description: 'loupe: count uploads, start labelling at the threshold',
        environment: {
          LOUPE_COUNTER_TABLE: table.tableName,
          LOUPE_UPLOAD_THRESHOLD: String(c.labelling.minUploads),
          LOUPE_LABELLING_STATE_MACHINE: this.stateMachine.stateMachineArn,
        },
        statements: [
          new iam.PolicyStatement({ sid: 'Counter', actions: ['dynamodb:UpdateItem'], resources: [table.tableArn] }),
          new iam.PolicyStatement({
            sid: 'StartLabelling',
            actions: ['states:StartExecution'],
            resources: [this.stateMachine.stateMachineArn],
          }),
        ],
        timeout: Duration.seconds(30),
        memoryMiB: 512,
      }).fn;
      new events.Rule(this, 'Uploads', {
        description: 'loupe: every upload sidecar that lands in the uploads bucket',
        eventPattern: {
          source: ['aws.s3'],
          detailType: ['Object Created'],
          // One sidecar per upload (the uploader writes it after the image): count those only.
          detail: { bucket: { name: [uploads.bucketName] }, object: { key: events.Match.wildcard(`${c.storage.uploadPrefix}/*.json`) } },
        },
        targets: [new targets.LambdaFunction(counter, { retryAttempts: 2 })],
      });
    }

    new CfnOutput(this, 'LabellingStateMachineArn', { value: this.stateMachine.stateMachineArn });
    new CfnOutput(this, 'FeatureGroupName', { value: n.featureGroup });
    new CfnOutput(this, 'GroundTruthRoleArn', { value: this.groundTruthRole.roleArn });
  }
}
