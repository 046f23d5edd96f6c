import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { mockClient } from 'aws-sdk-client-mock';
import {
  CreateComponentVersionCommand,
  GreengrassV2Client,
  ListComponentVersionsCommand,
  ListComponentsCommand,
} from '@aws-sdk/client-greengrassv2';
import { S3Client } from '@aws-sdk/client-s3';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startObjectStore, type ObjectStore } from '../../embedded/objectstore/index.js';
import { AwsGreengrassFleet } from '../../cloud/publish/greengrass-aws.js';
import { FleetStore } from '../../cloud/publish/fleet-store.js';
import { publishModel } from '../../cloud/publish/publish.js';
import { openRegistry, type SqliteModelRegistry } from '../../cloud/registry/sqlite-registry.js';
import { seedShippedModel, SHIPPED_MODEL_DIR } from '../../cloud/registry/seed.js';
import { loadSourceRecipe, renderRecipe } from '../../components/build/recipes.js';
import { fixtureModel } from '../helpers/models.js';

/**
 * Republishing an int8 version on AWS IoT Greengrass (control plane mocked, S3 real), beside
 * publish-aws.test.ts. Full tier: the int8 fixture is quantized in the trainer venv (Python)
 * when ~/.cache/loupe/test-models does not have it yet.
 */
const GROUP = 'arn:aws:iot:eu-west-1:123456789012:thinggroup/press-line-3';
const COMP_ARN = 'arn:aws:greengrass:eu-west-1:123456789012:components:loupe.Model';
const baseRecipe = JSON.parse(
  JSON.stringify(
    renderRecipe(loadSourceRecipe('loupe.Model'), { version: '1.0.0', model: { name: 'metal-tags', sha256: '1'.repeat(64) } }),
  ).replaceAll('s3://BUCKET_NAME/COMPONENT_NAME/COMPONENT_VERSION/', 's3://fleet-artefacts/loupe.Model/1.0.0/'),
) as Record<string, unknown>;

describe('republishing an int8 version on AWS IoT Greengrass (control plane mocked, S3 real)', () => {
  let dir: string;
  let s3store: ObjectStore;
  let s3: S3Client;
  let reg: SqliteModelRegistry;
  let fleet: FleetStore;
  const gg = mockClient(GreengrassV2Client);

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'loupe-ggaws8-'));
    s3store = await startObjectStore({ dir: join(dir, 's3'), buckets: ['fleet-artefacts'] });
    s3 = new S3Client(s3store.clientConfig);
    reg = openRegistry(join(dir, 'registry'));
    await seedShippedModel(reg);
  });
  afterAll(async () => {
    fleet?.close();
    reg.close();
    s3.destroy();
    await s3store.stop();
    await rm(dir, { recursive: true, force: true });
    gg.restore();
  });
  beforeEach(() => {
    gg.reset();
    fleet?.close();
    fleet = new FleetStore(join(dir, `fleet-${Math.random()}.db`));
  });

  const backend = () =>
    new AwsGreengrassFleet({
      greengrass: new GreengrassV2Client({ region: 'eu-west-1' }),
      s3,
      bucket: 'fleet-artefacts',
      thingGroupArn: GROUP,
    });
  const files = () => [
    { name: 'model.onnx', path: join(SHIPPED_MODEL_DIR, 'model.onnx') },
    { name: 'card.json', path: join(SHIPPED_MODEL_DIR, 'train-metrics.json') },
  ];

  it('a version the gate chose int8 for ships its int8 file as model.onnx; the fp32 file is refused for it', async () => {
    gg.on(ListComponentsCommand).resolves({ components: [{ componentName: 'loupe.Model', arn: COMP_ARN }] });
    gg.on(ListComponentVersionsCommand).resolves({ componentVersions: [{ componentName: 'loupe.Model', componentVersion: '1.0.0' }] });
    gg.on(CreateComponentVersionCommand).resolves({
      arn: `${COMP_ARN}:versions:1.0.1`,
      componentName: 'loupe.Model',
      componentVersion: '1.0.1',
      status: { componentState: 'DEPLOYABLE' },
    } as never);
    const int8 = await fixtureModel('metal-tags-int8');
    const v = await reg.register({
      group: 'metal-tags',
      onnx: join(SHIPPED_MODEL_DIR, 'model.onnx'),
      onnxInt8: int8,
      fleetPrecision: 'int8',
      source: 'test',
      idempotencyKey: 'int8-publish',
      status: { status: 'approved', reason: 'test', by: 'test' },
    });
    await expect(publishModel({ backend: backend(), store: fleet, model: v, files: files(), baseRecipe })).rejects.toThrow(
      /does not match registry version metal-tags:\d+/,
    );
    const out = await publishModel({ backend: backend(), store: fleet, model: v, files: [{ name: 'model.onnx', path: int8 }], baseRecipe });
    const recipe = JSON.parse(
      new TextDecoder().decode(gg.commandCalls(CreateComponentVersionCommand)[0]!.args[0].input.inlineRecipe as Uint8Array),
    );
    const int8Sha = v.artefacts.onnxInt8!.sha256;
    expect(out.version).toBe('1.0.1');
    expect(recipe.ComponentDescription).toBe(`loupe model ${v.ref} (int8 onnx sha256 ${int8Sha.slice(0, 12)}), published by loupe`);
    expect(recipe.ComponentConfiguration.DefaultConfiguration).toMatchObject({ sha256: int8Sha, modelRef: v.ref });
    const art = (recipe.Manifests[0].Artifacts as { Uri: string; Digest: string }[]).find((a) => a.Uri.endsWith('/model.onnx'))!;
    expect(art.Digest).toBe(Buffer.from(int8Sha, 'hex').toString('base64'));
  }, 600_000);
});
