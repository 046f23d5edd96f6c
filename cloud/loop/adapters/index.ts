import type { S3Client } from '@aws-sdk/client-s3';
import type { Logger } from 'pino';
import { LoupeError } from '../../../lib/errors.js';
import type { EvaluateFn } from '../../gate/gate.js';
import type { GroundTruthBackend } from '../../labeling/groundtruth.js';
import { ImageSource, metalTagsMapping } from '../../labeling/images.js';
import { Labeling } from '../../labeling/jobs.js';
import type { SqliteLabelStore } from '../../labelstore/sqlite.js';
import { FleetStore } from '../../publish/fleet-store.js';
import type { SqliteModelRegistry } from '../../registry/sqlite-registry.js';
import { type AwsClients, awsJobNames, awsStage, s3ClientFor } from '../aws/clients.js';
import type { LoopConfig, LoopHome } from '../config.js';
import type {
  FleetPort,
  LabelStoreMirror,
  LabelStorePort,
  LabelingPort,
  LoopPorts,
  ObjectStoragePort,
  RegistryMirror,
  RegistryPort,
  TrainingPort,
} from '../ports.js';
import { localFleet } from './fleet-local.js';
import { simulatedLabeling } from './labeling-simulated.js';
import { uiLabeling } from './labeling-ui.js';
import { localTraining } from './training-local.js';

/**
 * Builds the loop's ports ONCE from the validated configuration: each port's adapter is looked up
 * in the table below by the backend the configuration names. Steps only see the ports. Adding a
 * backend: write its adapter file, add its row here (and its key to config.ts). Tests pass
 * `overrides` to put an adapter of their own behind a port.
 *
 * The AWS adapters (and the AWS SDK clients they use: SageMaker alone costs ~0.3 s to import) are
 * imported when their row is chosen, so a loop or fleet on the embedded backends, and every CLI
 * start, never loads them.
 */
export interface PortContext {
  config: LoopConfig;
  home: LoopHome;
  log: Logger;
  aws: AwsClients;
  storage: ObjectStoragePort;
  labels: LabelStorePort;
  jobs: Labeling;
  registry: SqliteModelRegistry;
  fleetStore: FleetStore;
  /** Prefix of this installation's AWS job names. */
  awsNamePrefix: string;
  installationId: string;
}

type Factory<P> = (c: PortContext) => P | Promise<P>;

const TRAINING: Record<LoopConfig['train']['backend'], Factory<TrainingPort>> = {
  local: (c) => localTraining({ device: c.config.train.device, resumeRun: true }),
  sagemaker: async (c) => {
    const sm = c.config.train.sagemaker!;
    const a = awsStage(c.config, sm);
    const { sageMakerTraining } = await import('./training-sagemaker.js');
    return sageMakerTraining({
      config: {
        bucket: a.bucket,
        prefix: sm.prefix.replace(/\/$/, ''),
        roleArn: a.roleArn!,
        image: sm.image,
        instanceType: sm.instanceType,
        instanceCount: sm.instanceCount,
        volumeSizeGB: sm.volumeSizeGB,
        maxRuntimeSeconds: sm.maxRuntimeSeconds,
        pollSeconds: sm.pollSeconds,
      },
      clients: { s3: c.storage.s3, sagemaker: await c.aws.sagemaker(a.region) },
      resumeRun: { jobName: (runId, n) => awsJobNames(c.awsNamePrefix, runId).training(n), maxJobs: sm.maxJobs },
    });
  },
};

const LABELING: Record<LoopConfig['labeling']['backend'], Factory<LabelingPort>> = {
  simulated: (c) => simulatedLabeling(c.config, c.jobs, c.labels, c.storage),
  ui: (c) => uiLabeling(c.config, c.jobs),
  groundtruth: async (c) => {
    const { groundTruthLabeling } = await import('./labeling-groundtruth.js');
    return groundTruthLabeling(c.config, c.jobs, await groundTruthBackend(c), c.awsNamePrefix);
  },
};

/**
 * Fleet adapters: what one needs (its module, its clients) is loaded when the env opens; the
 * port itself is built on first use (`fleet` getter: LOOP_NO_FLEET without a fleet section).
 */
const FLEET: Record<NonNullable<LoopConfig['fleet']>['backend'], (c: PortContext) => Promise<(c: PortContext) => FleetPort>> = {
  local: async () => (c) => {
    const f = c.config.fleet;
    if (f?.backend !== 'local') throw new Error('unreachable: fleet table looked up by backend');
    return localFleet(f, c.home, c.fleetStore);
  },
  aws: async (c) => {
    const f = c.config.fleet;
    if (f?.backend !== 'aws') throw new Error('unreachable: fleet table looked up by backend');
    const { awsFleet } = await import('./fleet-aws.js');
    const greengrass = await c.aws.greengrass(f.region ?? c.config.aws.region ?? '');
    return (c) => awsFleet(f, greengrass, c.storage.s3, c.fleetStore);
  },
};

/** Label store mirrors by `labelStore.backend` (sqlite: none). */
const LABELS_MIRROR: Record<
  LoopConfig['labelStore']['backend'],
  (c: Omit<PortContext, 'labels' | 'jobs'>, store: SqliteLabelStore) => LabelStoreMirror | null | Promise<LabelStoreMirror | null>
> = {
  sqlite: () => null,
  featurestore: async (c, store) => {
    const l = c.config.labelStore;
    if (l.backend !== 'featurestore') throw new Error('unreachable: label store table looked up by backend');
    const a = awsStage(c.config, l);
    const [{ FeatureStoreLabelStore }, { FeatureStoreMirror }] = await Promise.all([
      import('../../labelstore/featurestore.js'),
      import('../aws/featurestore-mirror.js'),
    ]);
    const remote = new FeatureStoreLabelStore({
      featureGroupName: l.featureGroupName,
      offlineStoreS3Uri: l.offlineStoreS3Uri ?? `s3://${a.bucket}/loupe/featurestore/`,
      roleArn: a.roleArn,
      // The mirror only writes; reads stay on SQLite (see aws/featurestore-mirror.ts).
      athenaOutputS3Uri: `s3://${a.bucket}/loupe/athena/`,
      sagemaker: await c.aws.sagemaker(a.region),
      runtime: await c.aws.featureStoreRuntime(a.region),
      athena: await c.aws.athena(a.region),
    });
    return new FeatureStoreMirror(store, remote, { featureGroupName: l.featureGroupName, createGroup: l.createGroup });
  },
};

/** Registry mirrors by `registry.backend` (sqlite: none). */
const REGISTRY_MIRROR: Record<LoopConfig['registry']['backend'], Factory<RegistryMirror | null>> = {
  sqlite: () => null,
  sagemaker: async (c) => {
    const r = c.config.registry;
    if (r.backend !== 'sagemaker') throw new Error('unreachable: registry table looked up by backend');
    const a = awsStage(c.config, r);
    const [{ SageMakerModelRegistry }, { SageMakerRegistryMirror }] = await Promise.all([
      import('../../registry/sagemaker-registry.js'),
      import('../aws/registry-mirror.js'),
    ]);
    const remote = new SageMakerModelRegistry({
      sagemaker: await c.aws.sagemaker(a.region),
      s3: c.storage.s3,
      bucket: a.bucket,
      prefix: r.prefix,
      inferenceImage: r.inferenceImage,
      policy: c.config.policy,
    });
    return new SageMakerRegistryMirror(c.registry, remote, c.home.registryDir);
  },
};

async function groundTruthBackend(c: PortContext): Promise<GroundTruthBackend> {
  const g = c.config.labeling.groundTruth;
  if (!g)
    throw new LoupeError('LOOP_CONFIG', 'labeling.backend is "groundtruth" but labeling.groundTruth is missing', { input: c.home.config });
  const a = awsStage(c.config, g);
  const { GroundTruthBackend } = await import('../../labeling/groundtruth.js');
  return new GroundTruthBackend({
    sagemaker: await c.aws.sagemaker(a.region),
    s3: c.storage.s3,
    region: a.region,
    bucket: a.bucket,
    prefix: g.prefix,
    roleArn: a.roleArn!,
    workteamArn: g.workteamArn,
    taskTimeLimitSeconds: g.taskTimeLimitSeconds,
    taskAvailabilitySeconds: g.taskAvailabilitySeconds,
    maxConcurrentTaskCount: g.maxConcurrentTaskCount,
    tags: { 'loupe:installation': c.installationId },
    log: c.log,
  });
}

/** An adapter of a test's own behind a port (the fleet's is built on first use, like the table's). */
export interface PortOverrides {
  training?: Factory<TrainingPort>;
  labeling?: Factory<LabelingPort>;
  fleet?: (c: PortContext) => FleetPort;
  labelsMirror?: (c: Omit<PortContext, 'labels' | 'jobs'>, store: SqliteLabelStore) => LabelStoreMirror | null;
  registryMirror?: Factory<RegistryMirror | null>;
}

export interface BuiltPorts extends LoopPorts {
  /** The fleet store, open also when no fleet is configured (the fleet port hands it to steps). */
  fleetStore: FleetStore;
  /** Close what the adapters opened (not the SQLite stores, which the caller owns). */
  closeAdapters(): Promise<void>;
}

export function objectStorage(config: LoopConfig): ObjectStoragePort {
  const s3: S3Client = s3ClientFor(config.storage);
  const mappings = config.history.imagesDir ? [metalTagsMapping(config.history.imagesDir)] : [];
  return {
    backend: config.storage.backend,
    s3,
    bucket: config.storage.bucket,
    prefix: config.storage.prefix,
    images: new ImageSource({ s3, mappings }),
  };
}

export async function buildPorts(
  base: Omit<PortContext, 'labels' | 'jobs' | 'fleetStore' | 'storage'> & {
    labelStore: SqliteLabelStore;
    storage: ObjectStoragePort;
    evaluate: EvaluateFn;
  },
  overrides: PortOverrides = {},
): Promise<BuiltPorts> {
  const { config, home } = base;
  const fleetStore = new FleetStore(home.fleetDb);
  const pre = { ...base, fleetStore };
  const labels: LabelStorePort = {
    store: base.labelStore,
    mirror: await (overrides.labelsMirror ?? LABELS_MIRROR[config.labelStore.backend])(pre, base.labelStore),
  };
  const jobs = Labeling.open(base.labelStore);
  const c: PortContext = { ...pre, labels, jobs };
  const registryMirror = await (overrides.registryMirror ?? REGISTRY_MIRROR[config.registry.backend])(c);
  const registry: RegistryPort = {
    registry: base.registry,
    mirror: registryMirror,
    async champion(group) {
      const v = await base.registry.champion(group);
      if (!v) throw new LoupeError('LOOP_NO_CHAMPION', 'the registry has no approved model to start from', { input: group });
      return v;
    },
  };
  const training = await (overrides.training ?? TRAINING[config.train.backend])(c);
  const labeling = await (overrides.labeling ?? LABELING[config.labeling.backend])(c);
  const makeFleet = overrides.fleet ?? (config.fleet ? await FLEET[config.fleet.backend](c) : null);
  let fleet: FleetPort | null = null;
  return {
    storage: base.storage,
    labels,
    labeling,
    training,
    registry,
    get fleet(): FleetPort {
      if (fleet) return fleet;
      if (!config.fleet || !makeFleet)
        throw new LoupeError('LOOP_NO_FLEET', 'no fleet configured (the `fleet` section of the loop configuration)', {
          input: home.config,
        });
      fleet = makeFleet(c);
      return fleet;
    },
    fleetStore,
    evaluate: base.evaluate,
    paths: { ingestState: home.ingestState, snapshotsDir: home.snapshotsDir },
    async closeAdapters() {
      await fleet?.close();
      fleetStore.close();
      registryMirror?.close();
    },
  };
}
