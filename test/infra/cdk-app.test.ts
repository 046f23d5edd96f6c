import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Match, Template as Assert } from 'aws-cdk-lib/assertions';
import aslValidator from 'asl-validator';
import { parseInfraConfig, type InfraConfig } from '../../cloud/infra/config.js';
import type { SynthSummary } from '../../cloud/infra/synth.js';
import { checkPipelineDefinition } from '../../cloud/infra/pipeline-check.js';
import { ML_PREFIX } from '../../cloud/infra/layout.js';
import { FEATURE_DEFINITIONS } from '../../cloud/labelstore/featurestore.js';
import { parseLoopConfig } from '../../cloud/loop/config.js';
import { readTemplate, resolveCfn, resourcesOf, type Template } from '../helpers/cfn.js';
import { synthesizedOnce } from '../helpers/synth-once.js';

/**
 * The CDK app synthesised once (offline: no account, no Docker engine), then checked with the
 * real tools: aws-cdk-lib/assertions on resources, properties and IAM statements; cdk-nag's
 * AwsSolutions report (synth fails on an unacknowledged finding; every acknowledgement has a
 * reason); asl-validator on both state machines; loupe's pipeline
 * checker on the synthesised pipeline definition. cfn-lint (Python) runs in cfn-lint.full.test.ts.
 */
const ACCOUNT = '111122223333';
const REGION = 'eu-west-1';
const raw = JSON.parse(readFileSync('cloud/infra/loupe.infra.example.json', 'utf8')) as Record<string, unknown>;
const config: InfraConfig = parseInfraConfig(
  {
    ...raw,
    edge: {
      thingGroupName: 'press-line-3',
      components: { 'loupe.Camera': '1.0.0', 'loupe.Inference': '1.0.0', 'loupe.Uploader': '1.0.0', 'loupe.Model': '1.0.0' },
    },
  },
  'test',
);

let dir: string;
let summary: SynthSummary;
const templates: Record<string, Template> = {};
const assert = (stack: string) => Assert.fromJSON(templates[stack] as unknown as Record<string, unknown>);
const ctx = () => ({ account: ACCOUNT, region: REGION, templates: Object.values(templates) });

/** No-resource-level actions: the only ones allowed on Resource "*". */
const NO_RESOURCE_LEVEL = new Set([
  'xray:PutTraceSegments',
  'xray:PutTelemetryRecords',
  'xray:GetSamplingRules',
  'xray:GetSamplingTargets',
  'logs:CreateLogDelivery',
  'logs:GetLogDelivery',
  'logs:UpdateLogDelivery',
  'logs:DeleteLogDelivery',
  'logs:ListLogDeliveries',
  'logs:PutResourcePolicy',
  'logs:DescribeResourcePolicies',
  'logs:DescribeLogGroups',
  'ecr:GetAuthorizationToken',
  'cloudwatch:PutMetricData',
]);

interface Statement {
  Effect: string;
  Action: string | string[];
  Resource: unknown;
  Condition?: Record<string, unknown>;
}

function statements(t: Template): { where: string; s: Statement }[] {
  const out: { where: string; s: Statement }[] = [];
  for (const [id, p] of resourcesOf(t, 'AWS::IAM::Role')) {
    for (const pol of (p.Policies ?? []) as { PolicyName: string; PolicyDocument: { Statement: Statement[] } }[])
      for (const s of pol.PolicyDocument.Statement) out.push({ where: `${id}/${pol.PolicyName}`, s });
  }
  for (const [id, p] of resourcesOf(t, 'AWS::IAM::Policy'))
    for (const s of (p.PolicyDocument as { Statement: Statement[] }).Statement) out.push({ where: id, s });
  return out;
}

const list = <T>(v: T | T[]): T[] => (Array.isArray(v) ? v : [v]);

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lp-cdk-'));
  summary = await synthesizedOnce(config, join(dir, 'cdk.out'));
  for (const s of summary.stacks) templates[s.name] = readTemplate(s.template);
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('the synthesised app', () => {
  it('has the five stacks, each with its resources', () => {
    expect(summary.stacks.map((s) => s.name)).toEqual([
      'loupe-storage',
      'loupe-edge',
      'loupe-labelling',
      'loupe-model-build',
      'loupe-deploy',
    ]);
    const types = Object.fromEntries(summary.stacks.map((s) => [s.name, s.types]));
    expect(types['loupe-storage']).toEqual({ 'AWS::S3::Bucket': 3, 'AWS::S3::BucketPolicy': 3, 'AWS::ECR::Repository': 1 });
    expect(types['loupe-edge']).toMatchObject({
      'AWS::IoT::ThingGroup': 1,
      'AWS::IoT::RoleAlias': 1,
      'AWS::IoT::Policy': 2,
      'AWS::IAM::Role': 1,
      'AWS::GreengrassV2::Deployment': 1,
    });
    expect(types['loupe-labelling']).toMatchObject({
      'AWS::SageMaker::FeatureGroup': 1,
      'AWS::StepFunctions::StateMachine': 1,
      'AWS::Lambda::Function': 5,
      'AWS::Events::Rule': 2,
      'AWS::DynamoDB::Table': 1,
    });
    expect(types['loupe-model-build']).toMatchObject({
      'AWS::SageMaker::Pipeline': 1,
      'AWS::SageMaker::ModelPackageGroup': 1,
      'AWS::Lambda::Function': 1,
    });
    expect(types['loupe-deploy']).toMatchObject({
      'AWS::StepFunctions::StateMachine': 1,
      'AWS::Lambda::Function': 5,
      'AWS::Events::Rule': 1,
    });
    // Both images are Docker assets, staged and hashed, not built.
    expect(summary.assets.dockerImages).toBe(2);
  });

  it('storage: encrypted, TLS only, no public access, raw uploads move to IA then expire, the ML bucket versioned', () => {
    const s = assert('loupe-storage');
    s.resourceCountIs('AWS::S3::Bucket', 3);
    s.allResourcesProperties('AWS::S3::Bucket', {
      BucketEncryption: { ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }] },
      PublicAccessBlockConfiguration: {
        BlockPublicAcls: true,
        BlockPublicPolicy: true,
        IgnorePublicAcls: true,
        RestrictPublicBuckets: true,
      },
    });
    s.allResourcesProperties('AWS::S3::BucketPolicy', {
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({ Effect: 'Deny', Action: 's3:*', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
        ]),
      },
    });
    s.hasResourceProperties('AWS::S3::Bucket', {
      BucketName: Match.objectLike({ 'Fn::Join': Match.anyValue() }),
      LifecycleConfiguration: {
        Rules: Match.arrayWith([
          Match.objectLike({
            Prefix: 'incoming/',
            Status: 'Enabled',
            ExpirationInDays: 365,
            Transitions: [{ StorageClass: 'STANDARD_IA', TransitionInDays: 30 }],
          }),
        ]),
      },
      NotificationConfiguration: { EventBridgeConfiguration: { EventBridgeEnabled: true } },
    });
    s.hasResourceProperties('AWS::S3::Bucket', { VersioningConfiguration: { Status: 'Enabled' } });
    s.hasResourceProperties('AWS::ECR::Repository', { ImageScanningConfiguration: { ScanOnPush: true }, ImageTagMutability: 'IMMUTABLE' });
  });

  it('edge: the token exchange role puts on the upload prefix and gets component artefacts, nothing else; the role alias policy allows only that alias', () => {
    const e = assert('loupe-edge');
    const tes = resolveCfn(resourcesOf(templates['loupe-edge']!, 'AWS::IAM::Role')[0]![1], templates['loupe-edge']!, ctx()) as Record<
      string,
      unknown
    >;
    expect(tes.AssumeRolePolicyDocument).toMatchObject({
      Statement: [{ Action: 'sts:AssumeRole', Effect: 'Allow', Principal: { Service: 'credentials.iot.amazonaws.com' } }],
    });
    expect((tes.Policies as { PolicyDocument: { Statement: unknown[] } }[])[0]!.PolicyDocument.Statement).toEqual([
      {
        Sid: 'UploadImages',
        Effect: 'Allow',
        Action: 's3:PutObject',
        Resource: `arn:aws:s3:::loupe-uploads-${ACCOUNT}-${REGION}/incoming/*`,
      },
      {
        Sid: 'ComponentArtefacts',
        Effect: 'Allow',
        Action: 's3:GetObject',
        Resource: `arn:aws:s3:::loupe-ml-${ACCOUNT}-${REGION}/${ML_PREFIX.components}/*`,
      },
    ]);
    expect(tes.ManagedPolicyArns).toBeUndefined();
    e.hasResourceProperties('AWS::IoT::RoleAlias', { RoleAlias: 'loupe-tes', CredentialDurationSeconds: 3600 });
    e.hasResourceProperties('AWS::IoT::Policy', {
      PolicyName: 'loupe-tes-policy',
      PolicyDocument: {
        Statement: [
          {
            Effect: 'Allow',
            Action: 'iot:AssumeRoleWithCertificate',
            Resource: { 'Fn::GetAtt': [Match.stringLikeRegexp('^RoleAlias'), 'RoleAliasArn'] },
          },
        ],
      },
    });
    // The core policy: the device's own client id, topics and shadow, by policy variable.
    const core = JSON.stringify(
      resourcesOf(templates['loupe-edge']!, 'AWS::IoT::Policy').find(([, p]) => p.PolicyName === 'loupe-core-policy')![1],
    );
    expect(core).toContain('client/${iot:Connection.Thing.ThingName}*');
    expect(core).toContain('topic/loupe/${iot:Connection.Thing.ThingName}/*');
    expect(core).not.toMatch(/"iot:\*"|"greengrass:\*"/);
    // The first deployment: loupe's rollout and abort policy, the uploader's bucket merged in.
    e.hasResourceProperties('AWS::GreengrassV2::Deployment', {
      DeploymentPolicies: { FailureHandlingPolicy: 'ROLLBACK', ComponentUpdatePolicy: { Action: 'NOTIFY_COMPONENTS' } },
      IotJobConfiguration: {
        JobExecutionsRolloutConfig: {
          ExponentialRate: { BaseRatePerMinute: 2, IncrementFactor: 2, RateIncreaseCriteria: { NumberOfSucceededThings: 2 } },
        },
        AbortConfig: { CriteriaList: Match.arrayWith([Match.objectLike({ FailureType: 'FAILED', Action: 'CANCEL' })]) },
      },
    });
    const d = resolveCfn(
      resourcesOf(templates['loupe-edge']!, 'AWS::GreengrassV2::Deployment')[0]![1],
      templates['loupe-edge']!,
      ctx(),
    ) as { TargetArn: string; Components: Record<string, { ConfigurationUpdate?: { Merge: string } }> };
    expect(d.TargetArn).toBe(`arn:aws:iot:${REGION}:${ACCOUNT}:thinggroup/press-line-3`);
    expect(JSON.parse(d.Components['loupe.Uploader']!.ConfigurationUpdate!.Merge)).toEqual({
      bucket: `loupe-uploads-${ACCOUNT}-${REGION}`,
      prefix: 'incoming',
      region: REGION,
    });
  });

  it("labelling: the feature group has loupe's feature definitions; the state machine logs everything and traces; triggers on a schedule and on upload sidecars", () => {
    const l = assert('loupe-labelling');
    l.hasResourceProperties('AWS::SageMaker::FeatureGroup', {
      FeatureGroupName: 'loupe-labels',
      RecordIdentifierFeatureName: 'source_ref',
      EventTimeFeatureName: 'event_time',
      FeatureDefinitions: FEATURE_DEFINITIONS.map((f) => ({ FeatureName: f.FeatureName, FeatureType: f.FeatureType })),
      OfflineStoreConfig: { DisableGlueTableCreation: false },
      OnlineStoreConfig: { EnableOnlineStore: false },
    });
    l.hasResourceProperties('AWS::StepFunctions::StateMachine', {
      StateMachineName: 'loupe-labelling',
      TracingConfiguration: { Enabled: true },
      LoggingConfiguration: { Level: 'ALL' },
    });
    l.hasResourceProperties('AWS::Events::Rule', {
      ScheduleExpression: 'rate(1 day)',
      Targets: [Match.objectLike({ Input: '{"trigger":"schedule"}' })],
    });
    l.hasResourceProperties('AWS::Events::Rule', {
      EventPattern: {
        source: ['aws.s3'],
        'detail-type': ['Object Created'],
        detail: { object: { key: [{ wildcard: 'incoming/*.json' }] } },
      },
    });
    l.hasResourceProperties('AWS::DynamoDB::Table', { PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true } });
    // The handlers run the loop's steps from the cloud image, each its own role.
    const fns = resourcesOf(templates['loupe-labelling']!, 'AWS::Lambda::Function').map(
      ([, p]) => (p.ImageConfig as { Command: string[] }).Command[0],
    );
    expect(fns.sort()).toEqual([
      'dist/cloud/serverless/handlers.ingest',
      'dist/cloud/serverless/handlers.label',
      'dist/cloud/serverless/handlers.publishLabels',
      'dist/cloud/serverless/handlers.verify',
      'dist/cloud/serverless/upload-trigger.handler',
    ]);
  });

  it("every handler's loop configuration is a valid loop.json choosing the AWS ports", () => {
    for (const stack of ['loupe-labelling', 'loupe-model-build', 'loupe-deploy']) {
      const t = templates[stack]!;
      for (const [id, p] of resourcesOf(t, 'AWS::Lambda::Function')) {
        const env = (resolveCfn(p, t, ctx()) as { Environment: { Variables: Record<string, string> } }).Environment.Variables;
        if (!env.LOUPE_LOOP_CONFIG) continue;
        const c = parseLoopConfig(JSON.parse(env.LOUPE_LOOP_CONFIG), `${stack}/${id}`);
        expect({
          storage: c.storage.backend,
          labels: c.labelStore.backend,
          labeling: c.labeling.backend,
          registry: c.registry.backend,
          fleet: c.fleet?.backend,
        }).toEqual({
          storage: 's3',
          labels: 'featurestore',
          labeling: 'groundtruth',
          registry: 'sagemaker',
          fleet: 'aws',
        });
        expect(c.storage.bucket).toBe(`loupe-uploads-${ACCOUNT}-${REGION}`);
        expect(env.LOUPE_HOME_URI).toBe(`s3://loupe-ml-${ACCOUNT}-${REGION}/${ML_PREFIX.home}`);
      }
    }
  });

  it('IAM: no wildcard actions; Resource "*" only for actions without resource-level permissions; every wildcard resource acknowledged with a reason', () => {
    const report = JSON.parse(readFileSync(summary.nag.report, 'utf8')) as {
      pluginReports: { suppressedViolations: { ruleName: string; reason: string }[] }[];
    };
    const acknowledged = new Set(report.pluginReports[0]!.suppressedViolations.map((v) => v.ruleName));
    let checked = 0;
    for (const [name, t] of Object.entries(templates)) {
      for (const { where, s } of statements(t)) {
        checked++;
        for (const a of list(s.Action)) expect(a, `${name}/${where}`).not.toContain('*');
        for (const r of list(s.Resource)) {
          if (r === '*') {
            for (const a of list(s.Action)) expect(NO_RESOURCE_LEVEL.has(a), `${name}/${where}: ${a} on "*"`).toBe(true);
            continue;
          }
          const flat = JSON.stringify(r);
          if (flat.includes('*'))
            expect(
              [...acknowledged].some((id) => id.startsWith('AwsSolutions-IAM5[Resource::')),
              `${name}/${where}: ${flat}`,
            ).toBe(true);
        }
      }
    }
    expect(checked).toBeGreaterThan(40);
  });

  it('cdk-nag AwsSolutions: no finding left, each acknowledgement with its reason', () => {
    expect(summary.nag).toMatchObject({ plugin: 'AwsSolutions', conclusion: 'success', violations: 0 });
    const report = JSON.parse(readFileSync(summary.nag.report, 'utf8')) as {
      pluginReports: { suppressedViolations: { ruleName: string; reason: string }[] }[];
    };
    const acks = report.pluginReports[0]!.suppressedViolations;
    expect(acks.length).toBeGreaterThan(10);
    for (const a of acks) expect(a.reason.length, a.ruleName).toBeGreaterThan(30);
    // Only IAM5 (wildcard resources, each with its reason) is acknowledged.
    expect(new Set(acks.map((a) => a.ruleName.replace(/\[.*$/, '')))).toEqual(new Set(['AwsSolutions-IAM5']));
  });

  it('asl-validator accepts both state machine definitions (JSON paths and resource ARNs checked)', () => {
    for (const stack of ['loupe-labelling', 'loupe-deploy']) {
      const t = templates[stack]!;
      const [, p] = resourcesOf(t, 'AWS::StepFunctions::StateMachine')[0]!;
      const definition = JSON.parse(resolveCfn(p.DefinitionString, t, ctx()) as string) as Record<string, unknown>;
      const r = aslValidator(definition, { checkPaths: true, checkArn: true });
      expect(r.errorsText(), stack).toBe('');
      expect(r.isValid).toBe(true);
      expect(Object.keys(definition.States as object).length).toBeGreaterThan(8);
    }
  });

  it("the pipeline definition passes loupe's checker (step references, property paths, parameters)", () => {
    const t = templates['loupe-model-build']!;
    const [, p] = resourcesOf(t, 'AWS::SageMaker::Pipeline')[0]!;
    const body = resolveCfn((p.PipelineDefinition as { PipelineDefinitionBody: unknown }).PipelineDefinitionBody, t, ctx()) as string;
    const def = JSON.parse(body) as { Steps: { Name: string }[] };
    expect(checkPipelineDefinition(def)).toEqual([]);
    expect(def.Steps.map((s) => s.Name)).toEqual(['Snapshot', 'HasNewLabels']);
    expect(body).toContain(`"FunctionArn":"arn:aws:lambda:${REGION}:${ACCOUNT}:function:`);
  });

  it("the cloud image's staged context holds every file its Dockerfile copies, quantize.py among them, with the trainer's pins", () => {
    // CDK stages each Docker asset's context into cdk.out at synth; `cdk deploy` builds from there,
    // so a COPY source the exclude list leaves out fails only at deploy time. Check it here.
    const staged = readdirSync(summary.outDir)
      .filter((d) => d.startsWith('asset.'))
      .map((d) => join(summary.outDir, d))
      .find((d) => existsSync(join(d, 'cloud', 'infra', 'images', 'cloud.Dockerfile')));
    expect(staged, 'the cloud image asset is staged').toBeDefined();
    const dockerfile = readFileSync(join(staged!, 'cloud', 'infra', 'images', 'cloud.Dockerfile'), 'utf8');
    const sources = [...dockerfile.matchAll(/^COPY\s+(.+)$/gm)].flatMap((m) => m[1]!.trim().split(/\s+/).slice(0, -1));
    expect(sources).toContain('cloud/quantize/quantize.py');
    for (const src of sources) expect(existsSync(join(staged!, src)), `COPY ${src} is in the staged context`).toBe(true);
    // The processing job runs quantize.py from projectRoot/cloud/quantize, as `loupe quantize` does.
    expect(dockerfile).toMatch(/ENV LOUPE_QUANTIZER_VENV=\/opt\/loupe-quantizer/);
    const pins = (f: string) =>
      new Map(
        readFileSync(f, 'utf8')
          .split('\n')
          .filter((l) => /^[A-Za-z0-9_.-]+==/.test(l))
          .map((l) => l.split('==') as [string, string]),
      );
    const trainer = pins('cloud/training/requirements.txt');
    for (const [name, version] of pins('cloud/quantize/requirements.txt'))
      expect(`${name}==${trainer.get(name)}`).toBe(`${name}==${version}`);
  });
});
