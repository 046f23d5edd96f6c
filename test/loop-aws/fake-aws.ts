/**
 * A stand-in for the AWS control plane the loop talks to, for tests that kill the loop process.
 *
 * Two halves, sharing one folder:
 *  - `installFakeAws(dir)` runs inside the loop process: aws-sdk-client-mock answers every
 *    SageMaker, Feature Store runtime, Greengrass v2 and Athena call from the folder's state,
 *    the way the services answer (a missing training job is ValidationException "Requested
 *    resource not found.", a duplicate job name ResourceInUse, an existing component version
 *    ConflictException), and appends each request, exactly as the SDK client was given it, to
 *    calls.jsonl. `FAKE_AWS_CRASH=<Command>#<n>` SIGKILLs the process right after the n-th such
 *    call (counted over all processes) was accepted and recorded: AWS has it, the loop never
 *    sees the answer.
 *  - `FakeAwsWorkers` runs in the test process and plays the part of AWS's own machinery, which
 *    outlives the killed loop: a training job runs the real train.py the way SageMaker runs the
 *    training image (channels from the real S3 store into an /opt/ml folder, model.tar.gz back to
 *    S3), Ground Truth jobs are done by simulated workers who box the reference's labels and
 *    write output manifests (real GT format) to S3, and devices take a deployment a moment after
 *    it is created.
 * Only the control plane is simulated; every S3 call of both halves goes to the real embedded
 * object store.
 */
import { spawn } from 'node:child_process';
import { appendFileSync, createWriteStream, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import {
  CreateFeatureGroupCommand,
  CreateLabelingJobCommand,
  CreateModelPackageCommand,
  CreateModelPackageGroupCommand,
  CreateTrainingJobCommand,
  DescribeFeatureGroupCommand,
  DescribeLabelingJobCommand,
  DescribeModelPackageCommand,
  DescribeModelPackageGroupCommand,
  DescribeTrainingJobCommand,
  ListModelPackagesCommand,
  ResourceInUse,
  ResourceNotFound,
  SageMakerClient,
  SageMakerServiceException,
  StopTrainingJobCommand,
  UpdateModelPackageCommand,
} from '@aws-sdk/client-sagemaker';
import { PutRecordCommand, SageMakerFeatureStoreRuntimeClient } from '@aws-sdk/client-sagemaker-featurestore-runtime';
import { AthenaClient } from '@aws-sdk/client-athena';
import {
  ConflictException,
  CreateComponentVersionCommand,
  CreateDeploymentCommand,
  DescribeComponentCommand,
  GetComponentCommand,
  GetDeploymentCommand,
  GreengrassV2Client,
  ListComponentVersionsCommand,
  ListComponentsCommand,
  ListCoreDevicesCommand,
  ListDeploymentsCommand,
  ListInstalledComponentsCommand,
} from '@aws-sdk/client-greengrassv2';
import { mockClient } from 'aws-sdk-client-mock';
import { create as tarCreate } from 'tar';
import { trainScript } from '../../cloud/training/local-trainer.js';
import { offlinePythonEnv, venvPython } from '../../cloud/training/venv.js';
import type { GtBox } from '../../contracts/box.js';
import { loadSourceRecipe, renderRecipe } from '../../components/build/recipes.js';

export const ACCOUNT = '111122223333';

// ---- state on disk ----------------------------------------------------------------------------

function readJson<T>(file: string): T | undefined {
  return existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as T) : undefined;
}

/** Written whole and renamed into place: the other process never reads half a file. */
export function writeJson(file: string, value: unknown): void {
  mkdirSync(dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
  writeFileSync(tmp, JSON.stringify(value, null, 1));
  renameSync(tmp, file);
}

function list<T>(folder: string): T[] {
  if (!existsSync(folder)) return [];
  return readdirSync(folder)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((f) => JSON.parse(readFileSync(join(folder, f), 'utf8')) as T);
}

export interface TrainingJobState {
  request: Record<string, unknown>;
  arn: string;
  status: 'InProgress' | 'Completed' | 'Failed' | 'Stopping' | 'Stopped';
  secondary: string;
  artifacts?: string;
  failureReason?: string;
  billableSeconds?: number;
  createdAt: string;
}

export interface LabelingJobState {
  request: Record<string, unknown>;
  arn: string;
  status: 'InProgress' | 'Completed' | 'Failed' | 'Stopped';
  output?: string;
  counters?: Record<string, number>;
  createdAt: string;
}

interface PackageState {
  arn: string;
  group: string;
  version: number;
  input: Record<string, unknown>;
  status: string;
  approvalDescription?: string;
  props: Record<string, string>;
  createdAt: string;
  modifiedAt: string;
}

export interface DeploymentState {
  deploymentId: string;
  deploymentName: string;
  targetArn: string;
  components: Record<string, { componentVersion: string; configurationUpdate?: unknown }>;
  createdAt: string;
}

/** What the thing group looks like before the loop touches it (written by the test). */
export interface FleetSeed {
  thingGroupArn: string;
  devices: string[];
  components: { name: string; version: string; recipe: Record<string, unknown> }[];
  deployment: DeploymentState;
}

/**
 * The thing group as loupe's suite leaves it: loupe.Model 1.0.0 (the shipped model, its
 * artefacts under `artefacts`) beside loupe.Camera, loupe.Inference and loupe.Uploader 1.0.0.
 */
export function suiteFleet(o: {
  thingGroupArn: string;
  devices: string[];
  artefacts: string;
  modelSha256: string;
  inference?: { configurationUpdate: { merge: string } };
}): FleetSeed {
  const recipe = JSON.parse(
    JSON.stringify(
      renderRecipe(loadSourceRecipe('loupe.Model'), { version: '1.0.0', model: { name: 'metal-tags', sha256: o.modelSha256 } }),
    ).replaceAll('s3://BUCKET_NAME/COMPONENT_NAME/COMPONENT_VERSION/', o.artefacts),
  ) as Record<string, unknown>;
  return {
    thingGroupArn: o.thingGroupArn,
    devices: o.devices,
    components: [{ name: 'loupe.Model', version: '1.0.0', recipe }],
    deployment: {
      deploymentId: 'd-suite',
      deploymentName: 'loupe-suite',
      targetArn: o.thingGroupArn,
      createdAt: new Date(Date.now() - 86_400_000).toISOString(),
      components: {
        'loupe.Camera': { componentVersion: '1.0.0' },
        'loupe.Inference': { componentVersion: '1.0.0', ...(o.inference ?? {}) },
        'loupe.Model': { componentVersion: '1.0.0' },
        'loupe.Uploader': { componentVersion: '1.0.0' },
      },
    },
  };
}

export function seedFleet(dir: string, seed: FleetSeed): void {
  for (const c of seed.components) writeJson(join(dir, 'greengrass', 'components', c.name, `${c.version}.json`), c.recipe);
  writeJson(join(dir, 'greengrass', 'deployments', `0000-${seed.deployment.deploymentId}.json`), seed.deployment);
  writeJson(join(dir, 'greengrass', 'fleet.json'), { thingGroupArn: seed.thingGroupArn, devices: seed.devices });
}

// ---- recorded calls -------------------------------------------------------------------------

export interface RecordedCall {
  cmd: string;
  input: Record<string, unknown>;
  pid: number;
  at: string;
}

/** Requests as JSON: bytes as {$bytes: base64}, dates as {$date: iso}. */
function encode(this: unknown, key: string, value: unknown): unknown {
  const raw = (this as Record<string, unknown>)[key];
  if (raw instanceof Uint8Array) return { $bytes: Buffer.from(raw).toString('base64') };
  if (raw instanceof Date) return { $date: raw.toISOString() };
  return value;
}

export function readCalls(dir: string): RecordedCall[] {
  const file = join(dir, 'calls.jsonl');
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as RecordedCall);
}

export const bytesOf = (v: unknown): Buffer => Buffer.from((v as { $bytes: string }).$bytes, 'base64');

// ---- the control plane (inside the loop process) -----------------------------------------------

const validation = (message: string) =>
  new SageMakerServiceException({ name: 'ValidationException', $fault: 'client', message, $metadata: { httpStatusCode: 400 } });
const notFound = (message: string) => new ResourceNotFound({ message, $metadata: { httpStatusCode: 400 } });
const inUse = (message: string) => new ResourceInUse({ message, $metadata: { httpStatusCode: 400 } });

export type FakeService = 'sagemaker' | 'featurestore' | 'greengrass' | 'athena';

/**
 * `services` limits the fake to some services (default all four): a test that sends SageMaker
 * to moto's server fakes only Greengrass v2, which moto does not implement.
 */
export function installFakeAws(dir: string, opts: { region: string; crash?: string; services?: FakeService[] }): { restore(): void } {
  const { region } = opts;
  mkdirSync(dir, { recursive: true });
  const arn = (kind: string, name: string) => `arn:aws:sagemaker:${region}:${ACCOUNT}:${kind}/${name}`;
  const counts = new Map<string, number>();
  for (const c of readCalls(dir)) counts.set(c.cmd, (counts.get(c.cmd) ?? 0) + 1);
  const record = (cmd: string, input: object) => {
    appendFileSync(join(dir, 'calls.jsonl'), JSON.stringify({ cmd, input, pid: process.pid, at: new Date().toISOString() }, encode) + '\n');
    const n = (counts.get(cmd) ?? 0) + 1;
    counts.set(cmd, n);
    return n;
  };
  // The request is recorded first; a handler that throws is an answer AWS gave.
  const handle =
    <I extends object, O>(cmd: string, fn: (input: I) => O) =>
    (input: I) => {
      const n = record(cmd, input);
      const out = fn(input);
      if (opts.crash === `${cmd}#${n}`) process.kill(process.pid, 'SIGKILL');
      return out;
    };

  const want = new Set<FakeService>(opts.services ?? ['sagemaker', 'featurestore', 'greengrass', 'athena']);
  // A service left out keeps its real client (a mock of nothing: `on` registers, `send` is untouched).
  const sm = want.has('sagemaker') ? mockClient(SageMakerClient) : mockClient(new SageMakerClient({}));
  const fsr = want.has('featurestore')
    ? mockClient(SageMakerFeatureStoreRuntimeClient)
    : mockClient(new SageMakerFeatureStoreRuntimeClient({}));
  const gg = want.has('greengrass') ? mockClient(GreengrassV2Client) : mockClient(new GreengrassV2Client({}));
  const athena = want.has('athena') ? mockClient(AthenaClient) : mockClient(new AthenaClient({}));
  const unexpected = (input: unknown) => {
    throw new Error(`fake AWS: unexpected call ${JSON.stringify(input)}`);
  };
  sm.onAnyCommand().callsFake(unexpected);
  fsr.onAnyCommand().callsFake(unexpected);
  gg.onAnyCommand().callsFake(unexpected);
  athena.onAnyCommand().callsFake(unexpected);

  // SageMaker training
  const tjFile = (name: string) => join(dir, 'training', `${name}.json`);
  sm.on(CreateTrainingJobCommand).callsFake(
    handle('CreateTrainingJob', (input: { TrainingJobName?: string }) => {
      const name = input.TrainingJobName!;
      if (existsSync(tjFile(name)))
        throw inUse(
          `Training job names must be unique within an AWS account and region, and a training job with this name already exists (${arn('training-job', name)})`,
        );
      const job: TrainingJobState = {
        request: JSON.parse(JSON.stringify(input)),
        arn: arn('training-job', name),
        status: 'InProgress',
        secondary: 'Starting',
        createdAt: new Date().toISOString(),
      };
      writeJson(tjFile(name), job);
      return { TrainingJobArn: job.arn };
    }),
  );
  sm.on(DescribeTrainingJobCommand).callsFake(
    handle('DescribeTrainingJob', (input: { TrainingJobName?: string }) => {
      const job = readJson<TrainingJobState>(tjFile(input.TrainingJobName!));
      if (!job) throw validation('Requested resource not found.');
      return {
        TrainingJobName: input.TrainingJobName,
        TrainingJobArn: job.arn,
        TrainingJobStatus: job.status,
        SecondaryStatus: job.secondary,
        CreationTime: new Date(job.createdAt),
        ...(job.artifacts ? { ModelArtifacts: { S3ModelArtifacts: job.artifacts } } : {}),
        ...(job.failureReason ? { FailureReason: job.failureReason } : {}),
        ...(job.billableSeconds ? { BillableTimeInSeconds: job.billableSeconds } : {}),
      };
    }),
  );
  sm.on(StopTrainingJobCommand).callsFake(
    handle('StopTrainingJob', (input: { TrainingJobName?: string }) => {
      const job = readJson<TrainingJobState>(tjFile(input.TrainingJobName!));
      if (!job) throw validation('Requested resource not found.');
      writeJson(tjFile(input.TrainingJobName!), { ...job, status: 'Stopping' });
      return {};
    }),
  );

  // Ground Truth
  const ljFile = (name: string) => join(dir, 'labeling', `${name}.json`);
  sm.on(CreateLabelingJobCommand).callsFake(
    handle('CreateLabelingJob', (input: { LabelingJobName?: string }) => {
      const name = input.LabelingJobName!;
      if (existsSync(ljFile(name))) throw inUse(`A labeling job with name ${name} already exists`);
      const job: LabelingJobState = {
        request: JSON.parse(JSON.stringify(input)),
        arn: arn('labeling-job', name),
        status: 'InProgress',
        createdAt: new Date().toISOString(),
      };
      writeJson(ljFile(name), job);
      return { LabelingJobArn: job.arn };
    }),
  );
  sm.on(DescribeLabelingJobCommand).callsFake(
    handle('DescribeLabelingJob', (input: { LabelingJobName?: string }) => {
      const job = readJson<LabelingJobState>(ljFile(input.LabelingJobName!));
      if (!job) throw notFound(`Could not find labeling job ${input.LabelingJobName}`);
      return {
        LabelingJobName: input.LabelingJobName,
        LabelingJobArn: job.arn,
        LabelingJobStatus: job.status,
        CreationTime: new Date(job.createdAt),
        LabelCounters: job.counters ?? { TotalLabeled: 0, HumanLabeled: 0, MachineLabeled: 0, FailedNonRetryableError: 0, Unlabeled: 0 },
        ...(job.output ? { LabelingJobOutput: { OutputDatasetS3Uri: job.output } } : {}),
      };
    }),
  );

  // Feature Store
  const fgFile = (name: string) => join(dir, 'featuregroups', `${name}.json`);
  sm.on(CreateFeatureGroupCommand).callsFake(
    handle('CreateFeatureGroup', (input: { FeatureGroupName?: string }) => {
      const name = input.FeatureGroupName!;
      if (existsSync(fgFile(name))) throw inUse(`Resource Already Exists: FeatureGroup with name ${name} already exists`);
      writeJson(fgFile(name), { request: input, describes: 0 });
      return { FeatureGroupArn: arn('feature-group', name) };
    }),
  );
  sm.on(DescribeFeatureGroupCommand).callsFake(
    handle('DescribeFeatureGroup', (input: { FeatureGroupName?: string }) => {
      const name = input.FeatureGroupName!;
      const g = readJson<{ describes: number }>(fgFile(name));
      if (!g) throw notFound(`Resource Not Found: FeatureGroup with name ${name} not found`);
      writeJson(fgFile(name), { ...g, describes: g.describes + 1 });
      // Creating on the first describe after CreateFeatureGroup, Created afterwards.
      return {
        FeatureGroupName: name,
        FeatureGroupArn: arn('feature-group', name),
        FeatureGroupStatus: g.describes === 0 ? 'Creating' : 'Created',
        OfflineStoreConfig: {
          DataCatalogConfig: {
            Catalog: 'AwsDataCatalog',
            Database: 'sagemaker_featurestore',
            TableName: `${name.replace(/-/g, '_')}_1700000000`,
          },
        },
      };
    }),
  );
  fsr.on(PutRecordCommand).callsFake(handle('PutRecord', () => ({})));

  // Model Registry
  const groupFile = (g: string) => join(dir, 'packages', g, 'group.json');
  const pkgFile = (g: string, v: number) => join(dir, 'packages', g, `${String(v).padStart(4, '0')}.json`);
  const pkgs = (g: string) => list<PackageState & { arn: string }>(join(dir, 'packages', g)).filter((p) => 'version' in p);
  const pkgByArn = (a: string) => {
    const m = /model-package\/([^/]+)\/(\d+)$/.exec(a);
    return m ? readJson<PackageState>(pkgFile(m[1]!, Number(m[2]))) : undefined;
  };
  sm.on(DescribeModelPackageGroupCommand).callsFake(
    handle('DescribeModelPackageGroup', (input: { ModelPackageGroupName?: string }) => {
      const g = readJson<{ arn: string }>(groupFile(input.ModelPackageGroupName!));
      if (!g) throw validation(`ModelPackageGroup ${input.ModelPackageGroupName} does not exist.`);
      return { ModelPackageGroupName: input.ModelPackageGroupName, ModelPackageGroupArn: g.arn, ModelPackageGroupStatus: 'Completed' };
    }),
  );
  sm.on(CreateModelPackageGroupCommand).callsFake(
    handle('CreateModelPackageGroup', (input: { ModelPackageGroupName?: string }) => {
      const name = input.ModelPackageGroupName!;
      if (existsSync(groupFile(name))) throw validation(`Model Package Group already exists: ${arn('model-package-group', name)}`);
      writeJson(groupFile(name), { arn: arn('model-package-group', name), input });
      return { ModelPackageGroupArn: arn('model-package-group', name) };
    }),
  );
  // Strict on purpose: no ClientToken de-duplication here, so a second CreateModelPackage for one
  // version shows up as a second package and the test sees it.
  sm.on(CreateModelPackageCommand).callsFake(
    handle(
      'CreateModelPackage',
      (input: { ModelPackageGroupName?: string; ModelApprovalStatus?: string; CustomerMetadataProperties?: Record<string, string> }) => {
        const g = input.ModelPackageGroupName!;
        if (!existsSync(groupFile(g))) throw validation(`ModelPackageGroup ${g} does not exist.`);
        const version = pkgs(g).length + 1;
        const now = new Date().toISOString();
        const p: PackageState = {
          arn: arn('model-package', `${g}/${version}`),
          group: g,
          version,
          input: JSON.parse(JSON.stringify(input)),
          status: input.ModelApprovalStatus ?? 'PendingManualApproval',
          props: input.CustomerMetadataProperties ?? {},
          createdAt: now,
          modifiedAt: now,
        };
        writeJson(pkgFile(g, version), p);
        return { ModelPackageArn: p.arn };
      },
    ),
  );
  sm.on(DescribeModelPackageCommand).callsFake(
    handle('DescribeModelPackage', (input: { ModelPackageName?: string }) => {
      const p = pkgByArn(input.ModelPackageName!);
      if (!p) throw validation(`ModelPackage ${input.ModelPackageName} does not exist.`);
      return {
        ModelPackageGroupName: p.group,
        ModelPackageVersion: p.version,
        ModelPackageArn: p.arn,
        ModelApprovalStatus: p.status,
        ...(p.approvalDescription ? { ApprovalDescription: p.approvalDescription } : {}),
        CustomerMetadataProperties: p.props,
        CreationTime: new Date(p.createdAt),
        LastModifiedTime: new Date(p.modifiedAt),
        ModelPackageStatus: 'Completed',
      };
    }),
  );
  sm.on(ListModelPackagesCommand).callsFake(
    handle(
      'ListModelPackages',
      (input: {
        ModelPackageGroupName?: string;
        ModelApprovalStatus?: string;
        CreationTimeAfter?: Date;
        SortOrder?: string;
        MaxResults?: number;
      }) => {
        let all = pkgs(input.ModelPackageGroupName!);
        if (input.ModelApprovalStatus) all = all.filter((p) => p.status === input.ModelApprovalStatus);
        if (input.CreationTimeAfter) all = all.filter((p) => Date.parse(p.createdAt) > input.CreationTimeAfter!.getTime());
        all.sort((a, b) => a.version - b.version);
        if (input.SortOrder === 'Descending') all.reverse();
        return {
          ModelPackageSummaryList: all.slice(0, input.MaxResults ?? 100).map((p) => ({
            ModelPackageArn: p.arn,
            ModelPackageGroupName: p.group,
            ModelPackageVersion: p.version,
            ModelApprovalStatus: p.status,
            CreationTime: new Date(p.createdAt),
          })),
        };
      },
    ),
  );
  sm.on(UpdateModelPackageCommand).callsFake(
    handle(
      'UpdateModelPackage',
      (input: {
        ModelPackageArn?: string;
        ModelApprovalStatus?: string;
        ApprovalDescription?: string;
        CustomerMetadataProperties?: Record<string, string>;
      }) => {
        const p = pkgByArn(input.ModelPackageArn!);
        if (!p) throw validation(`ModelPackage ${input.ModelPackageArn} does not exist.`);
        writeJson(pkgFile(p.group, p.version), {
          ...p,
          status: input.ModelApprovalStatus ?? p.status,
          approvalDescription: input.ApprovalDescription ?? p.approvalDescription,
          props: { ...p.props, ...input.CustomerMetadataProperties },
          modifiedAt: new Date().toISOString(),
        });
        return { ModelPackageArn: p.arn };
      },
    ),
  );

  // Greengrass v2
  const ggDir = join(dir, 'greengrass');
  const fleet = () =>
    readJson<{ thingGroupArn: string; devices: string[]; failing?: string[]; failingAtOnce?: string[] }>(join(ggDir, 'fleet.json'))!;
  // Devices take a deployment a moment after it is created. A loupe.Model version listed in
  // fleet.json's `failing` breaks on every device: each rolls back (failureHandlingPolicy
  // ROLLBACK) to the deployment before, and the IoT job's abort criteria cancel the rollout,
  // which GetDeployment reports as FAILED. One listed in `failingAtOnce` is FAILED from the
  // first GetDeployment on (the first devices broke before anyone asked).
  const TAKE_MS = 1500;
  const modelVersion = (d: DeploymentState) => d.components['loupe.Model']?.componentVersion ?? '';
  const atOnce = (d: DeploymentState) => (fleet().failingAtOnce ?? []).includes(modelVersion(d));
  const failing = (d: DeploymentState) => atOnce(d) || (fleet().failing ?? []).includes(modelVersion(d));
  const taken = (d: DeploymentState) => atOnce(d) || Date.now() - Date.parse(d.createdAt) >= TAKE_MS;
  const compArn = (name: string) => `arn:aws:greengrass:${region}:${ACCOUNT}:components:${name}`;
  const componentNames = () => (existsSync(join(ggDir, 'components')) ? readdirSync(join(ggDir, 'components')).sort() : []);
  const versionsOf = (name: string) =>
    existsSync(join(ggDir, 'components', name))
      ? readdirSync(join(ggDir, 'components', name))
          .filter((f) => f.endsWith('.json'))
          .map((f) => f.slice(0, -5))
      : [];
  const deployments = () => list<DeploymentState>(join(ggDir, 'deployments'));
  gg.on(ListComponentsCommand).callsFake(
    handle('ListComponents', () => ({ components: componentNames().map((n) => ({ componentName: n, arn: compArn(n) })) })),
  );
  gg.on(ListComponentVersionsCommand).callsFake(
    handle('ListComponentVersions', (input: { arn?: string }) => {
      const name = input.arn!.split(':components:')[1]!;
      return {
        componentVersions: versionsOf(name).map((v) => ({
          componentName: name,
          componentVersion: v,
          arn: `${compArn(name)}:versions:${v}`,
        })),
      };
    }),
  );
  gg.on(GetComponentCommand).callsFake(
    handle('GetComponent', (input: { arn?: string }) => {
      const m = /:components:([^:]+):versions:(.+)$/.exec(input.arn!);
      const recipe = m ? readJson(join(ggDir, 'components', m[1]!, `${m[2]}.json`)) : undefined;
      if (!recipe) throw new Error(`fake AWS: no component ${input.arn}`);
      return { recipeOutputFormat: 'JSON', recipe: new TextEncoder().encode(JSON.stringify(recipe)) };
    }),
  );
  gg.on(CreateComponentVersionCommand).callsFake(
    handle('CreateComponentVersion', (input: { inlineRecipe?: Uint8Array }) => {
      const recipe = JSON.parse(new TextDecoder().decode(input.inlineRecipe)) as { ComponentName: string; ComponentVersion: string };
      const file = join(ggDir, 'components', recipe.ComponentName, `${recipe.ComponentVersion}.json`);
      if (existsSync(file))
        throw new ConflictException({
          message: `Component ${recipe.ComponentName} version ${recipe.ComponentVersion} already exists`,
          $metadata: { httpStatusCode: 409 },
          resourceId: recipe.ComponentName,
          resourceType: 'COMPONENT_VERSION',
        });
      writeJson(file, recipe);
      return {
        arn: `${compArn(recipe.ComponentName)}:versions:${recipe.ComponentVersion}`,
        componentName: recipe.ComponentName,
        componentVersion: recipe.ComponentVersion,
        status: { componentState: 'DEPLOYABLE', message: 'NONE' },
      };
    }),
  );
  gg.on(DescribeComponentCommand).callsFake(
    handle('DescribeComponent', (input: { arn?: string }) => {
      const m = /:components:([^:]+):versions:(.+)$/.exec(input.arn!);
      if (!m || !existsSync(join(ggDir, 'components', m[1]!, `${m[2]}.json`))) throw new Error(`fake AWS: no component ${input.arn}`);
      return { arn: input.arn, componentName: m[1], componentVersion: m[2], status: { componentState: 'DEPLOYABLE', message: 'NONE' } };
    }),
  );
  gg.on(ListDeploymentsCommand).callsFake(
    handle('ListDeployments', (input: { targetArn?: string }) => {
      const latest = deployments()
        .filter((d) => d.targetArn === input.targetArn)
        .at(-1);
      return {
        deployments: latest
          ? [
              {
                deploymentId: latest.deploymentId,
                deploymentName: latest.deploymentName,
                targetArn: latest.targetArn,
                isLatestForTarget: true,
                deploymentStatus: 'ACTIVE',
              },
            ]
          : [],
      };
    }),
  );
  gg.on(GetDeploymentCommand).callsFake(
    handle('GetDeployment', (input: { deploymentId?: string }) => {
      const d = deployments().find((x) => x.deploymentId === input.deploymentId);
      if (!d) throw new Error(`fake AWS: no deployment ${input.deploymentId}`);
      return {
        deploymentId: d.deploymentId,
        deploymentName: d.deploymentName,
        targetArn: d.targetArn,
        components: d.components,
        deploymentStatus: failing(d) && taken(d) ? 'FAILED' : 'ACTIVE',
        iotJobId: `job-${d.deploymentId}`,
        isLatestForTarget: true,
      };
    }),
  );
  gg.on(CreateDeploymentCommand).callsFake(
    handle('CreateDeployment', (input: { targetArn?: string; deploymentName?: string; components?: DeploymentState['components'] }) => {
      const n = deployments().length;
      const id = `d-${String(n).padStart(4, '0')}-${Math.random().toString(16).slice(2, 10)}`;
      const d: DeploymentState = {
        deploymentId: id,
        deploymentName: input.deploymentName!,
        targetArn: input.targetArn!,
        components: JSON.parse(JSON.stringify(input.components)),
        createdAt: new Date().toISOString(),
      };
      writeJson(join(ggDir, 'deployments', `${String(n).padStart(4, '0')}-${id}.json`), d);
      return { deploymentId: id, iotJobId: `job-${id}`, iotJobArn: `arn:aws:iot:${region}:${ACCOUNT}:job/job-${id}` };
    }),
  );
  gg.on(ListCoreDevicesCommand).callsFake(
    handle('ListCoreDevices', (input: { thingGroupArn?: string }) => {
      const f = fleet();
      return {
        coreDevices: input.thingGroupArn === f.thingGroupArn ? f.devices.map((t) => ({ coreDeviceThingName: t, status: 'HEALTHY' })) : [],
      };
    }),
  );
  gg.on(ListInstalledComponentsCommand).callsFake(
    handle('ListInstalledComponents', () => {
      const all = deployments();
      const running = all.filter((d) => taken(d) && !failing(d)).at(-1) ?? all[0]!;
      return {
        installedComponents: Object.entries(running.components).map(([componentName, c]) => ({
          componentName,
          componentVersion: c.componentVersion,
          lifecycleState: 'RUNNING',
          isRoot: true,
        })),
      };
    }),
  );

  return {
    restore() {
      sm.restore();
      fsr.restore();
      gg.restore();
      athena.restore();
    },
  };
}

// ---- AWS's own machinery (in the test process) -----------------------------------------------------

export interface WorkerOptions {
  dir: string;
  s3: S3Client;
  /** The reference boxes of an uploaded image (what a careful worker draws). */
  truth: (sourceRef: string) => Promise<{ width: number; height: number; boxes: GtBox[] }>;
  classes: string[];
  /** Verification: images whose labels the verifier rejects, with the comment written. */
  rejectComment?: (sourceRef: string) => string | undefined;
}

const s3Parts = (uri: string) => {
  const m = /^s3:\/\/([^/]+)\/(.*)$/.exec(uri);
  if (!m) throw new Error(`not an s3 URI: ${uri}`);
  return { bucket: m[1]!, key: m[2]! };
};

export class FakeAwsWorkers {
  private timer: NodeJS.Timeout | undefined;
  private readonly busy = new Set<string>();
  private readonly done = new Set<string>();
  private readonly errors: Error[] = [];
  /** Ground Truth jobs whose workers may finish (all, once `releaseLabeling()` was called). */
  private labelingOpen = false;
  readonly containerLogs = new Map<string, string>();

  constructor(private readonly o: WorkerOptions) {}

  start(): void {
    this.timer = setInterval(() => void this.tick().catch((e: Error) => this.errors.push(e)), 250);
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    for (let i = 0; i < 600 && this.busy.size > 0; i++) await new Promise((r) => setTimeout(r, 100));
  }

  /** Until this is called, Ground Truth jobs stay InProgress (people have not got to them). */
  releaseLabeling(): void {
    this.labelingOpen = true;
  }

  failures(): Error[] {
    return this.errors;
  }

  private async tick(): Promise<void> {
    for (const file of existsSync(join(this.o.dir, 'training')) ? await readdir(join(this.o.dir, 'training')) : []) {
      if (!file.endsWith('.json') || this.busy.has(file) || this.done.has(file)) continue;
      const job = readJson<TrainingJobState>(join(this.o.dir, 'training', file))!;
      if (job.status !== 'InProgress') continue;
      this.busy.add(file);
      void this.runTraining(file, job)
        .catch((e: Error) => this.errors.push(e))
        .finally(() => {
          this.busy.delete(file);
          this.done.add(file);
        });
    }
    if (!this.labelingOpen) return;
    for (const file of existsSync(join(this.o.dir, 'labeling')) ? await readdir(join(this.o.dir, 'labeling')) : []) {
      if (!file.endsWith('.json') || this.busy.has(file) || this.done.has(file)) continue;
      const job = readJson<LabelingJobState>(join(this.o.dir, 'labeling', file))!;
      if (job.status !== 'InProgress') continue;
      this.busy.add(file);
      void this.runLabeling(file, job)
        .catch((e: Error) => this.errors.push(e))
        .finally(() => {
          this.busy.delete(file);
          this.done.add(file);
        });
    }
  }

  private async getText(uri: string): Promise<string> {
    const { bucket, key } = s3Parts(uri);
    const r = await this.o.s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    return r.Body!.transformToString('utf8');
  }

  /** SageMaker's part: channels → /opt/ml, run the image's `train`, /opt/ml/model → model.tar.gz. */
  private async runTraining(file: string, job: TrainingJobState): Promise<void> {
    const path = join(this.o.dir, 'training', file);
    const input = job.request as {
      TrainingJobName: string;
      HyperParameters: Record<string, string>;
      InputDataConfig: { ChannelName: string; DataSource: { S3DataSource: { S3Uri: string } } }[];
      OutputDataConfig: { S3OutputPath: string };
    };
    const update = (patch: Partial<TrainingJobState>) => writeJson(path, { ...readJson<TrainingJobState>(path)!, ...patch });
    const root = join(this.o.dir, 'containers', input.TrainingJobName);
    update({ secondary: 'Downloading' });
    for (const ch of input.InputDataConfig) {
      const { bucket, key: prefix } = s3Parts(ch.DataSource.S3DataSource.S3Uri);
      let token: string | undefined;
      do {
        const page = await this.o.s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }));
        for (const c of page.Contents ?? []) {
          const target = join(root, 'input', 'data', ch.ChannelName, c.Key!.slice(prefix.length));
          await mkdir(dirname(target), { recursive: true });
          const obj = await this.o.s3.send(new GetObjectCommand({ Bucket: bucket, Key: c.Key }));
          await pipeline(obj.Body as Readable, createWriteStream(target));
        }
        token = page.NextContinuationToken;
      } while (token);
    }
    await mkdir(join(root, 'input', 'config'), { recursive: true });
    await writeFile(join(root, 'input', 'config', 'hyperparameters.json'), JSON.stringify(input.HyperParameters));
    await mkdir(join(root, 'model'), { recursive: true });
    update({ secondary: 'Training' });
    const t0 = Date.now();
    const { code, log } = await new Promise<{ code: number | null; log: string }>((resolve) => {
      const child = spawn(venvPython(), [trainScript, 'train'], {
        cwd: root,
        env: offlinePythonEnv({ SM_ROOT: root, LOUPE_FORBID_NETWORK: '1' }),
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      child.stdout.on('data', (b: Buffer) => (out += b.toString()));
      child.stderr.on('data', (b: Buffer) => (out += b.toString()));
      child.on('close', (c) => resolve({ code: c, log: out }));
    });
    this.containerLogs.set(input.TrainingJobName, log);
    if (code !== 0) {
      const failure = join(root, 'output', 'failure');
      update({
        status: 'Failed',
        secondary: 'Failed',
        failureReason: existsSync(failure) ? await readFile(failure, 'utf8') : `AlgorithmError: exit ${code}`,
      });
      return;
    }
    update({ secondary: 'Uploading' });
    const tarball = join(root, 'model.tar.gz');
    await tarCreate({ gzip: true, file: tarball, cwd: join(root, 'model') }, await readdir(join(root, 'model')));
    const out = s3Parts(input.OutputDataConfig.S3OutputPath);
    const key = `${out.key.replace(/\/$/, '')}/${input.TrainingJobName}/output/model.tar.gz`;
    await this.o.s3.send(new PutObjectCommand({ Bucket: out.bucket, Key: key, Body: await readFile(tarball) }));
    await rm(join(root, 'input'), { recursive: true, force: true });
    update({
      status: 'Completed',
      secondary: 'Completed',
      artifacts: `s3://${out.bucket}/${key}`,
      billableSeconds: Math.max(1, Math.round((Date.now() - t0) / 1000)),
    });
  }

  /** Ground Truth's part: workers box the images (labelling) or judge the boxes (verification); output manifest to S3. */
  private async runLabeling(file: string, job: LabelingJobState): Promise<void> {
    const path = join(this.o.dir, 'labeling', file);
    const input = job.request as {
      LabelingJobName: string;
      LabelAttributeName: string;
      InputConfig: { DataSource: { S3DataSource: { ManifestS3Uri: string } } };
      OutputConfig: { S3OutputPath: string };
    };
    const name = input.LabelingJobName;
    const lines = (await this.getText(input.InputConfig.DataSource.S3DataSource.ManifestS3Uri))
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    const created = new Date().toISOString().replace('Z', '');
    const out: Record<string, unknown>[] = [];
    if (input.LabelAttributeName === 'bounding-box') {
      for (const line of lines) {
        const ref = String(line['source-ref']);
        const t = await this.o.truth(ref);
        out.push({
          'source-ref': ref,
          'bounding-box': {
            image_size: [{ width: t.width, height: t.height, depth: 3 }],
            annotations: t.boxes.map((b) => ({ class_id: b.class_id, left: b.left, top: b.top, width: b.width, height: b.height })),
          },
          'bounding-box-metadata': {
            objects: t.boxes.map(() => ({ confidence: 0.91 })),
            'class-map': Object.fromEntries(this.o.classes.map((c, i) => [String(i), c])),
            type: 'groundtruth/object-detection',
            'human-annotated': 'yes',
            'creation-date': created,
            'job-name': `labeling-job/${name}`,
          },
        });
      }
    } else {
      for (const line of lines) {
        const comment = this.o.rejectComment?.(String(line['source-ref']));
        out.push({
          ...line,
          // As in the developer guide's verification output: the category index as a string.
          [input.LabelAttributeName]: comment ? '1' : '0',
          [`${input.LabelAttributeName}-metadata`]: {
            'class-name': comment ? 'A defect is not boxed' : 'Labels are correct',
            confidence: 0.88,
            type: 'groundtruth/label-verification',
            'job-name': `labeling-job/${name}`,
            'human-annotated': 'yes',
            'creation-date': created,
            ...(comment ? { 'worker-feedback': [{ comment }] } : {}),
          },
        });
      }
    }
    const o = s3Parts(input.OutputConfig.S3OutputPath);
    const key = `${o.key.replace(/\/$/, '')}/${name}/manifests/output/output.manifest`;
    await this.o.s3.send(new PutObjectCommand({ Bucket: o.bucket, Key: key, Body: out.map((l) => JSON.stringify(l)).join('\n') + '\n' }));
    writeJson(path, {
      ...readJson<LabelingJobState>(path)!,
      status: 'Completed',
      output: `s3://${o.bucket}/${key}`,
      counters: { TotalLabeled: out.length, HumanLabeled: out.length, MachineLabeled: 0, FailedNonRetryableError: 0, Unlabeled: 0 },
    });
  }
}
