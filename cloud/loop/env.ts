import { S3Client } from '@aws-sdk/client-s3';
import { GreengrassV2Client } from '@aws-sdk/client-greengrassv2';
import type { Logger } from 'pino';
import { LoupeError } from '../../components/common/errors.js';
import { openLabelStore, type SqliteLabelStore } from '../labelstore/index.js';
import { importFeatureStoreCsv } from '../labelstore/csv.js';
import { Labeling } from '../labeling/jobs.js';
import { ImageSource, metalTagsMapping } from '../labeling/images.js';
import type { FleetBackend } from '../publish/backend.js';
import { FleetStore } from '../publish/fleet-store.js';
import { AwsGreengrassFleet } from '../publish/greengrass-aws.js';
import { LocalNucleusFleet } from '../publish/local-nucleus.js';
import { readRecipeFile } from '../publish/model-component.js';
import { openRegistry, type SqliteModelRegistry } from '../registry/sqlite-registry.js';
import { seedShippedModel } from '../registry/seed.js';
import type { LoopConfig, LoopHome } from './config.js';

/**
 * The parts one loop run works with, opened from the configuration and the loop home and
 * closed together: label store + labelling, the bucket devices upload to, the model registry
 * (seeded with the shipped model), the fleet store and the fleet backend. Opening is
 * idempotent (the registry seed and the history import add nothing the second time).
 */
export class LoopEnv {
  labels!: SqliteLabelStore;
  labeling!: Labeling;
  registry!: SqliteModelRegistry;
  fleetStore!: FleetStore;
  s3!: S3Client;
  images!: ImageSource;
  private fleetBackend: FleetBackend | null = null;

  private constructor(
    readonly config: LoopConfig,
    readonly home: LoopHome,
    readonly log: Logger,
  ) {}

  static async open(config: LoopConfig, home: LoopHome, log: Logger): Promise<LoopEnv> {
    const env = new LoopEnv(config, home, log);
    env.labels = openLabelStore(home.labelsDb);
    env.labeling = Labeling.open(env.labels);
    env.registry = openRegistry(home.registryDir, config.policy);
    env.fleetStore = new FleetStore(home.fleetDb);
    const st = config.storage;
    env.s3 = new S3Client({
      region: st.region,
      forcePathStyle: st.forcePathStyle,
      ...(st.endpoint ? { endpoint: st.endpoint } : {}),
      ...(st.credentials ? { credentials: st.credentials } : {}),
    });
    const mappings = config.history.imagesDir ? [metalTagsMapping(config.history.imagesDir)] : [];
    env.images = new ImageSource({ s3: env.s3, mappings });
    if ((await env.registry.list({ group: config.group })).length === 0) {
      const seeded = await seedShippedModel(env.registry, { group: config.group });
      log.info({ model: seeded.ref }, 'registry seeded with the shipped model as champion');
    }
    if (config.history.labelsCsv) {
      const r = await importFeatureStoreCsv(env.labels, config.history.labelsCsv);
      if (r.appended) log.info({ csv: config.history.labelsCsv, ...r }, 'imported the label history');
    }
    return env;
  }

  get fleet(): FleetBackend {
    if (this.fleetBackend) return this.fleetBackend;
    const f = this.config.fleet;
    if (!f) throw new LoupeError('LOOP_NO_FLEET', 'no fleet configured (the `fleet` section of the loop configuration)', { input: this.home.config });
    if (f.backend === 'local') {
      this.fleetBackend = new LocalNucleusFleet({ nucleusRoot: f.nucleusRoot, repoDir: this.home.componentRepo, thingName: f.thingName });
    } else {
      this.fleetBackend = new AwsGreengrassFleet({ greengrass: new GreengrassV2Client({ region: f.region }), s3: new S3Client({ region: f.region }), bucket: f.bucket, thingGroupArn: f.thingGroupArn });
    }
    return this.fleetBackend;
  }

  /** The loupe.Model recipe new versions are built from: configured, or what the fleet backend says. */
  async baseRecipe(): Promise<Record<string, unknown>> {
    const configured = this.config.fleet?.baseRecipe;
    if (configured) return readRecipeFile(configured);
    return this.fleet.baseRecipe('loupe.Model');
  }

  async close(): Promise<void> {
    if (this.fleetBackend && 'close' in this.fleetBackend) await (this.fleetBackend as LocalNucleusFleet).close();
    this.fleetStore?.close();
    this.registry?.close();
    await this.labels?.close();
    this.s3?.destroy();
  }
}
