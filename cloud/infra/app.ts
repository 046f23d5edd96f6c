import { App, Aws, Tags, type Environment } from 'aws-cdk-lib';
import type { InfraConfig } from './config.js';
import { namesOf } from './layout.js';
import { addNagChecks } from './nag.js';
import { DeployStack } from './stacks/deploy.js';
import { EdgeStack } from './stacks/edge.js';
import { LabellingStack } from './stacks/labelling.js';
import { ModelBuildStack } from './stacks/model-build.js';
import { StorageStack } from './stacks/storage.js';

/**
 * The CDK app: five stacks, deployed in this order (each uses what the ones before it made):
 *
 *   <name>-storage      buckets (uploads, ML, access logs), ECR repository
 *   <name>-edge         thing group, token exchange role + role alias, IoT policies, component configuration
 *   <name>-labelling    feature group, Ground Truth role, labelling state machine and its triggers
 *   <name>-model-build  SageMaker Pipeline, model package group, job roles, register function
 *   <name>-deploy       approval rule, deploy state machine
 *
 * The region comes from the configuration; the account too when it names one, otherwise the
 * templates are account-agnostic (the CDK CLI fills in the account of the credentials at deploy),
 * so `loupe aws synth` needs no AWS account.
 */
export interface LoupeApp {
  app: App;
  storage: StorageStack;
  edge: EdgeStack;
  labelling: LabellingStack;
  modelBuild: ModelBuildStack;
  deploy: DeployStack;
}

/**
 * Feature flags the app is written for (CDK keeps older behaviour for apps that do not set them):
 * access logs granted by bucket policy (the log bucket keeps ACLs disabled), and Lambda and Step
 * Functions defaults of current CDK.
 */
export const CDK_CONTEXT: Record<string, unknown> = {
  '@aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy': true,
  '@aws-cdk/aws-iam:minimizePolicies': true,
  '@aws-cdk/core:enablePartitionLiterals': true,
  '@aws-cdk/aws-stepfunctions-tasks:useNewS3UriParametersForBedrockInvokeModelTask': true,
  '@aws-cdk/aws-lambda:recognizeLayerVersion': true,
};

export function buildApp(c: InfraConfig, o: { outdir?: string; context?: Record<string, unknown> } = {}): LoupeApp {
  const app = new App({ outdir: o.outdir, context: { ...CDK_CONTEXT, ...o.context } });
  const env: Environment = { region: c.region, ...(c.account ? { account: c.account } : {}) };
  const n = namesOf(c);
  const props = (description: string) => ({ env, description: `loupe: ${description}` });
  const storage = new StorageStack(app, n.stack('storage'), c, props('buckets and image repository'));
  const edge = new EdgeStack(app, n.stack('edge'), c, props('what devices need to join the fleet'));
  const labelling = new LabellingStack(
    app,
    n.stack('labelling'),
    c,
    { thingGroupArn: edge.thingGroupArn },
    props('labelling state machine, feature group'),
  );
  const shared = {
    thingGroupArn: edge.thingGroupArn,
    groundTruthRoleArn: `arn:${Aws.PARTITION}:iam::${c.account ?? Aws.ACCOUNT_ID}:role/${n.groundTruthRole}`,
    featureGroupName: labelling.featureGroupName,
  };
  const modelBuild = new ModelBuildStack(app, n.stack('model-build'), c, shared, props('model-build pipeline'));
  const deploy = new DeployStack(app, n.stack('deploy'), c, shared, props('approval → fleet deployment'));
  // Buckets are referred to by name (layout.ts), and the labelling state machine starts the pipeline by name.
  edge.addStackDependency(storage);
  labelling.addStackDependency(edge);
  modelBuild.addStackDependency(labelling);
  deploy.addStackDependency(modelBuild);
  Tags.of(app).add('loupe:app', c.name);
  addNagChecks(app);
  return { app, storage, edge, labelling, modelBuild, deploy };
}
