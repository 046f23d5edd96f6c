import { CfnOutput, Stack, type StackProps } from 'aws-cdk-lib';
import * as greengrass from 'aws-cdk-lib/aws-greengrassv2';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as iot from 'aws-cdk-lib/aws-iot';
import type { Construct } from 'constructs';
import { deploymentRequest } from '../../publish/greengrass-aws.js';
import { rolloutOf, type InfraConfig } from '../config.js';
import { componentConfiguration, ML_PREFIX, namesOf } from '../layout.js';
import { appBuckets } from '../functions.js';
import { nagSuppress, wildcardResource } from '../nag.js';

/**
 * Edge access: what a device needs to join the fleet and do its work, and nothing more.
 *
 *  - the thing group the fleet's deployments target;
 *  - the token exchange role devices get credentials for (Greengrass's TES, through the role
 *    alias): s3:PutObject on the upload prefix of the uploads bucket, s3:GetObject on the
 *    component artefacts in the ML bucket, no other permission;
 *  - the role alias, and an IoT policy allowing iot:AssumeRoleWithCertificate on it alone;
 *  - the core device IoT policy: connect as its own thing, the Greengrass and shadow/job topics
 *    of its own thing, loupe's topics of its own thing (contracts/topics.ts IOT_TOPICS), and the
 *    Greengrass data-plane calls a core device makes (AWS's minimal Greengrass v2 core policy);
 *  - the edge components' configuration merge (the uploader's bucket), and when component
 *    versions are configured, the thing group's first deployment with loupe's rollout and abort
 *    policy (the CreateDeployment request loupe's fleet code sends: publish/greengrass-aws.ts).
 */
export class EdgeStack extends Stack {
  readonly thingGroupName: string;
  readonly thingGroupArn: string;
  readonly tokenExchangeRole: iam.Role;

  constructor(scope: Construct, id: string, c: InfraConfig, props: StackProps) {
    super(scope, id, props);
    const refs = appBuckets(this, c);
    const n = namesOf(c);
    const { partition, region, account } = Stack.of(this);
    const group = new iot.CfnThingGroup(this, 'ThingGroup', { thingGroupName: c.edge.thingGroupName });
    this.thingGroupName = c.edge.thingGroupName;
    this.thingGroupArn = `arn:${partition}:iot:${region}:${account}:thinggroup/${c.edge.thingGroupName}`;

    this.tokenExchangeRole = new iam.Role(this, 'TokenExchangeRole', {
      assumedBy: new iam.ServicePrincipal('credentials.iot.amazonaws.com'),
      description: 'loupe devices (Greengrass TES): upload images, fetch component artefacts',
      inlinePolicies: {
        device: new iam.PolicyDocument({
          statements: [
            new iam.PolicyStatement({
              sid: 'UploadImages',
              actions: ['s3:PutObject'],
              resources: [refs.uploads.arnForObjects(`${c.storage.uploadPrefix}/*`)],
            }),
            new iam.PolicyStatement({
              sid: 'ComponentArtefacts',
              actions: ['s3:GetObject'],
              resources: [refs.ml.arnForObjects(`${ML_PREFIX.components}/*`)],
            }),
          ],
        }),
      },
    });
    nagSuppress(this.tokenExchangeRole, [
      {
        id: wildcardResource(this, refs.uploads.arnForObjects(`${c.storage.uploadPrefix}/*`)),
        reason: 'Devices name their uploads at run time; the grant is limited to the upload prefix.',
      },
      {
        id: wildcardResource(this, refs.ml.arnForObjects(`${ML_PREFIX.components}/*`)),
        reason: 'Component artefacts are published per version at run time; the grant is read-only on the component prefix.',
      },
    ]);

    const alias = new iot.CfnRoleAlias(this, 'RoleAlias', {
      roleAlias: n.roleAlias,
      roleArn: this.tokenExchangeRole.roleArn,
      credentialDurationSeconds: 3600,
    });
    new iot.CfnPolicy(this, 'TesPolicy', {
      policyName: n.tesPolicy,
      policyDocument: {
        Version: '2012-10-17',
        Statement: [{ Effect: 'Allow', Action: 'iot:AssumeRoleWithCertificate', Resource: alias.attrRoleAliasArn }],
      },
    });

    const thing = '${iot:Connection.Thing.ThingName}';
    const arn = (kind: string, rest: string) => `arn:${partition}:iot:${region}:${account}:${kind}/${rest}`;
    const gg = (rest: string) => `arn:${partition}:greengrass:${region}:${account}:${rest}`;
    new iot.CfnPolicy(this, 'CorePolicy', {
      policyName: n.corePolicy,
      policyDocument: {
        Version: '2012-10-17',
        Statement: [
          { Sid: 'Connect', Effect: 'Allow', Action: 'iot:Connect', Resource: arn('client', `${thing}*`) },
          {
            Sid: 'OwnTopics',
            Effect: 'Allow',
            Action: ['iot:Publish', 'iot:Receive'],
            Resource: [arn('topic', `$aws/things/${thing}/*`), arn('topic', `loupe/${thing}/*`)],
          },
          {
            Sid: 'OwnTopicFilters',
            Effect: 'Allow',
            Action: 'iot:Subscribe',
            Resource: [arn('topicfilter', `$aws/things/${thing}/*`), arn('topicfilter', `loupe/${thing}/*`)],
          },
          {
            Sid: 'OwnShadow',
            Effect: 'Allow',
            Action: ['iot:GetThingShadow', 'iot:UpdateThingShadow', 'iot:DeleteThingShadow'],
            Resource: arn('thing', thing),
          },
          {
            Sid: 'GreengrassDataPlane',
            Effect: 'Allow',
            Action: [
              'greengrass:GetComponentVersionArtifact',
              'greengrass:ResolveComponentCandidates',
              'greengrass:GetDeploymentConfiguration',
              'greengrass:ListThingGroupsForCoreDevice',
            ],
            Resource: [gg('components:*'), gg('deployments:*'), gg(`coreDevices:${thing}`)],
          },
        ],
      },
    });

    const merge = componentConfiguration(c, { uploadsBucket: refs.uploads.bucketName });
    if (c.edge.components) {
      const components = Object.fromEntries(
        Object.entries(c.edge.components).map(([name, version]) => [
          name,
          {
            componentVersion: version,
            ...(merge[name] ? { configurationUpdate: { merge: Stack.of(this).toJsonString(merge[name]) } } : {}),
          },
        ]),
      );
      // The request loupe's fleet code sends for every later deployment, less the idempotency token.
      const {
        clientToken: _t,
        targetArn,
        deploymentName,
        deploymentPolicies,
        iotJobConfiguration,
        tags,
      } = deploymentRequest(this.thingGroupArn, `${n.jobPrefix}-initial`, undefined, rolloutOf(c));
      // CDK types RateIncreaseCriteria as `any` and passes it through as given, so the SDK's
      // camelCase key would reach the template; CloudFormation's schema wants NumberOfSucceededThings
      // (cfn-lint E3002 caught it).
      const rate = iotJobConfiguration?.jobExecutionsRolloutConfig?.exponentialRate;
      if (rate?.rateIncreaseCriteria) {
        const { numberOfNotifiedThings, numberOfSucceededThings } = rate.rateIncreaseCriteria;
        rate.rateIncreaseCriteria = (numberOfSucceededThings !== undefined
          ? { NumberOfSucceededThings: numberOfSucceededThings }
          : { NumberOfNotifiedThings: numberOfNotifiedThings }) as unknown as typeof rate.rateIncreaseCriteria;
      }
      const d = new greengrass.CfnDeployment(this, 'InitialDeployment', {
        targetArn: targetArn!,
        deploymentName,
        components,
        deploymentPolicies: deploymentPolicies as greengrass.CfnDeployment.DeploymentPoliciesProperty,
        iotJobConfiguration: iotJobConfiguration as greengrass.CfnDeployment.DeploymentIoTJobConfigurationProperty,
        tags,
      });
      d.addDependency(group);
    }

    new CfnOutput(this, 'ThingGroupName', {
      value: this.thingGroupName,
      description: 'Devices join this thing group (greengrass installer --thing-group-name)',
    });
    new CfnOutput(this, 'ThingGroupArn', { value: this.thingGroupArn, description: "loop.json's fleet.thingGroupArn" });
    new CfnOutput(this, 'RoleAliasName', { value: n.roleAlias, description: 'greengrass installer --tes-role-alias-name' });
    new CfnOutput(this, 'TokenExchangeRoleName', {
      value: this.tokenExchangeRole.roleName,
      description: 'greengrass installer --tes-role-name (exists; do not let the installer create it)',
    });
    new CfnOutput(this, 'TesPolicyName', { value: n.tesPolicy, description: "Attach to each device's certificate with the core policy" });
    new CfnOutput(this, 'CorePolicyName', {
      value: n.corePolicy,
      description: "Attach to each device's certificate (connect, own topics, Greengrass data plane)",
    });
    new CfnOutput(this, 'ComponentConfiguration', {
      value: Stack.of(this).toJsonString(merge),
      description: 'Configuration merge per edge component for the thing group deployment',
    });
  }
}
