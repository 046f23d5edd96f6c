/**
 * The edge half of loupe on one machine: MQTT broker (IoT Core stand-in), S3-compatible object
 * store, the local Greengrass nucleus, and the loupe suite deployed on it (loupe.Model,
 * loupe.Camera, loupe.Inference, loupe.Uploader) from the same recipes a device gets.
 * `loupe edge up`, the cloud loop and `loupe demo` use it.
 *
 *   const stack = await startEdgeStack({ source: { type: 'folder', path: DIR, mode: 'loop' }, fps: 5 });
 *   stack.counts()          // { frames, inferred, defects, uploaded, spoolPending, errors, ... }
 *   stack.on('result', (r: ResultMessage) => ...)   // every result seen on IoT Core (MQTT)
 *   await stack.deployModel({ dir: 'models/new', version: '1.1.0' })   // a new loupe.Model version
 *   await stack.configure('loupe.Inference', { conf: 0.5 })            // a configuration deployment
 *   await stack.summary()   // the JSON line of `loupe edge up --json`
 *   await stack.stop()
 */
import { EventEmitter } from 'node:events';
import { copyFile, link, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import mqtt from 'mqtt';
import type { Logger } from 'pino';
import { LoupeError, errorMessage } from '../../lib/errors.js';
import { sha256File } from '../../lib/fsutil.js';
import { silentLogger } from '../../lib/log.js';
import { projectRoot, datasetDir } from '../../lib/paths.js';
import {
  COMPONENTS,
  loadSourceRecipe,
  localRecipe,
  renderRecipe,
  type ComponentName,
  type Recipe,
} from '../../components/build/recipes.js';
import type { CameraHealth, ResultMessage } from '../../contracts/topics.js';
import { startBroker, type EmbeddedBroker } from '../broker/broker.js';
import { Nucleus, type DeploymentRecord } from '../nucleus/nucleus.js';
import type { ObjectStore } from '../objectstore/index.js';
import { tesCredentials } from '../objectstore/keys.js';
import { startObjectStoreProcess } from '../objectstore/process.js';
import { ResultWindow, type ResultTally } from './result-window.js';

export interface EdgeStackOptions {
  /** working folder (nucleus root, object store, staging); default a new temp folder, removed on stop */
  root?: string;
  /** camera source block (components/camera/sources); default a folder camera over the metal-tags images */
  source?: Record<string, unknown>;
  /** camera trigger; default { type: 'interval', fps } */
  trigger?: Record<string, unknown>;
  fps?: number;
  /** more cameras (full camera blocks), instead of `source` */
  cameras?: Record<string, unknown>[];
  /** folder with model.onnx (and card.json); default models/metal-tags */
  modelDir?: string;
  modelName?: string;
  modelVersion?: string;
  thingName?: string;
  bucket?: string;
  /** configuration merged into each component's defaults at deployment */
  config?: Partial<Record<'camera' | 'inference' | 'uploader' | 'model', Record<string, unknown>>>;
  /** reuse an object store / broker started elsewhere (the cloud loop) */
  objectStore?: ObjectStore;
  broker?: EmbeddedBroker;
  /** fixed ports for the object store / broker this stack starts (so a test can stop and restart them) */
  objectStorePort?: number;
  brokerPort?: number;
  /** health timeout for the deployment, s */
  healthTimeoutSeconds?: number;
  /** when start-up fails, leave the working folder (with the component logs) instead of removing it */
  keepOnFailure?: boolean;
  /** how many of the latest results `results` keeps (default 10,000); the counts cover every result */
  keepResults?: number;
  log?: Logger;
}

export interface EdgeCounts {
  frames: number;
  inferred: number;
  defects: number;
  uploaded: number;
  spoolPending: number;
  errors: number;
}

export interface EdgeStack extends EventEmitter {
  root: string;
  thingName: string;
  bucket: string;
  nucleus: Nucleus;
  broker: EmbeddedBroker;
  objectStore: ObjectStore;
  s3: S3Client;
  componentVersion: string;
  modelVersion: string;
  deployment: DeploymentRecord;
  /**
   * The latest results seen on IoT Core (at most `keepResults`), by frame id, oldest first. A
   * redelivered frame counts once while its first result is still held; `tally` counts them all.
   */
  results: Map<string, ResultMessage>;
  tally: ResultTally;
  /** the latest telemetry message per component */
  telemetry: Record<string, Record<string, unknown>>;
  counts(): EdgeCounts;
  /** fresh counts: this run's uploads counted in S3 (objects there before the stack started are not), and the spool on disk */
  summary(): Promise<EdgeCounts & { modelVersion: string; seconds: number }>;
  deployModel(opts: { dir: string; version: string; name?: string }): Promise<DeploymentRecord>;
  configure(component: ComponentName, merge: Record<string, unknown>, reset?: string[]): Promise<DeploymentRecord>;
  /** S3 keys under incoming/ */
  listUploads(): Promise<string[]>;
  /** What a person or a tool needs to reach the stack's services (one place: whatever keys the object store hands out). */
  endpoints(): EdgeEndpoints;
  /** Stop everything; `keep` leaves the working folder (component logs, spool, object store) in place. */
  stop(opts?: { keep?: boolean }): Promise<void>;
}

export interface EdgeEndpoints {
  root: string;
  objectStore: {
    endpoint: string;
    region: string;
    bucket: string;
    forcePathStyle: true;
    accessKeyId: string;
    secretAccessKey: string;
    keysFile: string;
    dir: string;
  };
  broker: { url: string; topics: string };
  nucleus: { root: string; ipcSocket: string; tesUri: string; logs: string; thingName: string };
}

const pkgVersion = (): Promise<string> =>
  readFile(join(projectRoot, 'package.json'), 'utf8').then((t) => (JSON.parse(t) as { version: string }).version);

/** Parse `folder:PATH`, `stream:URL`, `v4l2:DEVICE`, `snapshot:URL`, `command:CMD ARG...` into a source block. */
export function parseSourceSpec(spec: string): Record<string, unknown> {
  const i = spec.indexOf(':');
  const kind = i > 0 ? spec.slice(0, i) : '';
  const rest = i > 0 ? spec.slice(i + 1) : '';
  if (!rest)
    throw new LoupeError('edge.source', 'expected KIND:VALUE, e.g. folder:/data/images or stream:rtsp://cam/1', {
      input: `--source ${spec}`,
    });
  switch (kind) {
    case 'folder':
      return { type: 'folder', path: resolve(rest), mode: 'loop' };
    case 'stream':
      return { type: 'stream', url: rest };
    case 'v4l2':
      return { type: 'v4l2', device: rest };
    case 'snapshot':
      return { type: 'snapshot', url: rest };
    case 'command': {
      const [command, ...args] = rest.split(' ').filter(Boolean);
      return { type: 'command', command, args };
    }
    default:
      throw new LoupeError('edge.source', `unknown source kind "${kind}" (folder, stream, v4l2, snapshot, command)`, {
        input: `--source ${spec}`,
      });
  }
}

async function stageModel(
  stagingDir: string,
  modelDir: string,
  name: string,
  version: string,
): Promise<{ recipe: Recipe; sha256: string }> {
  const model = join(modelDir, 'model.onnx');
  const sha256 = await sha256File(model).catch((e: Error) => {
    throw new LoupeError('edge.model', `cannot read the model: ${e.message}`, { input: model });
  });
  const dest = join(stagingDir, 'artifacts', 'loupe.Model', version);
  await mkdir(dest, { recursive: true });
  await rm(join(dest, 'model.onnx'), { force: true });
  await link(model, join(dest, 'model.onnx')).catch(() => copyFile(model, join(dest, 'model.onnx')));
  // a model folder without card.json is allowed (see below)
  const card = await readFile(join(modelDir, 'card.json')).catch(() => undefined);
  // A model without a card still deploys; the card says so rather than inventing metrics.
  await writeFile(join(dest, 'card.json'), card ?? JSON.stringify({ name, version, sha256, note: `no card.json in ${modelDir}` }, null, 2));
  const recipe = localRecipe(renderRecipe(loadSourceRecipe('loupe.Model'), { version, model: { name, sha256 } }));
  await writeRecipe(stagingDir, recipe);
  return { recipe, sha256 };
}

async function writeRecipe(stagingDir: string, r: Recipe): Promise<void> {
  const dir = join(stagingDir, 'recipes');
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, `${r.ComponentName}-${r.ComponentVersion}.json`), JSON.stringify(r, null, 2));
}

export async function startEdgeStack(opts: EdgeStackOptions = {}): Promise<EdgeStack> {
  const started = Date.now();
  const log = opts.log ?? silentLogger;
  const ownRoot = !opts.root;
  const root = opts.root ? resolve(opts.root) : await mkdtemp(join(tmpdir(), 'le-'));
  const thingName = opts.thingName ?? 'loupe-edge-1';
  const bucket = opts.bucket ?? 'loupe-incoming';
  const componentVersion = await pkgVersion();
  let modelVersion = opts.modelVersion ?? '1.0.0';
  const modelName = opts.modelName ?? 'metal-tags';
  const staging = join(root, 'staging');
  const cleanups: (() => Promise<unknown>)[] = [];
  const stack = new EventEmitter() as EdgeStack;
  try {
    const broker = opts.broker ?? (await startBroker({ port: opts.brokerPort ?? 0, logger: log.child({ module: 'broker' }) }));
    if (!opts.broker) cleanups.push(() => broker.stop());
    // The store runs in its own supervised process: a request that kills it cannot take the
    // nucleus, broker and components with it (embedded/objectstore/process.ts).
    const objectStore =
      opts.objectStore ??
      (await startObjectStoreProcess({
        dir: join(root, 'objectstore'),
        port: opts.objectStorePort,
        buckets: [bucket],
        log: log.child({ module: 'objectstore' }),
      }));
    if (!opts.objectStore) cleanups.push(() => objectStore.stop());
    const s3 = new S3Client(objectStore.clientConfig);
    await s3.send(new ListObjectsV2Command({ Bucket: bucket, MaxKeys: 1 })).catch(async (e: unknown) => {
      if ((e as { name?: string }).name !== 'NoSuchBucket') throw e;
      const { CreateBucketCommand } = await import('@aws-sdk/client-s3');
      await s3.send(new CreateBucketCommand({ Bucket: bucket }));
    });

    const listUploads = async (): Promise<string[]> => {
      const keys: string[] = [];
      let token: string | undefined;
      do {
        const r = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: 'incoming/', ContinuationToken: token }));
        keys.push(...(r.Contents ?? []).map((c) => c.Key!));
        token = r.IsTruncated ? r.NextContinuationToken : undefined;
      } while (token);
      return keys;
    };
    // What the bucket held before this run (a kept --root, a shared store): the summary counts only what this run added.
    const before = new Set(await listUploads());

    // Watch IoT Core (the broker) like the plant and the cloud would.
    const seen = new ResultWindow(opts.keepResults);
    const { results, tally } = seen;
    const telemetry: Record<string, Record<string, unknown>> = {};
    let cameraHealth: CameraHealth[] = [];
    const client = await mqtt.connectAsync(broker.url, { clientId: `loupe-edge-watch-${process.pid}-${Date.now()}`, reconnectPeriod: 500 });
    cleanups.push(() => client.endAsync(true));
    await client.subscribeAsync(`loupe/${thingName}/#`, { qos: 1 });
    client.on('message', (topic, payload) => {
      let m: Record<string, unknown>;
      try {
        m = JSON.parse(payload.toString('utf8')) as Record<string, unknown>;
      } catch {
        return;
      }
      if (topic.endsWith('/results')) {
        const r = m as unknown as ResultMessage;
        if (seen.add(r)) stack.emit('result', r);
      } else if (topic.endsWith('/telemetry') && typeof m.component === 'string') {
        telemetry[m.component] = m;
        stack.emit('telemetry', m);
      } else if (topic.endsWith('/health') && Array.isArray(m.cameras)) {
        cameraHealth = m.cameras as CameraHealth[];
        telemetry.camera = m;
        stack.emit('health', m);
      }
    });

    // The TES hands components the object store's own key pair, read from its key file.
    const nucleus = new Nucleus({
      root: join(root, 'gg'),
      thingName,
      mqttUrl: broker.url,
      credentials: () => tesCredentials(objectStore.keysFile),
    });
    await nucleus.start();
    cleanups.unshift(() => nucleus.stop());

    const sharedFolder = datasetDir('metal-tags');
    const cameras = opts.cameras ?? [
      {
        name: 'cam1',
        source: opts.source ?? { type: 'folder', path: sharedFolder, mode: 'loop' },
        trigger: opts.trigger ?? { type: 'interval', fps: opts.fps ?? 5 },
      },
    ];
    const model = await stageModel(staging, resolve(opts.modelDir ?? join(projectRoot, 'models', 'metal-tags')), modelName, modelVersion);
    for (const name of COMPONENTS)
      if (name !== 'loupe.Model')
        await writeRecipe(staging, localRecipe(renderRecipe(loadSourceRecipe(name), { version: componentVersion })));
    log.info({ sha256: model.sha256, modelVersion }, 'staged loupe.Model');

    const cfg = opts.config ?? {};
    const deployment = await nucleus.deploy({
      recipeDir: join(staging, 'recipes'),
      artifactDir: join(staging, 'artifacts'),
      merge: {
        'loupe.Model': modelVersion,
        'loupe.Camera': componentVersion,
        'loupe.Inference': componentVersion,
        'loupe.Uploader': componentVersion,
      },
      configurationUpdate: {
        'loupe.Camera': { merge: { cameras, healthIntervalS: 1, ...cfg.camera } },
        'loupe.Inference': { merge: { telemetryIntervalS: 2, ...cfg.inference } },
        'loupe.Uploader': {
          merge: {
            bucket,
            endpoint: objectStore.endpoint,
            forcePathStyle: true,
            telemetryIntervalS: 2,
            upload: { concurrency: 2, baseDelayMs: 200, maxDelayMs: 5000, timeoutMs: 10_000 },
            ...cfg.uploader,
          },
        },
        ...(cfg.model ? { 'loupe.Model': { merge: cfg.model } } : {}),
      },
      healthTimeoutSeconds: opts.healthTimeoutSeconds ?? 120,
    });
    if (deployment.status !== 'SUCCEEDED') {
      const logs = await Promise.all(
        COMPONENTS.map(
          async (c) => `--- ${c} (${nucleus.logFile(c)})\n${(await nucleus.readLog(c).catch(() => '')).split('\n').slice(-15).join('\n')}`,
        ),
      );
      const kept = opts.keepOnFailure || !ownRoot ? `\ncomponent logs: ${join(nucleus.root, 'logs')}` : '';
      throw new LoupeError(
        'edge.deploy',
        `deploying the loupe suite failed: ${deployment.failureCause ?? deployment.detailedStatus}\n${logs.join('\n')}${kept}`,
        { input: 'local nucleus' },
      );
    }

    const spoolDir = join(root, 'gg', 'work', 'loupe.Uploader', 'spool');
    const counts = (): EdgeCounts => {
      const up = telemetry.uploader ?? {};
      const broken = nucleus.status().components.filter((c) => c.state === 'ERRORED' || c.state === 'BROKEN').length;
      return {
        // Camera health arrives every healthIntervalS, results as they happen; every result is a
        // captured frame, so the frame count is never below the result count.
        frames: Math.max(
          cameraHealth.reduce((s, c) => s + c.frames, 0),
          tally.inferred,
        ),
        inferred: tally.inferred,
        defects: tally.defects,
        uploaded: Number(up.uploaded ?? 0),
        spoolPending: Number(up.spoolPending ?? 0),
        errors: tally.errors + broken + cameraHealth.reduce((s, c) => s + c.errors, 0),
      };
    };

    Object.assign(stack, {
      root,
      thingName,
      bucket,
      nucleus,
      broker,
      objectStore,
      s3,
      componentVersion,
      modelVersion,
      deployment,
      results,
      tally,
      telemetry,
      counts,
      listUploads,
      async summary() {
        const c = counts();
        const uploaded = (await listUploads().catch(() => [] as string[])).filter((k) => k.endsWith('.jpg') && !before.has(k)).length;
        // item records only: the uploader keeps its own state beside them (.limits, .dedup.json)
        const spoolPending = (await readdir(spoolDir).catch(() => [] as string[])).filter(
          (f) => f.endsWith('.json') && !f.startsWith('.'),
        ).length;
        return { ...c, uploaded, spoolPending, modelVersion: stack.modelVersion, seconds: +((Date.now() - started) / 1000).toFixed(1) };
      },
      async deployModel(m: { dir: string; version: string; name?: string }) {
        await stageModel(staging, resolve(m.dir), m.name ?? modelName, m.version);
        const rec = await nucleus.deploy({
          recipeDir: join(staging, 'recipes'),
          artifactDir: join(staging, 'artifacts'),
          merge: { 'loupe.Model': m.version },
          healthTimeoutSeconds: opts.healthTimeoutSeconds ?? 120,
        });
        if (rec.status === 'SUCCEEDED') {
          modelVersion = m.version;
          stack.modelVersion = m.version;
        }
        return rec;
      },
      configure(component: ComponentName, merge: Record<string, unknown>, reset?: string[]) {
        return nucleus.deploy({ configurationUpdate: { [component]: { merge, ...(reset ? { reset } : {}) } } });
      },
      endpoints(): EdgeEndpoints {
        const cc = objectStore.clientConfig;
        return {
          root,
          objectStore: {
            endpoint: cc.endpoint,
            region: cc.region,
            bucket,
            forcePathStyle: true,
            accessKeyId: cc.credentials.accessKeyId,
            secretAccessKey: cc.credentials.secretAccessKey,
            keysFile: objectStore.keysFile,
            dir: objectStore.dir,
          },
          broker: { url: broker.url, topics: `loupe/${thingName}/#` },
          nucleus: {
            root: nucleus.root,
            ipcSocket: nucleus.socketPath,
            tesUri: nucleus.tesUri,
            logs: dirname(nucleus.logFile('loupe.Camera')),
            thingName,
          },
        };
      },
      async stop(o: { keep?: boolean } = {}) {
        for (const c of cleanups) await c().catch((e) => log.warn({ err: errorMessage(e) }, 'edge stack stop step failed'));
        s3.destroy();
        if (ownRoot && !o.keep) await rm(root, { recursive: true, force: true });
      },
    });
    return stack;
  } catch (e) {
    for (const c of cleanups) await c().catch((ce) => log.warn({ err: errorMessage(ce) }, 'cleanup after a failed start failed'));
    if (ownRoot && !opts.keepOnFailure) await rm(root, { recursive: true, force: true });
    throw e;
  }
}
