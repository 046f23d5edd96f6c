import { CfnOutput, Duration, RemovalPolicy, Stack, type StackProps } from 'aws-cdk-lib';
import * as events from 'aws-cdk-lib/aws-events';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as sagemaker from 'aws-cdk-lib/aws-sagemaker';
import type { Construct } from 'constructs';
import type { InfraConfig } from '../config.js';
import { appBuckets, arnOf, LoupeFunction, stepEnvironment, type StepRefs } from '../functions.js';
import { CLOUD_IMAGE, imageRef, TRAINING_IMAGE, type ImageRef } from '../images.js';
import { cloudLoopConfig, ML_PREFIX, namesOf } from '../layout.js';
import { nagSuppress, wildcardResource } from '../nag.js';
import { pipelineDefinition, type PipelineDefinition } from '../pipeline.js';

/**
 * Model build: the SageMaker Pipeline (pipeline.ts: snapshot → train → evaluate → gate →
 * register), the model package group it registers into, the role its jobs run as, the role the
 * pipeline itself runs as, and the register Lambda step's function. The labelling state machine
 * starts it (with the loop run id); `modelBuild.schedule` also starts it on a schedule.
 */
export class ModelBuildStack extends Stack {
  readonly definition: PipelineDefinition;
  readonly trainingImage: ImageRef;
  readonly jobRole: iam.Role;

  constructor(scope: Construct, id: string, c: InfraConfig, refs: StepRefs, props: StackProps) {
    super(scope, id, props);
    const { uploads, ml } = appBuckets(this, c);
    const n = namesOf(c);
    const cloudImage = imageRef(this, 'CloudImage', c.images.cloud, CLOUD_IMAGE);
    this.trainingImage = imageRef(this, 'TrainingImage', c.images.training, TRAINING_IMAGE);
    const environment = stepEnvironment(this, c, { uploads, ml }, refs);

    const group = new sagemaker.CfnModelPackageGroup(this, 'ModelPackageGroup', {
      modelPackageGroupName: c.group,
      modelPackageGroupDescription: `loupe model group ${c.group}: every version the pipeline registers, with its gate report`,
    });
    group.applyRemovalPolicy(c.storage.removalPolicy === 'destroy' ? RemovalPolicy.DESTROY : RemovalPolicy.RETAIN);

    // ---- the role processing and training jobs run as -----------------------------------------------
    const pipelineObjects = ml.arnForObjects(`${ML_PREFIX.pipeline}*`);
    const homeObjects = ml.arnForObjects(`${ML_PREFIX.home}*`);
    this.jobRole = new iam.Role(this, 'JobRole', {
      assumedBy: new iam.ServicePrincipal('sagemaker.amazonaws.com'),
      description: 'loupe model-build jobs: snapshot, train, evaluate',
      inlinePolicies: {
        jobs: new iam.PolicyDocument({
          statements: [
            new iam.PolicyStatement({ sid: 'PipelineData', actions: ['s3:GetObject', 's3:PutObject'], resources: [pipelineObjects] }),
            new iam.PolicyStatement({
              sid: 'ListPipelineData',
              actions: ['s3:ListBucket'],
              resources: [ml.bucketArn],
              conditions: { StringLike: { 's3:prefix': [`${ML_PREFIX.pipeline}*`, `${ML_PREFIX.home}*`] } },
            }),
            // The snapshot step records itself in the loop home; evaluate only reads it.
            new iam.PolicyStatement({ sid: 'LoopHome', actions: ['s3:GetObject', 's3:PutObject'], resources: [homeObjects] }),
            new iam.PolicyStatement({
              sid: 'DeviceImages',
              actions: ['s3:GetObject'],
              resources: [uploads.arnForObjects(`${c.storage.uploadPrefix}/*`)],
            }),
            new iam.PolicyStatement({
              sid: 'JobLogs',
              actions: ['logs:CreateLogGroup', 'logs:CreateLogStream', 'logs:PutLogEvents', 'logs:DescribeLogStreams'],
              resources: [arnOf(this, 'logs', 'log-group:/aws/sagemaker/*')],
            }),
            new iam.PolicyStatement({
              sid: 'JobMetrics',
              actions: ['cloudwatch:PutMetricData'],
              resources: ['*'],
              conditions: { StringLike: { 'cloudwatch:namespace': '/aws/sagemaker/*' } },
            }),
            new iam.PolicyStatement({ sid: 'PullAuth', actions: ['ecr:GetAuthorizationToken'], resources: ['*'] }),
          ],
        }),
      },
    });
    cloudImage.repository.grantPull(this.jobRole);
    this.trainingImage.repository.grantPull(this.jobRole);
    nagSuppress(this.jobRole, [
      {
        id: wildcardResource(this, pipelineObjects),
        reason: 'Pipeline data is written per execution id at run time; limited to the pipeline prefix.',
      },
      {
        id: wildcardResource(this, homeObjects),
        reason: 'The loop home holds files named at run time (SQLite stores, registry artefacts by digest); limited to the home prefix.',
      },
      {
        id: wildcardResource(this, uploads.arnForObjects(`${c.storage.uploadPrefix}/*`)),
        reason: 'The snapshot reads the device images its labels refer to; read-only on the upload prefix.',
      },
      {
        id: wildcardResource(this, arnOf(this, 'logs', 'log-group:/aws/sagemaker/*')),
        reason: 'SageMaker writes job logs to /aws/sagemaker/ProcessingJobs and /aws/sagemaker/TrainingJobs, one stream per job.',
      },
      {
        id: 'AwsSolutions-IAM5[Resource::*]',
        reason:
          'ecr:GetAuthorizationToken and cloudwatch:PutMetricData have no resource-level permissions (metrics limited to SageMaker namespaces by condition); image pulls are granted on the two repositories only.',
      },
    ]);

    // ---- the register step's function -----------------------------------------------------------------
    const groupArn = arnOf(this, 'sagemaker', `model-package-group/${c.group}`);
    const packagesArn = arnOf(this, 'sagemaker', `model-package/${c.group.toLowerCase()}/*`);
    const register = new LoupeFunction(this, 'Register', {
      image: cloudImage,
      handler: 'dist/cloud/serverless/handlers.register',
      description: 'loupe: the loop register step (registry + SageMaker model package), the pipeline Lambda step',
      environment,
      home: ml,
      timeout: Duration.minutes(10),
      statements: [
        new iam.PolicyStatement({ sid: 'Evaluation', actions: ['s3:GetObject'], resources: [pipelineObjects] }),
        new iam.PolicyStatement({
          sid: 'ListEvaluation',
          actions: ['s3:ListBucket'],
          resources: [ml.bucketArn],
          conditions: { StringLike: { 's3:prefix': [`${ML_PREFIX.pipeline}*`] } },
        }),
        new iam.PolicyStatement({
          sid: 'RegistryFiles',
          actions: ['s3:GetObject', 's3:PutObject'],
          resources: [ml.arnForObjects(`${ML_PREFIX.models}*`)],
        }),
        new iam.PolicyStatement({
          sid: 'ModelPackageGroup',
          actions: ['sagemaker:DescribeModelPackageGroup', 'sagemaker:CreateModelPackageGroup', 'sagemaker:ListModelPackages'],
          resources: [groupArn],
        }),
        new iam.PolicyStatement({
          sid: 'ModelPackages',
          actions: ['sagemaker:CreateModelPackage', 'sagemaker:DescribeModelPackage', 'sagemaker:UpdateModelPackage', 'sagemaker:AddTags'],
          resources: [packagesArn, groupArn],
        }),
      ],
      acknowledgements: [
        {
          id: wildcardResource(this, pipelineObjects),
          reason: 'The evaluation output of each execution is read by id; read-only on the pipeline prefix.',
        },
        {
          id: wildcardResource(this, ml.arnForObjects(`${ML_PREFIX.models}*`)),
          reason: 'Registry artefacts are stored by digest; limited to the models prefix.',
        },
        { id: wildcardResource(this, packagesArn), reason: 'Model packages are numbered by SageMaker within this one group.' },
      ],
    }).fn;

    // ---- the pipeline ---------------------------------------------------------------------------------
    this.definition = pipelineDefinition(c, {
      mlBucket: ml.bucketName,
      jobRoleArn: this.jobRole.roleArn,
      cloudImage: cloudImage.uri,
      trainingImage: this.trainingImage.uri,
      registerFunctionArn: register.functionArn,
      environment,
    });
    const pipelineRole = new iam.Role(this, 'PipelineRole', {
      assumedBy: new iam.ServicePrincipal('sagemaker.amazonaws.com'),
      description: 'The loupe model-build pipeline: start its jobs, pass them their role, invoke the register step',
      inlinePolicies: {
        pipeline: new iam.PolicyDocument({
          statements: [
            new iam.PolicyStatement({
              sid: 'Jobs',
              actions: [
                'sagemaker:CreateProcessingJob',
                'sagemaker:DescribeProcessingJob',
                'sagemaker:StopProcessingJob',
                'sagemaker:CreateTrainingJob',
                'sagemaker:DescribeTrainingJob',
                'sagemaker:StopTrainingJob',
                'sagemaker:AddTags',
              ],
              // SageMaker names pipeline jobs pipelines-<execution>-<step>-<hash>.
              resources: [arnOf(this, 'sagemaker', 'processing-job/pipelines-*'), arnOf(this, 'sagemaker', 'training-job/pipelines-*')],
            }),
            new iam.PolicyStatement({
              sid: 'PassJobRole',
              actions: ['iam:PassRole'],
              resources: [this.jobRole.roleArn],
              conditions: { StringEquals: { 'iam:PassedToService': 'sagemaker.amazonaws.com' } },
            }),
            new iam.PolicyStatement({ sid: 'RegisterStep', actions: ['lambda:InvokeFunction'], resources: [register.functionArn] }),
          ],
        }),
      },
    });
    nagSuppress(pipelineRole, [
      {
        id: wildcardResource(this, arnOf(this, 'sagemaker', 'processing-job/pipelines-*')),
        reason: 'SageMaker Pipelines names the jobs it starts (pipelines-<execution>-<step>-<hash>).',
      },
      {
        id: wildcardResource(this, arnOf(this, 'sagemaker', 'training-job/pipelines-*')),
        reason: 'SageMaker Pipelines names the jobs it starts (pipelines-<execution>-<step>-<hash>).',
      },
    ]);
    const pipeline = new sagemaker.CfnPipeline(this, 'Pipeline', {
      pipelineName: n.pipeline,
      pipelineDescription: 'loupe model build: snapshot, train, evaluate, gate, register',
      roleArn: pipelineRole.roleArn,
      pipelineDefinition: { PipelineDefinitionBody: Stack.of(this).toJsonString(this.definition) },
    });
    pipeline.node.addDependency(pipelineRole);
    pipeline.node.addDependency(group);

    if (c.modelBuild.schedule) {
      const schedulerRole = new iam.Role(this, 'ScheduleRole', {
        assumedBy: new iam.ServicePrincipal('events.amazonaws.com'),
        inlinePolicies: {
          start: new iam.PolicyDocument({
            statements: [
              new iam.PolicyStatement({
                actions: ['sagemaker:StartPipelineExecution'],
                resources: [arnOf(this, 'sagemaker', `pipeline/${n.pipeline}`)],
              }),
            ],
          }),
        },
      });
      new events.CfnRule(this, 'Schedule', {
        description: 'loupe: run the model build on a schedule',
        scheduleExpression: c.modelBuild.schedule,
        targets: [
          {
            id: 'pipeline',
            arn: arnOf(this, 'sagemaker', `pipeline/${n.pipeline}`),
            roleArn: schedulerRole.roleArn,
            sageMakerPipelineParameters: { pipelineParameterList: [{ name: 'LoopRun', value: '0' }] },
          },
        ],
      });
    }

    new CfnOutput(this, 'PipelineName', { value: n.pipeline });
    new CfnOutput(this, 'ModelPackageGroupName', { value: c.group });
    new CfnOutput(this, 'TrainingImageUri', {
      value: this.trainingImage.uri,
      description: "The training image (cloud/training/Dockerfile): loop.json's train.sagemaker.image",
    });
    new CfnOutput(this, 'TrainingRoleArn', { value: this.jobRole.roleArn, description: "loop.json's train.sagemaker.roleArn" });
    new CfnOutput(this, 'LoopJson', {
      value: Stack.of(this).toJsonString(
        cloudLoopConfig(
          c,
          {
            uploadsBucket: uploads.bucketName,
            mlBucket: ml.bucketName,
            groundTruthRoleArn: refs.groundTruthRoleArn,
            featureGroupName: refs.featureGroupName,
            thingGroupArn: refs.thingGroupArn,
            trainingImage: this.trainingImage.uri,
            trainingRoleArn: this.jobRole.roleArn,
          },
          { person: true },
        ),
      ),
      description: 'loop.json for `loupe loop` by hand against these resources (not while the state machines run)',
    });
  }
}
