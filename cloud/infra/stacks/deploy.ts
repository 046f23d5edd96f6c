import { CfnOutput, Duration, Stack, type StackProps } from 'aws-cdk-lib';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import type { Construct } from 'constructs';
import type { InfraConfig } from '../config.js';
import { appBuckets, arnOf, LoupeFunction, stepEnvironment, type StepRefs } from '../functions.js';
import { CLOUD_IMAGE, imageRef } from '../images.js';
import { ML_PREFIX, namesOf } from '../layout.js';
import { nagSuppress, wildcardResource } from '../nag.js';
import { lambdaStep, stateMachineLogging } from '../state-machines.js';

/**
 * Deploy: an EventBridge rule on "SageMaker Model Package State Change" (this group, Approved)
 * starts a state machine that runs the loop's last steps for the run that registered the model:
 *
 *   Publish (the approval applied to loupe's registry; a new loupe.Model component version)
 *   → Deploy (the thing group's deployment: loupe's rollout and abort policy, failure → device rollback)
 *   → WaitForRollout ⟲ RolloutStatus → succeeded (every core device of the group runs the new
 *                                      version; a thing group's deployment itself stays ACTIVE):
 *                                      Confirm (retried until every device runs it)
 *                                      failed: Rollback (redeploy the version that ran before) → RolledBack
 */
export class DeployStack extends Stack {
  readonly stateMachine: sfn.StateMachine;

  constructor(scope: Construct, id: string, c: InfraConfig, refs: StepRefs, props: StackProps) {
    super(scope, id, props);
    const { uploads, ml } = appBuckets(this, c);
    const n = namesOf(c);
    const image = imageRef(this, 'CloudImage', c.images.cloud, CLOUD_IMAGE);
    const environment = stepEnvironment(this, c, { uploads, ml }, refs);

    const componentObjects = ml.arnForObjects(`${ML_PREFIX.components}/*`);
    const components = arnOf(this, 'greengrass', 'components:loupe.Model');
    const componentVersions = arnOf(this, 'greengrass', 'components:loupe.Model:versions:*');
    const deployments = arnOf(this, 'greengrass', 'deployments:*');
    const registry = [
      new iam.PolicyStatement({
        sid: 'RegistryFiles',
        actions: ['s3:GetObject', 's3:PutObject'],
        resources: [ml.arnForObjects(`${ML_PREFIX.models}*`)],
      }),
      new iam.PolicyStatement({
        sid: 'ModelPackages',
        actions: [
          'sagemaker:DescribeModelPackage',
          'sagemaker:ListModelPackages',
          'sagemaker:UpdateModelPackage',
          'sagemaker:DescribeModelPackageGroup',
        ],
        resources: [
          arnOf(this, 'sagemaker', `model-package/${c.group.toLowerCase()}/*`),
          arnOf(this, 'sagemaker', `model-package-group/${c.group}`),
        ],
      }),
    ];
    // Greengrass resolves deployments to the thing group (and its IoT job) in the caller's name.
    const greengrass = [
      new iam.PolicyStatement({ sid: 'ComponentFiles', actions: ['s3:PutObject', 's3:GetObject'], resources: [componentObjects] }),
      new iam.PolicyStatement({
        sid: 'Components',
        actions: [
          'greengrass:CreateComponentVersion',
          'greengrass:ListComponentVersions',
          'greengrass:GetComponent',
          'greengrass:ListComponents',
        ],
        resources: [components, componentVersions],
      }),
      new iam.PolicyStatement({
        sid: 'Deployments',
        actions: [
          'greengrass:CreateDeployment',
          'greengrass:GetDeployment',
          'greengrass:ListDeployments',
          'greengrass:ListCoreDevices',
          'greengrass:ListInstalledComponents',
          'greengrass:TagResource',
        ],
        resources: [deployments, arnOf(this, 'greengrass', 'coreDevices:*')],
      }),
      new iam.PolicyStatement({
        sid: 'DeploymentJobs',
        actions: [
          'iot:CreateJob',
          'iot:DescribeJob',
          'iot:UpdateJob',
          'iot:CancelJob',
          'iot:DescribeThingGroup',
          'iot:ListThingsInThingGroup',
        ],
        resources: [refs.thingGroupArn, arnOf(this, 'iot', 'job/*')],
      }),
    ];
    const acks = [
      {
        id: wildcardResource(this, ml.arnForObjects(`${ML_PREFIX.models}*`)),
        reason: 'Registry artefacts are stored by digest; limited to the models prefix.',
      },
      {
        id: wildcardResource(this, arnOf(this, 'sagemaker', `model-package/${c.group.toLowerCase()}/*`)),
        reason: 'Model packages are numbered by SageMaker within this one group.',
      },
      {
        id: wildcardResource(this, componentObjects),
        reason: 'Component artefacts are stored per version at publish time; limited to the component prefix.',
      },
      { id: wildcardResource(this, componentVersions), reason: 'Versions of loupe.Model are made by each publish.' },
      { id: wildcardResource(this, deployments), reason: 'Greengrass assigns deployment ids at creation.' },
      {
        id: wildcardResource(this, arnOf(this, 'greengrass', 'coreDevices:*')),
        reason: 'Confirming a rollout lists the core devices of the thing group, which join at any time.',
      },
      {
        id: wildcardResource(this, arnOf(this, 'iot', 'job/*')),
        reason: 'Greengrass creates one IoT job per deployment with an id of its own.',
      },
    ];
    const fn = (id: string, handler: string, description: string, timeout = Duration.minutes(5)) =>
      new LoupeFunction(this, `${id}Handler`, {
        image,
        handler: `dist/cloud/serverless/handlers.${handler}`,
        description,
        environment,
        statements: [...registry, ...greengrass],
        home: ml,
        acknowledgements: acks,
        timeout,
      }).fn;
    const publish = fn(
      'Publish',
      'publish',
      'loupe: the approved model as a new loupe.Model component version (the loop publish step)',
      Duration.minutes(10),
    );
    const deploy = fn('Deploy', 'deploy', "loupe: the thing group's deployment (the loop deploy step)");
    const status = fn('RolloutStatus', 'rolloutStatus', 'loupe: where the rollout stands');
    const confirm = fn('Confirm', 'confirm', 'loupe: every device runs the new model (the loop confirm step)', Duration.minutes(3));
    const rollback = fn('Rollback', 'rollbackDeployment', 'loupe: redeploy the model version that ran before');

    const failed = new sfn.Fail(this, 'DeployFailed', { errorPath: '$.error.Error', causePath: '$.error.Cause' });
    const run = sfn.JsonPath.numberAt('$.publish.runId');
    const publishTask = lambdaStep(
      this,
      'Publish',
      publish,
      { detail: sfn.JsonPath.objectAt('$.detail') },
      '$.publish',
      failed,
      Duration.minutes(10),
    );
    const deployTask = lambdaStep(this, 'Deploy', deploy, { runId: run }, '$.deploy', failed);
    const statusTask = lambdaStep(
      this,
      'RolloutStatus',
      status,
      { runId: run, deploymentId: sfn.JsonPath.stringAt('$.deploy.output.deploymentId') },
      '$.rollout',
      failed,
    );
    const confirmTask = lambdaStep(this, 'Confirm', confirm, { runId: run }, '$.confirm', failed, Duration.minutes(3), [
      { errors: ['Loupe.FLEET_NOT_CONFIRMED'], interval: Duration.minutes(1), maxAttempts: 30, backoffRate: 1 },
    ]);
    const rollbackTask = lambdaStep(
      this,
      'Rollback',
      rollback,
      { runId: run, reason: sfn.JsonPath.format('rollout {}', sfn.JsonPath.stringAt('$.rollout.state')) },
      '$.rollback',
      failed,
    );
    // The deploy step halts when the deployment is reported failed at once; devices it reached may
    // still run the new version, so the group is redeployed with the one before, as after a failed rollout.
    const rollbackFailedTask = lambdaStep(
      this,
      'RollbackFailedDeployment',
      rollback,
      { runId: run, reason: 'deployment failed at once' },
      '$.rollback',
      failed,
    );
    const rolledBack = new sfn.Fail(this, 'RolledBack', {
      error: 'DeploymentFailed',
      cause: 'The rollout failed; the thing group was redeployed with the loupe.Model version that ran before.',
    });
    const wait = new sfn.Wait(this, 'WaitForRollout', { time: sfn.WaitTime.duration(Duration.minutes(2)) });

    const after = (id: string, path: string) =>
      new sfn.Choice(this, id)
        .when(sfn.Condition.stringEquals(path, 'succeeded'), confirmTask)
        .when(sfn.Condition.stringEquals(path, 'failed'), rollbackTask)
        .otherwise(wait);
    const afterDeploy = new sfn.Choice(this, 'Deployed')
      .when(
        sfn.Condition.and(
          sfn.Condition.stringEquals('$.deploy.status', 'halted'),
          sfn.Condition.stringEquals('$.deploy.output.state', 'failed'),
        ),
        rollbackFailedTask,
      )
      .when(sfn.Condition.stringEquals('$.deploy.status', 'halted'), new sfn.Succeed(this, 'NothingToDeploy'))
      .otherwise(after('DeploymentState', '$.deploy.output.state'));
    publishTask.next(deployTask).next(afterDeploy);
    wait.next(statusTask).next(after('RolloutState', '$.rollout.state'));
    confirmTask.next(new sfn.Succeed(this, 'FleetRunsNewModel'));
    rollbackTask.next(rolledBack);
    rollbackFailedTask.next(rolledBack);
    // Rollback's own failure, and every other, ends at DeployFailed (catch above).

    this.stateMachine = new sfn.StateMachine(this, 'StateMachine', {
      stateMachineName: n.deployStateMachine,
      definitionBody: sfn.DefinitionBody.fromChainable(publishTask),
      timeout: Duration.hours(24),
      tracingEnabled: true,
      logs: stateMachineLogging(this, 'StateMachineLogs'),
      comment: 'loupe deploy: approved model → component version → thing group deployment → confirm or roll back',
    });
    nagSuppress(this.stateMachine, [
      {
        id: 'AwsSolutions-IAM5[Resource::*]',
        reason:
          'X-Ray tracing and CloudWatch Logs delivery (both added by CDK for tracing and logging) have no resource-level permissions.',
      },
      ...[publish, deploy, status, confirm, rollback].map((f) => ({
        id: wildcardResource(this, `${f.functionArn}:*`),
        reason: 'Invoking the versions and aliases of a function this state machine owns (CDK LambdaInvoke grants both forms).',
      })),
    ]);

    new events.Rule(this, 'Approved', {
      description: `loupe: a model package of ${c.group} was approved`,
      eventPattern: {
        source: ['aws.sagemaker'],
        detailType: ['SageMaker Model Package State Change'],
        detail: { ModelPackageGroupName: [c.group], ModelApprovalStatus: ['Approved'] },
      },
      targets: [new targets.SfnStateMachine(this.stateMachine)],
    });
    new CfnOutput(this, 'DeployStateMachineArn', { value: this.stateMachine.stateMachineArn });
  }
}
