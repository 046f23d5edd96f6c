import { randomBytes } from 'node:crypto';
import type { S3Client } from '@aws-sdk/client-s3';
import type { Logger } from 'pino';
// Not labelstore/index.js: it also exports the Feature Store store, which loads three AWS SDK clients.
import { openSqliteLabelStore as openLabelStore, type SqliteLabelStore } from '../labelstore/sqlite.js';
import { importFeatureStoreCsv } from '../labelstore/csv.js';
import type { Labeling } from '../labeling/jobs.js';
import type { ImageSource } from '../labeling/images.js';
import type { FleetBackend } from '../publish/backend.js';
import type { FleetStore } from '../publish/fleet-store.js';
import { openRegistry, type SqliteModelRegistry } from '../registry/sqlite-registry.js';
import { SHIPPED_MODEL_DIR, seedShippedModel } from '../registry/seed.js';
import { readImageIds } from '../dataset/id-list.js';
import { loupeEvaluator } from '../gate/evaluator.js';
import type { EvaluateFn } from '../gate/gate.js';
import { AwsClients } from './aws/clients.js';
import { buildPorts, objectStorage, type BuiltPorts, type PortOverrides } from './adapters/index.js';
import type { LoopConfig, LoopHome } from './config.js';
import type { LabelStoreMirror, LoopPorts, RegistryMirror } from './ports.js';
import { LoopStore } from './store.js';

/**
 * The parts one loop run works with, opened from the configuration and the loop home and
 * closed together: the loop's ports (ports.ts), built once by `buildPorts` from the validated
 * configuration, plus the SQLite label store and registry they sit on (the registry seeded
 * with the first champion, the label history imported). Opening is idempotent (the registry
 * seed and the history import add nothing the second time) and makes no AWS call.
 *
 * The accessors below (`labels`, `registry`, `fleet`, ...) are for the CLI's fleet and loop
 * commands, which work on the same stores outside a run; steps get `ports` only.
 */
export interface LoopEnvOptions {
  evaluate?: EvaluateFn;
  /** Adapters of the caller's own behind some ports (tests; a new backend before it is in the table). */
  overrides?: PortOverrides;
}

export class LoopEnv {
  readonly aws = new AwsClients();
  /** Made once per loop home; AWS job names carry it (see aws/clients.ts awsJobNames). */
  installationId!: string;
  private built!: BuiltPorts;
  private labelStore!: SqliteLabelStore;
  private sqliteRegistry!: SqliteModelRegistry;

  private constructor(
    readonly config: LoopConfig,
    readonly home: LoopHome,
    readonly log: Logger,
  ) {}

  static async open(config: LoopConfig, home: LoopHome, log: Logger, o: LoopEnvOptions = {}): Promise<LoopEnv> {
    const env = new LoopEnv(config, home, log);
    env.labelStore = openLabelStore(home.labelsDb);
    env.sqliteRegistry = openRegistry(home.registryDir, config.policy);
    env.installationId = installationId(home);
    env.built = await buildPorts(
      {
        config,
        home,
        log,
        aws: env.aws,
        storage: objectStorage(config),
        labelStore: env.labelStore,
        registry: env.sqliteRegistry,
        evaluate: o.evaluate ?? loupeEvaluator,
        installationId: env.installationId,
        awsNamePrefix: config.aws.namePrefix ?? `loupe-${env.installationId}`,
      },
      o.overrides,
    );
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

  /** What the steps get: one adapter per port, chosen from the configuration when the env opened. */
  get ports(): LoopPorts {
    return this.built;
  }

  get labels(): SqliteLabelStore {
    return this.labelStore;
  }
  get labeling(): Labeling {
    return this.built.labeling.jobs;
  }
  get registry(): SqliteModelRegistry {
    return this.sqliteRegistry;
  }
  get s3(): S3Client {
    return this.built.storage.s3;
  }
  get images(): ImageSource {
    return this.built.storage.images;
  }
  /** Feature Store mirror of the label store (labelStore.backend "featurestore"). */
  get labelsMirror(): LabelStoreMirror | null {
    return this.built.labels.mirror;
  }
  /** SageMaker Model Registry mirror of the registry (registry.backend "sagemaker"). */
  get registryMirror(): RegistryMirror | null {
    return this.built.registry.mirror;
  }
  /** Opened on first use: LOOP_NO_FLEET without a `fleet` section. */
  get fleet(): FleetBackend {
    return this.built.fleet.fleet;
  }
  get fleetStore(): FleetStore {
    return this.built.fleetStore;
  }

  /** The loupe.Model recipe new versions are built from: configured, or what the fleet backend says. */
  async baseRecipe(): Promise<Record<string, unknown>> {
    return this.built.fleet.baseRecipe();
  }

  /** Prefix of this installation's AWS job names (aws.namePrefix, or `loupe-<installation id>`). */
  get awsNamePrefix(): string {
    return this.config.aws.namePrefix ?? `loupe-${this.installationId}`;
  }

  /** Mirror label records appended since the last sync to Feature Store (no-op on SQLite alone). */
  async syncLabels(log: Logger = this.log): Promise<{ put: number; watermark: number } | null> {
    return this.built.labels.mirror ? this.built.labels.mirror.sync(log) : null;
  }

  async close(): Promise<void> {
    await this.built?.closeAdapters();
    this.sqliteRegistry?.close();
    await this.labelStore?.close();
    this.built?.storage.s3.destroy();
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
