import { beforeEach, describe, expect, it } from 'vitest';
import {
  ConflictException,
  CreateComponentVersionCommand,
  CreateDeploymentCommand,
  DescribeComponentCommand,
  GetDeploymentCommand,
  GreengrassV2Client,
  ListComponentVersionsCommand,
  ListComponentsCommand,
  ListCoreDevicesCommand,
  ListDeploymentsCommand,
  ListInstalledComponentsCommand,
} from '@aws-sdk/client-greengrassv2';
import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { AwsGreengrassFleet } from '../../cloud/publish/greengrass-aws.js';
import { FleetStore } from '../../cloud/publish/fleet-store.js';
import { deployModel, publishModel, rollback } from '../../cloud/publish/publish.js';
import { SHIPPED_MODEL_DIR } from '../../cloud/registry/seed.js';
import { sha256 } from '../../lib/fsutil.js';
import type { ModelVersion } from '../../cloud/registry/types.js';
import { COMP_ARN, fleetRecipe, GROUP, publishAwsFixture } from '../helpers/publish-aws.js';
import { GetComponentCommand } from '@aws-sdk/client-greengrassv2';
import { EXPECTED_DEFAULT_DEPLOYMENT_POLICIES } from '../helpers/aws-shapes.js';

const ZIP_DIGEST = 'Q'.repeat(43) + '=';
const baseRecipe = fleetRecipe;

describe('republishing on AWS IoT Greengrass (control plane mocked, S3 real)', () => {
  const { state, gg, backend, files } = publishAwsFixture();
  let s3: S3Client;
  let fleet: FleetStore;
  let model: ModelVersion;
  beforeEach(() => ({ s3, fleet, model } = state));

  it('creates the next loupe.Model version from the recipe the fleet runs: model artefacts replaced (S3 + SHA-256), nothing else to download', async () => {
    gg.on(ListComponentsCommand).resolves({ components: [{ componentName: 'loupe.Model', arn: COMP_ARN }] });
    gg.on(ListComponentVersionsCommand).resolves({
      componentVersions: [
        { componentName: 'loupe.Model', componentVersion: '1.0.0' },
        { componentName: 'loupe.Model', componentVersion: '1.0.3' },
      ],
    });
    gg.on(ListDeploymentsCommand).resolves({ deployments: [{ deploymentId: 'd-1', deploymentName: 'suite', targetArn: GROUP }] });
    gg.on(GetDeploymentCommand).resolves({
      deploymentId: 'd-1',
      components: { 'loupe.Model': { componentVersion: '1.0.0' }, 'loupe.Inference': { componentVersion: '0.1.0' } },
    });
    gg.on(GetComponentCommand).resolves({ recipeOutputFormat: 'JSON', recipe: new TextEncoder().encode(JSON.stringify(fleetRecipe)) });
    gg.on(CreateComponentVersionCommand).resolves({
      arn: `${COMP_ARN}:versions:1.0.4`,
      componentName: 'loupe.Model',
      componentVersion: '1.0.4',
      status: { componentState: 'REQUESTED' },
    } as never);
    gg.on(DescribeComponentCommand).resolves({ arn: `${COMP_ARN}:versions:1.0.4`, status: { componentState: 'DEPLOYABLE' } });
    const out = await publishModel({ backend: backend(), store: fleet, model, files: files() });
    expect(out.version).toBe('1.0.4');
    expect(gg.commandCalls(ListComponentsCommand)[0]!.args[0].input).toEqual({ scope: 'PRIVATE' });
    expect(gg.commandCalls(ListComponentVersionsCommand)[0]!.args[0].input).toEqual({ arn: COMP_ARN });
    expect(gg.commandCalls(GetComponentCommand)[0]!.args[0].input).toEqual({
      arn: `${COMP_ARN}:versions:1.0.0`,
      recipeOutputFormat: 'JSON',
    });
    // Created REQUESTED: published only once Greengrass says DEPLOYABLE.
    expect(gg.commandCalls(DescribeComponentCommand).map((c) => c.args[0].input)).toEqual([{ arn: `${COMP_ARN}:versions:1.0.4` }]);
    const call = gg.commandCalls(CreateComponentVersionCommand)[0]!.args[0].input;
    const recipe = JSON.parse(new TextDecoder().decode(call.inlineRecipe as Uint8Array));
    const onnxBytes = readFileSync(join(SHIPPED_MODEL_DIR, 'model.onnx'));
    const digest = createHash('sha256').update(onnxBytes).digest('base64');
    const cardDigest = createHash('sha256')
      .update(readFileSync(join(SHIPPED_MODEL_DIR, 'train-metrics.json')))
      .digest('base64');
    const modelArtifacts = [
      {
        Uri: 's3://fleet-artefacts/loupe/components/loupe.Model/1.0.4/model.onnx',
        Digest: digest,
        Algorithm: 'SHA-256',
        Unarchive: 'NONE',
        Permission: { Read: 'ALL', Execute: 'NONE' },
      },
      {
        Uri: 's3://fleet-artefacts/loupe/components/loupe.Model/1.0.4/card.json',
        Digest: cardDigest,
        Algorithm: 'SHA-256',
        Unarchive: 'NONE',
        Permission: { Read: 'ALL', Execute: 'NONE' },
      },
    ];
    const base = fleetRecipe as {
      ComponentConfiguration: { DefaultConfiguration: Record<string, unknown> };
      Manifests: Record<string, unknown>[];
    };
    expect(recipe).toEqual({
      ...fleetRecipe,
      ComponentVersion: '1.0.4',
      ComponentDescription: `loupe model metal-tags:1 (onnx sha256 ${model.artefacts.onnx.sha256.slice(0, 12)}), published by loupe`,
      ComponentConfiguration: {
        DefaultConfiguration: {
          ...base.ComponentConfiguration.DefaultConfiguration,
          name: 'metal-tags',
          version: '1.0.4',
          sha256: model.artefacts.onnx.sha256,
          modelRef: 'metal-tags:1',
        },
      },
      Manifests: [{ ...base.Manifests[0], Artifacts: modelArtifacts }],
    });
    expect(call.tags).toEqual({ 'loupe:component': 'loupe.Model' });
    expect(call.clientToken).toMatch(/^[0-9a-f]{64}$/);
    const obj = await s3.send(new GetObjectCommand({ Bucket: 'fleet-artefacts', Key: 'loupe/components/loupe.Model/1.0.4/model.onnx' }));
    expect(Buffer.from(await obj.Body!.transformToByteArray()).equals(onnxBytes)).toBe(true);

    // Publishing the same model again creates nothing.
    const again = await publishModel({ backend: backend(), store: fleet, model, files: files(), baseRecipe });
    expect(again).toMatchObject({ version: '1.0.4', created: false });
    expect(gg.commandCalls(CreateComponentVersionCommand).length).toBe(1);

    // A fleet on an older loupe.Model whose recipe also named a code ZIP: that artefact is kept as it
    // was (same URI, same digest), since the recipe's program still runs from it.
    const older = structuredClone(fleetRecipe) as { Manifests: { Artifacts: Record<string, unknown>[] }[] };
    const zip = {
      Uri: 's3://fleet-artefacts/loupe.Model/1.0.0/loupe-model-linux-x64.zip',
      Digest: ZIP_DIGEST,
      Algorithm: 'SHA-256',
      Unarchive: 'ZIP',
      Permission: { Read: 'OWNER', Execute: 'NONE' },
    };
    older.Manifests[0]!.Artifacts.unshift(zip);
    const olderStore = new FleetStore(join(state.dir, 'older.db'));
    const next = await publishModel({
      backend: backend(),
      store: olderStore,
      model,
      files: files(),
      baseRecipe: older as unknown as Record<string, unknown>,
    });
    olderStore.close();
    expect((next.recipe as { Manifests: { Artifacts: unknown[] }[] }).Manifests[0]!.Artifacts).toEqual([
      zip,
      ...modelArtifacts.map((a) => ({ ...a, Uri: a.Uri.replace('1.0.4', next.version) })),
    ]);
  });

  it('after a crash between CreateComponentVersion and its record, reuses the version instead of making another', async () => {
    gg.on(ListComponentsCommand).resolves({ components: [{ componentName: 'loupe.Model', arn: COMP_ARN }] });
    gg.on(ListComponentVersionsCommand).resolves({ componentVersions: [{ componentVersion: '1.0.0' }] });
    // The "crashed" attempt: intent recorded, call made, never marked.
    fleet.recordComponentIntent({
      backend: 'aws',
      component: 'loupe.Model',
      version: '1.0.1',
      modelRef: model.ref,
      onnxSha256: model.artefacts.onnx.sha256,
      recipe: {},
    });
    gg.on(ListComponentVersionsCommand).resolves({ componentVersions: [{ componentVersion: '1.0.0' }, { componentVersion: '1.0.1' }] });
    const out = await publishModel({ backend: backend(), store: fleet, model, files: files(), baseRecipe });
    expect(out).toMatchObject({ version: '1.0.1', created: false });
    expect(gg.commandCalls(CreateComponentVersionCommand).length).toBe(0);
    // And if the call had not got through, the same version is created (a Conflict would also be taken as done).
    fleet.recordComponentIntent({
      backend: 'aws',
      component: 'loupe.Model',
      version: '1.0.2',
      modelRef: 'metal-tags:9',
      onnxSha256: model.artefacts.onnx.sha256,
      recipe: {},
    });
    gg.on(CreateComponentVersionCommand).rejects(
      new ConflictException({ message: 'exists', $metadata: {}, resourceId: 'x', resourceType: 'y' }),
    );
    gg.on(DescribeComponentCommand).resolves({ arn: `${COMP_ARN}:versions:1.0.2`, status: { componentState: 'DEPLOYABLE' } });
    const other = { ...model, ref: 'metal-tags:9' };
    const out2 = await publishModel({ backend: backend(), store: fleet, model: other, files: files(), baseRecipe });
    expect(out2.version).toBe('1.0.2');
    expect(gg.commandCalls(CreateComponentVersionCommand).length).toBe(1);
  });

  it('deploys to the thing group keeping the other components (configuration, runWith), once the version is DEPLOYABLE, with exponential rollout, abort criteria and ROLLBACK', async () => {
    const runWith = { posixUser: 'loupe:video', systemResourceLimits: { cpus: 1.5, memory: 1048576 } };
    gg.on(ListDeploymentsCommand).resolves({ deployments: [{ deploymentId: 'd-old', deploymentName: 'suite-v1', targetArn: GROUP }] });
    gg.on(GetDeploymentCommand, { deploymentId: 'd-old' }).resolves({
      deploymentId: 'd-old',
      components: {
        'loupe.Model': { componentVersion: '1.0.0' },
        'loupe.Inference': { componentVersion: '1.2.0', configurationUpdate: { merge: '{"conf":0.3}' }, runWith },
        'loupe.Camera': { componentVersion: '1.1.0', runWith: { posixUser: 'loupe:video' } },
        'loupe.Uploader': { componentVersion: '1.0.5' },
      },
    });
    gg.on(ListComponentsCommand).resolves({ components: [{ componentName: 'loupe.Model', arn: COMP_ARN }] });
    gg.on(DescribeComponentCommand).resolves({ arn: `${COMP_ARN}:versions:1.0.4`, status: { componentState: 'DEPLOYABLE' } });
    gg.on(CreateDeploymentCommand).resolves({ deploymentId: 'd-new', iotJobId: 'job-1', iotJobArn: 'arn:job' });
    const row = await deployModel({ backend: backend(), store: fleet, modelRef: 'metal-tags:2', version: '1.0.4', name: 'loupe-run-7' });
    expect(gg.commandCalls(ListDeploymentsCommand)[0]!.args[0].input).toEqual({ targetArn: GROUP, historyFilter: 'LATEST_ONLY' });
    expect(gg.commandCalls(DescribeComponentCommand).map((c) => c.args[0].input)).toEqual([{ arn: `${COMP_ARN}:versions:1.0.4` }]);
    expect(gg.commandCalls(CreateDeploymentCommand)[0]!.args[0].input).toEqual({
      targetArn: GROUP,
      deploymentName: 'loupe-run-7',
      components: {
        'loupe.Model': { componentVersion: '1.0.4' },
        'loupe.Inference': { componentVersion: '1.2.0', configurationUpdate: { merge: '{"conf":0.3}' }, runWith },
        'loupe.Camera': { componentVersion: '1.1.0', runWith: { posixUser: 'loupe:video' } },
        'loupe.Uploader': { componentVersion: '1.0.5' },
      },
      ...EXPECTED_DEFAULT_DEPLOYMENT_POLICIES,
      tags: { 'loupe:deployment': 'loupe-run-7' },
      clientToken: sha256(`${GROUP}\nloupe-run-7`).slice(0, 64),
    });
    expect(row).toMatchObject({ state: 'created', deploymentId: 'd-new', previousVersion: '1.0.0', version: '1.0.4' });

    // The same deployment asked for again (resumed loop): nothing new.
    await deployModel({ backend: backend(), store: fleet, modelRef: 'metal-tags:2', version: '1.0.4', name: 'loupe-run-7' });
    expect(gg.commandCalls(CreateDeploymentCommand).length).toBe(1);

    // Rollback: the previous loupe.Model version, everything else as the group runs it now.
    gg.on(ListDeploymentsCommand).resolves({ deployments: [{ deploymentId: 'd-new', deploymentName: 'loupe-run-7', targetArn: GROUP }] });
    gg.on(GetDeploymentCommand, { deploymentId: 'd-new' }).resolves({
      deploymentId: 'd-new',
      components: {
        'loupe.Model': { componentVersion: '1.0.4' },
        'loupe.Inference': { componentVersion: '1.2.0' },
        'loupe.Camera': { componentVersion: '1.1.0' },
        'loupe.Uploader': { componentVersion: '1.0.5' },
      },
    });
    gg.on(ListComponentsCommand).resolves({ components: [{ componentName: 'loupe.Model', arn: COMP_ARN }] });
    gg.on(ListComponentVersionsCommand).resolves({ componentVersions: [{ componentVersion: '1.0.0' }, { componentVersion: '1.0.4' }] });
    gg.on(CreateDeploymentCommand).resolves({ deploymentId: 'd-rb' });
    // Reported failed at once, the deploy step marks the deployment failed: it is no longer the
    // target's current one, so rollback must be told which one to roll back from (the deploy
    // state machine's RollbackFailedDeployment does): the devices it reached may run it.
    fleet.updateDeployment(row.id, { state: 'failed', detail: { reason: 'failed at once' } });
    await expect(rollback({ backend: backend(), store: fleet })).rejects.toMatchObject({ code: 'FLEET_NOTHING_TO_ROLL_BACK' });
    const rb = await rollback({ backend: backend(), store: fleet, from: fleet.deploymentByName('aws', GROUP, 'loupe-run-7')! });
    const rbCall = gg.commandCalls(CreateDeploymentCommand)[1]!.args[0].input;
    expect(rbCall.deploymentName).toBe('rollback-loupe-run-7-to-1.0.0');
    expect(rbCall.components).toEqual({
      'loupe.Model': { componentVersion: '1.0.0' },
      'loupe.Inference': { componentVersion: '1.2.0' },
      'loupe.Camera': { componentVersion: '1.1.0' },
      'loupe.Uploader': { componentVersion: '1.0.5' },
    });
    expect(rb).toMatchObject({ kind: 'rollback', version: '1.0.0', previousVersion: '1.0.4', deploymentId: 'd-rb' });
  });

  it('waits while a new version is REQUESTED/INITIATED; refuses to deploy one Greengrass FAILED or never finished checking, naming it', async () => {
    const fast = () =>
      new AwsGreengrassFleet({
        greengrass: new GreengrassV2Client({ region: 'eu-west-1' }),
        s3,
        bucket: 'fleet-artefacts',
        thingGroupArn: GROUP,
        deployable: { pollMs: 5, timeoutMs: 300 },
      });
    gg.on(ListDeploymentsCommand).resolves({ deployments: [{ deploymentId: 'd-old', deploymentName: 'suite-v1', targetArn: GROUP }] });
    gg.on(GetDeploymentCommand).resolves({
      deploymentId: 'd-old',
      components: { 'loupe.Model': { componentVersion: '1.0.0' }, 'loupe.Inference': { componentVersion: '1.2.0' } },
    });
    gg.on(ListComponentsCommand).resolves({ components: [{ componentName: 'loupe.Model', arn: COMP_ARN }] });
    gg.on(CreateDeploymentCommand).resolves({ deploymentId: 'd-9' });
    const arn = `${COMP_ARN}:versions:1.0.9`;
    gg.on(DescribeComponentCommand)
      .resolvesOnce({ arn, status: { componentState: 'REQUESTED' } })
      .resolvesOnce({ arn, status: { componentState: 'INITIATED' } })
      .resolves({ arn, status: { componentState: 'DEPLOYABLE' } });
    await deployModel({ backend: fast(), store: fleet, modelRef: 'metal-tags:9', version: '1.0.9', name: 'loupe-run-9' });
    expect(gg.commandCalls(DescribeComponentCommand).map((c) => c.args[0].input)).toEqual([{ arn }, { arn }, { arn }]);
    expect(gg.commandCalls(CreateDeploymentCommand)).toHaveLength(1);

    gg.resetHistory();
    gg.on(DescribeComponentCommand).resolves({
      arn,
      status: {
        componentState: 'FAILED',
        message: 'artifact check failed',
        errors: { 's3://fleet-artefacts/x/model.onnx': 'Access Denied' },
      },
    });
    await expect(
      deployModel({ backend: fast(), store: fleet, modelRef: 'metal-tags:10', version: '1.0.10', name: 'loupe-run-10' }),
    ).rejects.toThrow(
      `${COMP_ARN}:versions:1.0.10: Greengrass says the component version is FAILED: artifact check failed; s3://fleet-artefacts/x/model.onnx: Access Denied`,
    );
    gg.on(DescribeComponentCommand).resolves({ arn, status: { componentState: 'REQUESTED' } });
    await expect(
      deployModel({ backend: fast(), store: fleet, modelRef: 'metal-tags:11', version: '1.0.11', name: 'loupe-run-11' }),
    ).rejects.toThrow(
      `${COMP_ARN}:versions:1.0.11: still REQUESTED after 0.3 s, not DEPLOYABLE (DescribeComponent); no deployment was made`,
    );
    expect(gg.commandCalls(CreateDeploymentCommand)).toHaveLength(0);
  });

  it('after a crash between CreateDeployment and its record, finds the deployment by name', async () => {
    fleet.recordDeploymentIntent({
      backend: 'aws',
      target: GROUP,
      name: 'loupe-run-8',
      kind: 'deploy',
      modelRef: 'metal-tags:3',
      component: 'loupe.Model',
      version: '1.0.5',
      previousVersion: '1.0.4',
      components: { 'loupe.Model': '1.0.5' },
    });
    gg.on(ListDeploymentsCommand).resolves({ deployments: [{ deploymentId: 'd-8', deploymentName: 'loupe-run-8', targetArn: GROUP }] });
    const row = await deployModel({ backend: backend(), store: fleet, modelRef: 'metal-tags:3', version: '1.0.5', name: 'loupe-run-8' });
    expect(row).toMatchObject({ state: 'created', deploymentId: 'd-8' });
    expect(gg.commandCalls(CreateDeploymentCommand).length).toBe(0);
  });

  it('reports which model version each device of the group has installed', async () => {
    gg.on(ListCoreDevicesCommand).resolves({
      coreDevices: [
        { coreDeviceThingName: 'press-1', status: 'HEALTHY' },
        { coreDeviceThingName: 'press-2', status: 'HEALTHY' },
      ],
    });
    gg.on(ListInstalledComponentsCommand, { coreDeviceThingName: 'press-1', topologyFilter: 'ALL' }).resolves({
      installedComponents: [{ componentName: 'loupe.Model', componentVersion: '1.0.4', lifecycleState: 'FINISHED' }],
    });
    gg.on(ListInstalledComponentsCommand, { coreDeviceThingName: 'press-2', topologyFilter: 'ALL' }).resolves({
      installedComponents: [{ componentName: 'loupe.Model', componentVersion: '1.0.0', lifecycleState: 'FINISHED' }],
    });
    expect(await backend().devices('loupe.Model')).toEqual([
      { device: 'press-1', modelVersion: '1.0.4', state: 'FINISHED' },
      { device: 'press-2', modelVersion: '1.0.0', state: 'FINISHED' },
    ]);
    expect(gg.commandCalls(ListCoreDevicesCommand)[0]!.args[0].input).toEqual({ thingGroupArn: GROUP });
  });

  it('refuses a target that is not a thing group ARN', () => {
    expect(
      () => new AwsGreengrassFleet({ greengrass: new GreengrassV2Client({}), s3, bucket: 'b', thingGroupArn: 'press-line-3' }),
    ).toThrow(/press-line-3: expected a thing group ARN/);
  });
});
