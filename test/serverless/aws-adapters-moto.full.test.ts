import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateBucketCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { CreateTableCommand, DynamoDBClient, type CreateTableCommandInput } from '@aws-sdk/client-dynamodb';
import {
  CreateStateMachineCommand,
  DescribeExecutionCommand,
  DescribeStateMachineCommand,
  ListExecutionsCommand,
  SFNClient,
  StartExecutionCommand,
} from '@aws-sdk/client-sfn';
import {
  CreatePolicyCommand,
  CreateRoleAliasCommand,
  CreateThingGroupCommand,
  DescribeRoleAliasCommand,
  DescribeThingGroupCommand,
  GetPolicyCommand,
  IoTClient,
} from '@aws-sdk/client-iot';
import {
  CreateFeatureGroupCommand,
  DescribeFeatureGroupCommand,
  DescribeTrainingJobCommand,
  SageMakerClient,
} from '@aws-sdk/client-sagemaker';
import { SageMakerFeatureStoreRuntimeClient } from '@aws-sdk/client-sagemaker-featurestore-runtime';
import { AthenaClient } from '@aws-sdk/client-athena';
import { create as tarCreate } from 'tar';
import { countUpload } from '../../cloud/serverless/upload-trigger.js';
import { describeTrainingJob, trainSageMaker } from '../../cloud/training/sagemaker-trainer.js';
import { FeatureStoreLabelStore, featureGroupRequest } from '../../cloud/labelstore/featurestore.js';
import { silentLogger } from '../../lib/log.js';
import { projectRoot } from '../../lib/paths.js';
import { resourcesOf, resolveCfn, type Template } from '../helpers/cfn.js';
import { synthesiseDefinitions, type Synthesised } from '../helpers/local-sfn.js';
import { MOTO_ACCOUNT, startMoto, type MotoServer } from '../helpers/moto.js';
import { EXPECTED_FEATURE_DEFINITIONS } from '../helpers/aws-shapes.js';
import { metalTagsSubset } from '../training/yolo-fixture.js';

/**
 * loupe's AWS adapters and the CDK app's resources against moto's server (a real, independent
 * implementation of the AWS APIs), for the services moto implements:
 *  - Step Functions + DynamoDB: both synthesised state machines created with CreateStateMachine;
 *    the upload trigger (cloud/serverless/upload-trigger.ts) counting uploads in the synthesised
 *    counter table and starting the labelling state machine (StartExecution; moto records
 *    executions but does not run states: aws-flows-moto.full.test.ts runs them).
 *  - IoT: the edge stack's thing group, IoT policies and role alias, created from their
 *    synthesised properties (loupe's code calls no IoT API itself; the stack makes these).
 *  - SageMaker training jobs: the SageMaker trainer's CreateTrainingJob / DescribeTrainingJob
 *    (the container is the fake part: moto runs nothing, so the test puts model.tar.gz where the
 *    job's ModelArtifacts say).
 *  - Feature Store: CreateFeatureGroup / DescribeFeatureGroup through the label store. Not
 *    implemented by moto 5.2.5: sagemaker-featurestore-runtime (PutRecord) and the Athena
 *    queries the store reads with; those stay request-shape tests (test/cloud-labels).
 */
const REGION = 'eu-west-1';
const ACCOUNT = MOTO_ACCOUNT;

let dir: string;
let moto: MotoServer;
let syn: Synthesised;
const stack = (suffix: string): Template => Object.entries(syn.templates).find(([n]) => n.endsWith(suffix))![1];
const resolved = (t: Template, v: unknown) =>
  resolveCfn(v, t, { account: ACCOUNT, region: REGION, templates: Object.values(syn.templates) });

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lp-awsadapters-'));
  moto = await startMoto(REGION);
  syn = await synthesiseDefinitions(join(dir, 'synth'), { account: ACCOUNT, region: REGION });
}, 600_000);

afterAll(async () => {
  await moto?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe("loupe's AWS adapters on moto's server", () => {
  it('Step Functions: both synthesised state machines are accepted; the upload trigger starts one labelling execution per window', async () => {
    const sfn = new SFNClient(moto.clientConfig);
    const ddb = new DynamoDBClient(moto.clientConfig);
    try {
      const arns: Record<string, string> = {};
      for (const [name, def] of [
        ['loupe-labelling', syn.labelling],
        ['loupe-deploy', syn.deploy],
      ] as const) {
        const r = await sfn.send(
          new CreateStateMachineCommand({
            name,
            definition: JSON.stringify(def),
            roleArn: `arn:aws:iam::${ACCOUNT}:role/${name}`,
            type: 'STANDARD',
          }),
        );
        arns[name] = r.stateMachineArn!;
        const d = await sfn.send(new DescribeStateMachineCommand({ stateMachineArn: r.stateMachineArn }));
        expect(JSON.parse(d.definition!)).toEqual(def);
      }

      // The counter table as the labelling stack defines it.
      const lt = stack('-labelling');
      const [, table] = resourcesOf(lt, 'AWS::DynamoDB::Table')[0]!;
      const p = resolved(lt, table) as Record<string, unknown>;
      await ddb.send(
        new CreateTableCommand({
          TableName: 'loupe-upload-counter',
          KeySchema: p.KeySchema,
          AttributeDefinitions: p.AttributeDefinitions,
          BillingMode: p.BillingMode ?? 'PAY_PER_REQUEST',
        } as CreateTableCommandInput),
      );

      const c = {
        table: 'loupe-upload-counter',
        threshold: 3,
        stateMachineArn: arns['loupe-labelling']!,
        dynamodb: ddb,
        sfn,
        log: silentLogger,
      };
      const event = (i: number) => ({ detail: { bucket: { name: 'uploads' }, object: { key: `incoming/line-1/frame-${i}.json` } } });
      const results = [];
      for (let i = 1; i <= 7; i++) results.push(await countUpload(c, event(i)));
      expect(results.map((r) => r.started)).toEqual([null, null, 'uploads-1', null, null, 'uploads-2', null]);
      expect(results.map((r) => r.count)).toEqual([1, 2, 3, 1, 2, 3, 1]);
      // The next window's execution exists already (a retried invocation that reset the counter and
      // started it, then failed): moto answers ExecutionAlreadyExists, the trigger takes it as started.
      await sfn.send(
        new StartExecutionCommand({
          stateMachineArn: c.stateMachineArn,
          name: 'uploads-3',
          input: JSON.stringify({ trigger: 'uploads', window: 3 }),
        }),
      );
      await countUpload(c, event(8));
      expect((await countUpload(c, event(9))).started).toBe('uploads-3');
      const execs = (await sfn.send(new ListExecutionsCommand({ stateMachineArn: c.stateMachineArn }))).executions!;
      expect(execs.map((e) => e.name).sort()).toEqual(['uploads-1', 'uploads-2', 'uploads-3']);
      const first = await sfn.send(new DescribeExecutionCommand({ executionArn: execs.find((e) => e.name === 'uploads-1')!.executionArn }));
      expect(JSON.parse(first.input!)).toEqual({ trigger: 'uploads', window: 1 });
    } finally {
      sfn.destroy();
      ddb.destroy();
    }
  }, 120_000);

  it("IoT: the edge stack's thing group, policies and role alias, from their synthesised properties", async () => {
    const iot = new IoTClient(moto.clientConfig);
    try {
      const et = stack('-edge');
      const [, group] = resourcesOf(et, 'AWS::IoT::ThingGroup')[0]!;
      const g = await iot.send(new CreateThingGroupCommand({ thingGroupName: String(group.ThingGroupName) }));
      expect(g.thingGroupArn).toBe(`arn:aws:iot:${REGION}:${ACCOUNT}:thinggroup/press-line-3`);
      expect((await iot.send(new DescribeThingGroupCommand({ thingGroupName: String(group.ThingGroupName) }))).thingGroupName).toBe(
        'press-line-3',
      );
      const policies = resourcesOf(et, 'AWS::IoT::Policy');
      expect(policies.length).toBe(2);
      for (const [id, p0] of policies) {
        const p = resolved(et, p0) as { PolicyName?: string; PolicyDocument: unknown };
        const name = p.PolicyName ?? id;
        await iot.send(new CreatePolicyCommand({ policyName: name, policyDocument: JSON.stringify(p.PolicyDocument) }));
        const got = await iot.send(new GetPolicyCommand({ policyName: name }));
        expect(JSON.parse(got.policyDocument!)).toEqual(p.PolicyDocument);
      }
      const [, alias0] = resourcesOf(et, 'AWS::IoT::RoleAlias')[0]!;
      const alias = resolved(et, alias0) as { RoleAlias: string; RoleArn: string; CredentialDurationSeconds?: number };
      await iot.send(
        new CreateRoleAliasCommand({
          roleAlias: alias.RoleAlias,
          roleArn: alias.RoleArn,
          ...(alias.CredentialDurationSeconds ? { credentialDurationSeconds: alias.CredentialDurationSeconds } : {}),
        }),
      );
      const d = await iot.send(new DescribeRoleAliasCommand({ roleAlias: alias.RoleAlias }));
      expect(d.roleAliasDescription).toMatchObject({ roleAlias: alias.RoleAlias, roleArn: alias.RoleArn });
    } finally {
      iot.destroy();
    }
  }, 120_000);

  it("SageMaker training: the trainer's CreateTrainingJob is accepted as sent, DescribeTrainingJob drives it to its model.tar.gz; an unknown job reads as none", async () => {
    const sagemaker = new SageMakerClient(moto.clientConfig);
    const s3 = new S3Client({ ...moto.clientConfig, forcePathStyle: true });
    try {
      await s3.send(new CreateBucketCommand({ Bucket: 'loupe-train', CreateBucketConfiguration: { LocationConstraint: REGION } }));
      // The container (the fake part): when moto has the job, its model.tar.gz appears where DescribeTrainingJob says.
      const shipped = join(projectRoot, 'models', 'metal-tags');
      const art = join(dir, 'art');
      await mkdir(art, { recursive: true });
      for (const [from, to] of [
        ['model.pt', 'best.pt'],
        ['model.onnx', 'model.onnx'],
        ['train-metrics.json', 'metrics.json'],
      ])
        await import('node:fs/promises').then((f) => f.copyFile(join(shipped, from), join(art, to)));
      await tarCreate({ gzip: true, cwd: art, file: join(dir, 'model.tar.gz') }, ['best.pt', 'model.onnx', 'metrics.json']);
      sagemaker.middlewareStack.add(
        (next, ctx) => async (args) => {
          const r = await next(args);
          if (ctx.commandName === 'CreateTrainingJobCommand') {
            const name = (args.input as { TrainingJobName: string }).TrainingJobName;
            const d = await sagemaker.send(new DescribeTrainingJobCommand({ TrainingJobName: name }));
            const m = /^s3:\/\/([^/]+)\/(.+)$/.exec(d.ModelArtifacts!.S3ModelArtifacts!)!;
            await s3.send(new PutObjectCommand({ Bucket: m[1], Key: m[2], Body: readFileSync(join(dir, 'model.tar.gz')) }));
          }
          return r;
        },
        { step: 'deserialize', name: 'trainingContainer' },
      );
      const data = await metalTagsSubset(join(dir, 'data'), { limit: { train: 4, val: 2, test: 2 } });
      const out = join(dir, 'out');
      const r = await trainSageMaker(
        { data, base: join(shipped, 'model.pt'), epochs: 1, imgsz: 160, batch: 8, patience: 50, seed: 0, workers: 0 },
        out,
        {
          bucket: 'loupe-train',
          roleArn: `arn:aws:iam::${ACCOUNT}:role/loupe-training`,
          image: `${ACCOUNT}.dkr.ecr.${REGION}.amazonaws.com/loupe-train:1`,
          jobName: 'loupe-r7-train',
          pollSeconds: 0.1,
        },
        { s3, sagemaker },
      );
      expect(r.backend).toBe('sagemaker');
      for (const f of [r.onnx, r.bestPt, r.metricsJson]) expect(existsSync(f)).toBe(true);
      // moto kept the request as the trainer sent it.
      const d = await sagemaker.send(new DescribeTrainingJobCommand({ TrainingJobName: 'loupe-r7-train' }));
      // (moto 5.2.5 answers its own default MetricDefinitions, not the request's: those are
      // checked as the request the trainer sends, test/training/sagemaker.full.test.ts.)
      expect(d.AlgorithmSpecification).toMatchObject({ TrainingImage: `${ACCOUNT}.dkr.ecr.${REGION}.amazonaws.com/loupe-train:1` });
      expect(d.HyperParameters).toMatchObject({ epochs: '1', imgsz: '160', batch: '8' });
      expect(d.InputDataConfig!.map((c) => [c.ChannelName, c.DataSource!.S3DataSource!.S3Uri])).toEqual([
        ['dataset', 's3://loupe-train/loupe/training/loupe-r7-train/input/dataset/'],
        ['base', 's3://loupe-train/loupe/training/loupe-r7-train/input/base/'],
      ]);
      // How moto answers a job it does not know must read as "no such job" (resumed runs rely on it).
      expect(await describeTrainingJob(sagemaker, 'loupe-r8-train')).toBeUndefined();
      // (moto 5.2.5 accepts a second CreateTrainingJob of the same name, which SageMaker refuses
      // with ResourceInUse; the resume-after-crash path is covered by test/loop-aws's fake.)
    } finally {
      sagemaker.destroy();
      s3.destroy();
    }
  }, 300_000);

  it("Feature Store: loupe's CreateFeatureGroup request is accepted as specified; the label store finds the group Created", async () => {
    const sagemaker = new SageMakerClient(moto.clientConfig);
    const runtime = new SageMakerFeatureStoreRuntimeClient(moto.clientConfig);
    const athena = new AthenaClient(moto.clientConfig);
    try {
      const opts = {
        featureGroupName: 'loupe-labels',
        offlineStoreS3Uri: 's3://loupe-ml/loupe/featurestore/',
        roleArn: `arn:aws:iam::${ACCOUNT}:role/loupe-featurestore`,
        athenaOutputS3Uri: 's3://loupe-ml/athena/',
        sagemaker,
        runtime,
        athena,
        pollMs: 50,
        timeoutMs: 30_000,
      };
      // moto 5.2.5 answers DescribeFeatureGroup for a group it does not have with an HTTP 500
      // (a KeyError), not ResourceNotFound, so the store's describe-then-create cannot start from
      // nothing here: loupe's exact CreateFeatureGroup request goes to moto first, then the store
      // finds the group and waits for it (the create-when-missing branch is a request-shape test).
      await sagemaker.send(new CreateFeatureGroupCommand(featureGroupRequest(opts)));
      const store = new FeatureStoreLabelStore(opts);
      await store.ensureFeatureGroup();
      const d = await sagemaker.send(new DescribeFeatureGroupCommand({ FeatureGroupName: 'loupe-labels' }));
      expect(d.FeatureGroupStatus).toBe('Created');
      expect(d.FeatureDefinitions).toEqual(EXPECTED_FEATURE_DEFINITIONS);
      const req = featureGroupRequest(opts);
      expect(d).toMatchObject({
        RecordIdentifierFeatureName: req.RecordIdentifierFeatureName,
        EventTimeFeatureName: req.EventTimeFeatureName,
        RoleArn: req.RoleArn,
        OfflineStoreConfig: { S3StorageConfig: { S3Uri: opts.offlineStoreS3Uri } },
      });
    } finally {
      sagemaker.destroy();
      runtime.destroy();
      athena.destroy();
    }
  }, 120_000);
});
