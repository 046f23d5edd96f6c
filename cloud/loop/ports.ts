import type { S3Client } from '@aws-sdk/client-s3';
import type { Logger } from 'pino';
import type { EvaluateFn } from '../gate/gate.js';
import type { ImageSource } from '../labeling/images.js';
import type { Labeling } from '../labeling/jobs.js';
import type { SqliteLabelStore } from '../labelstore/index.js';
import type { DeploymentState, FleetBackend } from '../publish/backend.js';
import type { FleetStore } from '../publish/fleet-store.js';
import type { SqliteModelRegistry } from '../registry/sqlite-registry.js';
import type { ModelVersion } from '../registry/types.js';
import type { TrainOptions, TrainResult } from '../training/options.js';
import type { LoopConfig } from './config.js';
import type { StepOutcome } from './runner.js';

/**
 * The loop's ports: what the steps need from the outside world, one interface per concern,
 * each with an embedded and an AWS adapter (adapters/). `buildPorts` (adapters/index.ts) picks
 * the adapters ONCE from the validated configuration; the steps never look at which backend
 * they got. A new backend is one adapter file and its entry in the adapter table (or, in a
 * test, an override passed to `buildPorts`).
 *
 * The label store and the model registry are SQLite on every configuration: the loop needs
 * their transactions and point-in-time reads, which Feature Store and the SageMaker Model
 * Registry cannot give (cloud/loop/README.md says why). Their AWS backends are therefore
 * MIRRORS, named so here: one-way copies the loop pushes to at its commit points, never read.
 */

/** What every adapter call may use: the step's log, cancellation, a TTY for progress bars. */
export interface Hooks {
  log: Logger;
  signal?: AbortSignal;
  /** A second interrupt: stop at once (the local trainer is killed rather than stopped cleanly). */
  forceSignal?: AbortSignal;
  progressStream?: NodeJS.WriteStream;
}

/** Where devices upload (the ingest step lists it) and where labelling reads images from. */
export interface ObjectStoragePort {
  readonly backend: 'embedded' | 's3';
  readonly s3: S3Client;
  readonly bucket: string;
  readonly prefix: string;
  /** Images by `source_ref` (s3:// keys through `s3`, history files through the configured folder). */
  readonly images: ImageSource;
}

/** A one-way copy of the label store's records somewhere else (Feature Store). */
export interface LabelStoreMirror {
  /** Push what was appended since the last sync; idempotent. */
  sync(log: Logger): Promise<{ put: number; watermark: number }>;
  /** How far the mirror got (the label store's append sequence it has pushed up to). */
  watermark(): number;
}

export interface LabelStorePort {
  /** The loop's label store (always SQLite: see above). */
  readonly store: SqliteLabelStore;
  readonly mirror: LabelStoreMirror | null;
}

/** How a labelling job's images get labelled and verified: simulated workers, people in the UI, Ground Truth. */
export interface LabelingPort {
  readonly backend: string;
  /** The labelling jobs (kept in the label store). */
  readonly jobs: Labeling;
  /** The job a run labels into (Ground Truth names must be unique in the AWS account). */
  jobName(runId: number): string;
  /** Label the job's items (the job exists and has items). `mirror` pushes new label records to the label store's mirror. */
  label(job: string, h: LabelingHooks): Promise<StepOutcome<LabelResult>>;
  /** Verify the job's consolidated labels. */
  verify(job: string, h: LabelingHooks): Promise<StepOutcome<VerifyResult>>;
}

export interface LabelingHooks extends Hooks {
  /** Mirror label records appended so far (`{featureStore}` for the step's output, `{}` without a mirror). */
  mirror(): Promise<{ featureStore?: { put: number; watermark: number } }>;
}

export interface LabelResult extends Record<string, unknown> {
  job: string;
  items: number;
}

export interface VerifyResult extends Record<string, unknown> {
  job: string;
  approved: number;
  rejected: number;
}

/**
 * Where training runs: this machine's venv, a SageMaker training job. Used by the loop's train
 * step and by `loupe train` (cli/commands/train.ts), each building its adapter from its settings.
 */
export interface TrainingPort {
  readonly backend: 'local' | 'sagemaker';
  /**
   * Train into `dir` (warm start from `options.base`). The loop's adapters are idempotent for the
   * run (`runId`): they find what an earlier attempt of the same run left (a finished folder, a
   * job named after the run). `loupe train`'s start afresh and get no run id.
   */
  train(
    req: { runId?: number; dir: string; options: TrainOptions },
    h: Hooks,
  ): Promise<{ result: TrainResult; extra?: Record<string, unknown> }>;
}

/** A one-way copy of the registry's versions and statuses somewhere else (SageMaker Model Registry). */
export interface RegistryMirror {
  sync(group: string, log: Logger): Promise<{ localRef: string; ref: string | null; arn: string | null; status: string }[]>;
  /** An approval made on the mirror's side (SageMaker Model Registry) brought into the loop's registry; mirrors that take no approvals lack it. */
  adoptApproval?(arn: string, by: string): Promise<ModelVersion>;
  close(): void;
}

export interface RegistryPort {
  /** The loop's registry (always SQLite: see above). */
  readonly registry: SqliteModelRegistry;
  readonly mirror: RegistryMirror | null;
  /** The approved version the loop starts from; LOOP_NO_CHAMPION when there is none. */
  champion(group: string): Promise<ModelVersion>;
}

/** The devices: component versions, deployments, what devices run (local nucleus, Greengrass v2). */
export interface FleetPort {
  /** The adapter's name (`local`, `aws`, or a new backend's). */
  readonly backend: string;
  readonly fleet: FleetBackend;
  /** Intent rows that make publishing and deploying safe to repeat. */
  readonly store: FleetStore;
  /** The loupe.Model recipe new versions are built from: configured, or what the fleet runs. */
  baseRecipe(): Promise<Record<string, unknown>>;
  /** The deployment's state as the deploy step records it (locally: waited for until it settles; on AWS: as of now). */
  deploymentOutcome(deploymentId: string, timeoutMs: number): Promise<DeploymentState>;
  /** How often confirm asks the control plane what devices run, without telemetry. */
  readonly confirmPollMs: number;
  close(): Promise<void>;
}

/** Everything a step may use besides its typed input. */
export interface LoopPorts {
  storage: ObjectStoragePort;
  labels: LabelStorePort;
  labeling: LabelingPort;
  training: TrainingPort;
  registry: RegistryPort;
  /** Opened on first use (LOOP_NO_FLEET when the configuration has no fleet). */
  readonly fleet: FleetPort;
  /** Scores a model on a data set split (loupe's evaluator on this machine). */
  evaluate: EvaluateFn;
  /** Loop-home files the steps keep state in. */
  paths: { ingestState: string; snapshotsDir: string };
}

/** The ports plus the step's hooks: the second argument of every step. */
export type StepPorts = LoopPorts & Hooks;

/** The configuration a port factory gets. */
export type PortConfig = LoopConfig;
