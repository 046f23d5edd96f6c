import { randomBytes } from 'node:crypto';
import type { S3Client } from '@aws-sdk/client-s3';
import type { Logger } from 'pino';
import { LoupeError } from '../../lib/errors.js';
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
import { SHIPPED_MODEL_DIR, seedShippedModel } from '../registry/seed.js';
import { readImageIds } from '../dataset/id-list.js';
import { SageMakerModelRegistry } from '../registry/sagemaker-registry.js';
import { FeatureStoreLabelStore } from '../labelstore/featurestore.js';
import { GroundTruthBackend } from '../labeling/groundtruth.js';
import { AwsClients, awsStage, s3ClientFor } from './aws/clients.js';
import { FeatureStoreMirror } from './aws/featurestore-mirror.js';
import { SageMakerRegistryMirror } from './aws/registry-mirror.js';
import type { LoopConfig, LoopHome } from './config.js';
import { LoopStore } from './store.js';

/**
 * The parts one loop run works with, opened from the configuration and the loop home and
 * closed together: label store + labelling, the bucket devices upload to, the model registry
 * (seeded with the shipped model), the fleet store and the fleet backend. Opening is
 * idempotent (the registry seed and the history import add nothing the second time).
 *
 * AWS stages (config.ts): the SQLite label store and registry stay the loop's own, with
 * `labelsMirror` (Feature Store) and `registryMirror` (SageMaker Model Registry) beside them;
 * `groundTruth` is the labelling backend, `aws` the control-plane clients, and every S3 call
 * goes through `s3` (the configured object store). Opening makes no AWS call.
 */
export class LoopEnv {
  labels!: SqliteLabelStore;
  labeling!: Labeling;
  registry!: SqliteModelRegistry;
  fleetStore!: FleetStore;
  s3!: S3Client;
  images!: ImageSource;
  readonly aws = new AwsClients();
  /** Feature Store mirror of the label store (labelStore.backend "featurestore"). */
  labelsMirror: FeatureStoreMirror | null = null;
  /** SageMaker Model Registry mirror of the registry (registry.backend "sagemaker"). */
  registryMirror: SageMakerRegistryMirror | null = null;
  /** Ground Truth labelling backend (labeling.backend "groundtruth"). */
  groundTruth: GroundTruthBackend | null = null;
  /** Made once per loop home; AWS job names carry it (see aws/clients.ts awsJobNames). */
  installationId!: string;
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
    env.s3 = s3ClientFor(config.storage);
    env.installationId = installationId(home);
    if (config.labelStore.backend === 'featurestore') {
      const l = config.labelStore;
      const a = awsStage(config, l);
      const remote = new FeatureStoreLabelStore({
        featureGroupName: l.featureGroupName,
        offlineStoreS3Uri: l.offlineStoreS3Uri ?? `s3://${a.bucket}/loupe/featurestore/`,
        roleArn: a.roleArn,
        // The mirror only writes; reads stay on SQLite (see aws/featurestore-mirror.ts).
        athenaOutputS3Uri: `s3://${a.bucket}/loupe/athena/`,
        sagemaker: env.aws.sagemaker(a.region),
        runtime: env.aws.featureStoreRuntime(a.region),
        athena: env.aws.athena(a.region),
      });
      env.labelsMirror = new FeatureStoreMirror(env.labels, remote, { featureGroupName: l.featureGroupName, createGroup: l.createGroup });
    }
    if (config.registry.backend === 'sagemaker') {
      const r = config.registry;
      const a = awsStage(config, r);
      const remote = new SageMakerModelRegistry({
        sagemaker: env.aws.sagemaker(a.region),
        s3: env.s3,
        bucket: a.bucket,
        prefix: r.prefix,
        inferenceImage: r.inferenceImage,
        policy: config.policy,
      });
      env.registryMirror = new SageMakerRegistryMirror(env.registry, remote, home.registryDir);
    }
    const g = config.labeling.groundTruth;
    if (config.labeling.backend === 'groundtruth' && g) {
      const a = awsStage(config, g);
      env.groundTruth = new GroundTruthBackend({
        sagemaker: env.aws.sagemaker(a.region),
        s3: env.s3,
        region: a.region,
        bucket: a.bucket,
        prefix: g.prefix,
        roleArn: a.roleArn!,
        workteamArn: g.workteamArn,
        taskTimeLimitSeconds: g.taskTimeLimitSeconds,
        taskAvailabilitySeconds: g.taskAvailabilitySeconds,
        maxConcurrentTaskCount: g.maxConcurrentTaskCount,
        tags: { 'loupe:installation': env.installationId },
        log,
      });
    }
    const mappings = config.history.imagesDir ? [metalTagsMapping(config.history.imagesDir)] : [];
    env.images = new ImageSource({ s3: env.s3, mappings });
    if ((await env.registry.list({ group: config.group })).length === 0) {
      const seeded = await seedShippedModel(env.registry, { group: config.group, dir: config.seedModel });
      log.info({ model: seeded.ref, dir: config.seedModel ?? SHIPPED_MODEL_DIR }, 'registry seeded with its first champion');
    }
    if (config.history.labelsCsv) {
      const ex = config.history.exclude;
      const exclude = typeof ex === 'string' ? readImageIds(ex) : ex;
      const r = await importFeatureStoreCsv(env.labels, config.history.labelsCsv, { until: config.history.until, exclude });
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
      const region = f.region ?? this.config.aws.region ?? '';
      this.fleetBackend = new AwsGreengrassFleet({ greengrass: this.aws.greengrass(region), s3: this.s3, bucket: f.bucket, prefix: f.prefix, thingGroupArn: f.thingGroupArn, rollout: f.rollout });
    }
    return this.fleetBackend;
  }

  /** The loupe.Model recipe new versions are built from: configured, or what the fleet backend says. */
  async baseRecipe(): Promise<Record<string, unknown>> {
    const configured = this.config.fleet?.baseRecipe;
    if (configured) return readRecipeFile(configured);
    return this.fleet.baseRecipe('loupe.Model');
  }

  /** Prefix of this installation's AWS job names (aws.namePrefix, or `loupe-<installation id>`). */
  get awsNamePrefix(): string {
    return this.config.aws.namePrefix ?? `loupe-${this.installationId}`;
  }

  /** Mirror label records appended since the last sync to Feature Store (no-op on SQLite alone). */
  async syncLabels(log: Logger = this.log): Promise<{ put: number; watermark: number } | null> {
    return this.labelsMirror ? this.labelsMirror.sync(log) : null;
  }

  async close(): Promise<void> {
    if (this.fleetBackend && 'close' in this.fleetBackend) await (this.fleetBackend as LocalNucleusFleet).close();
    this.fleetStore?.close();
    this.registryMirror?.close();
    this.registry?.close();
    await this.labels?.close();
    this.s3?.destroy();
    this.aws.destroy();
  }
}

/** A random id made the first time a loop home is used (kept in loop.db), so AWS names never collide across homes. */
export function installationId(home: LoopHome): string {
  const store = new LoopStore(home.loopDb);
  try {
    store.db.prepare("INSERT OR IGNORE INTO kv (k, v) VALUES ('installation.id', ?)").run(JSON.stringify(randomBytes(4).toString('hex')));
    return store.get<string>('installation.id')!;
  } finally {
    store.close();
  }
}
