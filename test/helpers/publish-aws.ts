import { mockClient } from 'aws-sdk-client-mock';
import { GreengrassV2Client } from '@aws-sdk/client-greengrassv2';
import { S3Client } from '@aws-sdk/client-s3';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach } from 'vitest';
import { startObjectStore, type ObjectStore } from '../../embedded/objectstore/index.js';
import { AwsGreengrassFleet } from '../../cloud/publish/greengrass-aws.js';
import { FleetStore } from '../../cloud/publish/fleet-store.js';
import { openRegistry, type SqliteModelRegistry } from '../../cloud/registry/sqlite-registry.js';
import { seedShippedModel, SHIPPED_MODEL_DIR } from '../../cloud/registry/seed.js';
import type { ModelVersion } from '../../cloud/registry/types.js';
import { loadSourceRecipe, renderRecipe } from '../../components/build/recipes.js';

export const GROUP = 'arn:aws:iot:eu-west-1:123456789012:thinggroup/press-line-3';
export const COMP_ARN = 'arn:aws:greengrass:eu-west-1:123456789012:components:loupe.Model';
export const OLD_SHA = '1'.repeat(64);

/**
 * The loupe.Model recipe of the version the thing group runs (as GetComponent returns it): the
 * project's source recipe built for AWS, its model artefacts in S3.
 */
export const fleetRecipe = (() => {
  const r = renderRecipe(loadSourceRecipe('loupe.Model'), {
    version: '1.0.0',
    model: { name: 'metal-tags', sha256: OLD_SHA },
  }) as unknown as Record<string, unknown>;
  return JSON.parse(
    JSON.stringify(r).replaceAll('s3://BUCKET_NAME/COMPONENT_NAME/COMPONENT_VERSION/', 's3://fleet-artefacts/loupe.Model/1.0.0/'),
  ) as Record<string, unknown>;
})();

export interface PublishAwsState {
  dir: string;
  s3: S3Client;
  reg: SqliteModelRegistry;
  fleet: FleetStore;
  /** The seeded shipped model. */
  model: ModelVersion;
}

/**
 * Republishing on AWS IoT Greengrass with the control plane mocked and S3 real (the embedded
 * object store): registers the hooks in the calling describe (a registry seeded with the shipped
 * model once, a fresh fleet store and mock history per test) and returns their state.
 */
export function publishAwsFixture() {
  const state = {} as PublishAwsState;
  let s3store: ObjectStore;
  const gg = mockClient(GreengrassV2Client);
  beforeAll(async () => {
    state.dir = await mkdtemp(join(tmpdir(), 'loupe-ggaws-'));
    s3store = await startObjectStore({ dir: join(state.dir, 's3'), buckets: ['fleet-artefacts'] });
    state.s3 = new S3Client(s3store.clientConfig);
    state.reg = openRegistry(join(state.dir, 'registry'));
    state.model = await seedShippedModel(state.reg);
  });
  afterAll(async () => {
    state.fleet?.close();
    state.reg.close();
    state.s3.destroy();
    await s3store.stop();
    await rm(state.dir, { recursive: true, force: true });
    gg.restore();
  });
  beforeEach(() => {
    gg.reset();
    state.fleet?.close();
    state.fleet = new FleetStore(join(state.dir, `fleet-${Math.random()}.db`));
  });
  return {
    state,
    gg,
    backend: () =>
      new AwsGreengrassFleet({
        greengrass: new GreengrassV2Client({ region: 'eu-west-1' }),
        s3: state.s3,
        bucket: 'fleet-artefacts',
        thingGroupArn: GROUP,
      }),
    files: () => [
      { name: 'model.onnx', path: join(SHIPPED_MODEL_DIR, 'model.onnx') },
      { name: 'card.json', path: join(SHIPPED_MODEL_DIR, 'train-metrics.json') },
    ],
  };
}
