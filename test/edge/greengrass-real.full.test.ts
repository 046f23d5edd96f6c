import { ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { stringify as toYaml } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildComponents, type BuildResult } from '../../components/build/build.js';
import { buildCodeZip, type Platform } from '../../components/build/code-bundle.js';
import { NODE_RUNTIME_VERSION } from '../../components/build/node-runtime.js';
import type { Recipe } from '../../components/build/recipes.js';
import { silentLogger } from '../../lib/log.js';
import { datasetDir, projectRoot } from '../../lib/paths.js';
import { startObjectStore, type ObjectStore } from '../../embedded/objectstore/index.js';
import { ensureBuilt, until } from '../helpers/edge.js';
import { realNucleusPrerequisites, startRealNucleus } from '../helpers/real-nucleus.js';
import { installInline, type InlineComponent } from '../helpers/inline-components.js';
import { componentProcesses } from '../helpers/procs.js';

/**
 * loupe's four components, from the build output, on the REAL AWS IoT Greengrass nucleus
 * (../shared/tools/greengrass-nucleus/Greengrass.jar) started with one init config, as on a
 * stock device: default nucleus settings, components as ggc_user with the nucleus's bare PATH,
 * Node.js from loupe.NodeRuntime (nothing installed by hand). With the embedded object store on
 * this machine: frames are captured, inferred and published over IPC (a probe component, packed
 * and run the same way, subscribes); what cannot reach the cloud offline (IoT Core answers
 * ServiceError, the Token Exchange Service 500) does not lose data: the uploader keeps every
 * selected frame in its spool, and after a restart with working credentials each lands in S3
 * exactly once. A loupe.Model whose model does not load never gets Inference running: its
 * Install step refuses it.
 *
 * The nucleus cannot make local deployments here (aws.greengrass.Cli is not built), so the
 * components are defined inline in the init config with their artefacts placed as a deployment
 * would (test/helpers/inline-components.ts). Needs Java 17, root or passwordless sudo, and the
 * ggc_user:ggc_group user (`loupe setup system`).
 */
const THING = 'loupe-real-1';
const BUCKET = 'loupe-incoming';
const ARCH = process.arch === 'arm64' ? 'aarch64' : 'amd64';
const PLATFORM: Platform = process.arch === 'arm64' ? 'linux-arm64' : 'linux-x64';
const asRoot = process.getuid?.() === 0;

/**
 * Start the real nucleus (test/helpers/real-nucleus.ts: its own process group, waited for until
 * it has launched); `stop()` ends the group and then anything of the components still running.
 */
async function startReal(root: string, initConfig: string, logFile: string): Promise<{ stop(): Promise<void> }> {
  const n = await startRealNucleus({ initConfig, root, outputFile: logFile });
  const kill = (pid: number) => {
    try {
      if (asRoot) process.kill(pid, 'SIGKILL');
      else execFileSync('sudo', ['-n', 'kill', '-KILL', '--', String(pid)]);
    } catch {
      // already gone
    }
  };
  return {
    async stop() {
      await n.stop();
      // Component processes the nucleus did not stop (it stops them on shutdown; this is the safety net).
      for (const p of componentProcesses(root)) kill(p.pid);
    },
  };
}

/** `service-set-state` events from the nucleus log (from byte `from` on): component → states in order. */
function states(root: string, from = 0): Record<string, string[]> {
  const log = join(root, 'logs', 'greengrass.log');
  const out: Record<string, string[]> = {};
  if (!existsSync(log)) return out;
  for (const m of readFileSync(log)
    .subarray(from)
    .toString('utf8')
    .matchAll(/service-set-state\. \{[^}]*?serviceName=([^,}]+), currentState=(\w+), newState=(\w+)/g)) {
    (out[m[1]!] ??= []).push(m[3]!);
  }
  return out;
}

interface Observed {
  kind: string;
  topic?: string;
  message?: Record<string, unknown>;
  ok?: boolean;
  error?: string;
  serviceError?: unknown;
  status?: number | null;
}

let dir: string;
let root: string;
let build: BuildResult;
let store: ObjectStore;
let s3: S3Client;
let nucleus: { stop(): Promise<void> } | undefined;
let components: InlineComponent[];
let images: string[];
const nucleusLog = () => join(dir, 'nucleus.out');
const probeFile = () => join(root, 'work', 'loupe.test.Probe', 'observed.jsonl');
const observed = (): Observed[] =>
  existsSync(probeFile())
    ? readFileSync(probeFile(), 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Observed)
    : [];
const latest = (topic: string) =>
  observed()
    .filter((o) => o.kind === 'message' && o.topic === topic)
    .at(-1)?.message;
const why = () => `states ${JSON.stringify(states(root))}\n${readFileSync(nucleusLog(), 'utf8').slice(-3000)}`;

async function writeInitConfig(extra: {
  uploaderSetenv?: Record<string, string>;
  cameraEnabled: boolean;
  model?: InlineComponent;
}): Promise<string> {
  const merged = components.map((c) =>
    c.recipe.ComponentName === 'loupe.Camera'
      ? { ...c, merge: { ...c.merge, cameras: [{ ...(c.merge!.cameras as Record<string, unknown>[])[0], enabled: extra.cameraEnabled }] } }
      : c.recipe.ComponentName === 'loupe.Model' && extra.model
        ? extra.model
        : c,
  );
  const services = await installInline(merged, { root, thingName: THING, architecture: ARCH });
  if (extra.uploaderSetenv)
    services['loupe.Uploader']!.lifecycle = { ...(services['loupe.Uploader']!.lifecycle as object), Setenv: extra.uploaderSetenv };
  const config = {
    system: { rootpath: root, thingName: THING },
    services: {
      'aws.greengrass.Nucleus': {
        componentType: 'NUCLEUS',
        version: '2.18.0',
        // Default settings but what running offline needs: a region, and a role alias so that TES starts.
        configuration: { awsRegion: 'us-east-1', runWithDefault: { posixUser: 'ggc_user:ggc_group' }, iotRoleAlias: 'DummyRoleAlias' },
      },
      main: { dependencies: [...Object.keys(services), 'aws.greengrass.TokenExchangeService'] },
      ...services,
    },
  };
  const file = join(dir, 'config.yaml');
  writeFileSync(file, toYaml(config));
  return file;
}

beforeAll(async () => {
  expect(realNucleusPrerequisites(), 'what the real nucleus needs here (loupe setup system)').toEqual([]);
  ensureBuilt();
  // Readable by ggc_user all the way down (mkdtemp makes 0700 folders).
  dir = mkdtempSync('/tmp/lgr-');
  chmodSync(dir, 0o755);
  root = join(dir, 'gg');
  mkdirSync(root, { mode: 0o755 });
  build = await buildComponents({ outDir: join(dir, 'greengrass-build'), platforms: [PLATFORM], log: silentLogger });

  // The probe: packed like a loupe component, run on the same runtime.
  const probeDir = join(dir, 'probe');
  mkdirSync(probeDir);
  await buildCodeZip(
    [join(projectRoot, 'dist', 'test', 'helpers', 'ipc-probe.js')],
    PLATFORM,
    join(probeDir, `probe-${PLATFORM}.zip`),
    { name: 'loupe-test-probe', version: '1.0.0', label: 'loupe.test.Probe' },
    silentLogger,
  );
  const probe: Recipe = {
    RecipeFormatVersion: '2020-01-25',
    ComponentName: 'loupe.test.Probe',
    ComponentVersion: '1.0.0',
    // TES as a dependency, as loupe.Uploader has it: the real nucleus puts the TES address into
    // components' environment only once TES has started, so without it the probe can start first
    // and never try TES (a flake CI found).
    ComponentDependencies: {
      'loupe.NodeRuntime': { VersionRequirement: '^20.15.0', DependencyType: 'HARD' },
      'aws.greengrass.TokenExchangeService': { VersionRequirement: '^2.0.0', DependencyType: 'HARD' },
    },
    ComponentConfiguration: {
      DefaultConfiguration: {
        accessControl: {
          'aws.greengrass.ipc.pubsub': {
            'loupe.test.Probe:sub': {
              policyDescription: 'observe',
              operations: ['aws.greengrass#SubscribeToTopic'],
              resources: ['loupe/results', 'loupe/telemetry/inference', 'loupe/telemetry/uploader'],
            },
          },
          'aws.greengrass.ipc.mqttproxy': {
            'loupe.test.Probe:iot': {
              policyDescription: 'try IoT Core',
              operations: ['aws.greengrass#PublishToIoTCore'],
              resources: ['loupe/probe/check'],
            },
          },
        },
      },
    },
    Manifests: [
      {
        Platform: { os: 'linux', architecture: ARCH },
        Lifecycle: {
          Setenv: {
            PROBE_TOPICS: 'loupe/results,loupe/telemetry/inference,loupe/telemetry/uploader',
            PROBE_IOT_TOPIC: 'loupe/probe/check',
          },
          Run: {
            Script: `exec "{loupe.NodeRuntime:artifacts:decompressedPath}/node-${PLATFORM}/bin/node" "{artifacts:decompressedPath}/probe-${PLATFORM}/dist/test/helpers/ipc-probe.js"`,
          },
        },
        Artifacts: [{ Uri: `s3://probe/probe-${PLATFORM}.zip`, Unarchive: 'ZIP' }],
      },
    ],
  };

  // The camera's folder: 12 metal-tags photos, 8 with scratches, readable by ggc_user.
  const imgDir = join(dir, 'images');
  mkdirSync(imgDir, { mode: 0o755 });
  const pick = (sub: string, n: number) =>
    readdirSync(join(datasetDir('metal-tags'), sub))
      .filter((f) => f.endsWith('.jpg'))
      .sort()
      .slice(0, n)
      .map((f) => join(datasetDir('metal-tags'), sub, f));
  images = [...pick('bad', 8), ...pick('good', 4)].map((src, i) => {
    const dest = join(imgDir, `${String(i).padStart(2, '0')}.jpg`);
    copyFileSync(src, dest);
    chmodSync(dest, 0o644);
    return dest;
  });

  store = await startObjectStore({ dir: join(dir, 's3'), buckets: [BUCKET] });
  s3 = new S3Client(store.clientConfig);
  const built = (name: string) => {
    const r = build.recipes.find((x) => x.component === name)!;
    return { recipe: r.recipe, artifactDir: join(build.outDir, 'artifacts', name, r.version) };
  };
  components = [
    built('loupe.NodeRuntime'),
    built('loupe.Model'),
    {
      ...built('loupe.Camera'),
      merge: {
        cameras: [{ name: 'real', source: { type: 'folder', path: imgDir, mode: 'once' }, trigger: { type: 'interval', fps: 4 } }],
        healthIntervalS: 2,
      },
    },
    { ...built('loupe.Inference'), merge: { telemetryIntervalS: 2 } },
    {
      ...built('loupe.Uploader'),
      merge: {
        bucket: BUCKET,
        endpoint: store.endpoint,
        forcePathStyle: true,
        policies: [{ type: 'failed' }],
        dedup: { enabled: false },
        telemetryIntervalS: 1,
        upload: { concurrency: 2, baseDelayMs: 200, maxDelayMs: 2000, timeoutMs: 5000 },
      },
    },
    { recipe: probe, artifactDir: probeDir },
  ];
}, 900_000);

afterAll(async () => {
  await nucleus?.stop();
  s3?.destroy();
  await store?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
}, 120_000);

describe('loupe on the real Greengrass nucleus (from the build output, one init config)', () => {
  let fails: string[] = [];

  it('starts: loupe.NodeRuntime and loupe.Model install and finish, Camera, Inference and Uploader run', async () => {
    nucleus = await startReal(root, await writeInitConfig({ cameraEnabled: true }), nucleusLog());
    await until(() => observed().some((o) => o.kind === 'ready'), 180_000, why);
    await until(
      () => ['loupe.Camera', 'loupe.Inference', 'loupe.Uploader'].every((c) => states(root)[c]?.includes('RUNNING')),
      120_000,
      why,
    );
    const s = states(root);
    console.log(`component states on the real nucleus: ${JSON.stringify(s)}`);
    for (const c of ['loupe.NodeRuntime', 'loupe.Model']) {
      expect(s[c]!.slice(0, 3), c).toEqual(['INSTALLED', 'STARTING', 'FINISHED']);
      expect(s[c]!.at(-1), c).toBe('FINISHED');
    }
    for (const c of ['loupe.NodeRuntime', 'loupe.Model', 'loupe.Camera', 'loupe.Inference', 'loupe.Uploader'])
      expect(
        s[c]!.filter((x) => x === 'ERRORED' || x === 'BROKEN'),
        c,
      ).toEqual([]);
    // The runtime's Install step ran the packed node on this machine; Inference's checked the model.
    expect(readFileSync(join(root, 'logs', 'loupe.NodeRuntime.log'), 'utf8')).toContain(`v${NODE_RUNTIME_VERSION}`);
    expect(readFileSync(join(root, 'logs', 'loupe.Inference.log'), 'utf8')).toContain('model verified');
  }, 400_000);

  it("runs every component process on loupe.NodeRuntime's node, as ggc_user, with the nucleus's bare PATH and ggc_user's HOME", () => {
    const node = join(
      root,
      'packages',
      'artifacts-unarchived',
      'loupe.NodeRuntime',
      NODE_RUNTIME_VERSION,
      `node-${PLATFORM}`,
      'bin',
      'node',
    );
    const uid = Number(execFileSync('id', ['-u', 'ggc_user']).toString().trim());
    const gid = Number(execFileSync('id', ['-g', 'ggc_user']).toString().trim());
    const home = execFileSync('getent', ['passwd', 'ggc_user']).toString().trim().split(':')[5];
    const procs = componentProcesses(root).filter((p) => p.exe === node);
    expect(procs.map((p) => p.component)).toEqual(['loupe.Camera', 'loupe.Inference', 'loupe.Uploader', 'loupe.test.Probe']);
    for (const p of procs) {
      const env = Object.fromEntries(
        readFileSync(`/proc/${p.pid}/environ`, 'utf8')
          .split('\0')
          .filter(Boolean)
          .map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]),
      );
      console.log(`${p.component}: pid ${p.pid} exe ${p.exe} uid ${p.uid} gid ${p.gid} PATH=${env.PATH} HOME=${env.HOME}`);
      expect({ uid: p.uid, gid: p.gid, HOME: env.HOME }).toEqual({ uid, gid, HOME: home });
      expect(env.PATH).toBe('/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin');
    }
    // And no other node serves a component (the system's, if any, is not used).
    expect(
      componentProcesses(root).filter(
        (p) => p.exe !== node && !p.exe.endsWith('/sudo') && !p.exe.endsWith('/sh') && !p.exe.endsWith('/dash') && !p.exe.endsWith('/bash'),
      ),
    ).toEqual([]);
  });

  it('captures, infers and publishes every frame over IPC', async () => {
    const results = () =>
      new Map(
        observed()
          .filter((o) => o.kind === 'message' && o.topic === 'loupe/results')
          .map((o) => [String(o.message!.frameId), o.message!]),
      );
    await until(
      () => results().size >= images.length,
      180_000,
      () => `${results().size} of ${images.length} results\n${why()}`,
    );
    const r = [...results().values()];
    expect(r).toHaveLength(images.length);
    expect(r.map((x) => x.seq as number).sort((a, b) => a - b)).toEqual(images.map((_, i) => i + 1));
    expect(r.every((x) => x.verdict === 'pass' || x.verdict === 'fail')).toBe(true);
    expect(r.every((x) => (x.model as { version: string }).version === '1.0.0')).toBe(true);
    fails = r
      .filter((x) => x.verdict === 'fail')
      .map((x) => String(x.frameId))
      .sort();
    expect(fails.length).toBeGreaterThan(0);
    expect(fails.length).toBeLessThan(images.length);
  }, 300_000);

  it("offline, IoT Core answers ServiceError and TES 500: every selected frame waits in the uploader's spool, none is lost or uploaded", async () => {
    const iot = observed().find((o) => o.kind === 'iotcore')!;
    console.log(`PublishToIoTCore on the real nucleus, offline: ${JSON.stringify(iot)}`);
    expect(iot.ok).toBe(false);
    expect(JSON.stringify(iot)).toMatch(/offline|ServiceError/i);
    const tes = observed().find((o) => o.kind === 'tes');
    expect(tes, 'the probe tried TES (AWS_CONTAINER_CREDENTIALS_FULL_URI set)').toBeDefined();
    expect(tes!.status).toBe(500);
    await until(
      () =>
        Number(latest('loupe/telemetry/uploader')?.spoolPending) === fails.length &&
        Number(latest('loupe/telemetry/uploader')?.attemptsFailed) > 0,
      120_000,
      () => JSON.stringify(latest('loupe/telemetry/uploader')),
    );
    expect(latest('loupe/telemetry/uploader')).toMatchObject({ uploaded: 0, spoolPending: fails.length });
    const spool = join(root, 'work', 'loupe.Uploader', 'spool');
    const records = readdirSync(spool)
      .filter((f) => f.endsWith('.json'))
      .map((f) => JSON.parse(readFileSync(join(spool, f), 'utf8')) as { frameId: string });
    expect(records.map((x) => x.frameId).sort()).toEqual(fails);
    expect((await s3.send(new ListObjectsV2Command({ Bucket: BUCKET }))).KeyCount ?? 0).toBe(0);
    // Results that could not go to IoT Core were logged, not fatal.
    expect(readFileSync(join(root, 'logs', 'loupe.Inference.log'), 'utf8')).toContain('result not published to IoT Core');
  }, 200_000);

  it('restarted with a broken loupe.Model and working credentials: Inference never runs on the broken model; the spool drains, each selected frame in S3 exactly once', async () => {
    await nucleus!.stop();
    // A new loupe.Model version whose model.onnx is not a model (its digest is right: it is what was published).
    const brokenDir = join(dir, 'broken-model');
    mkdirSync(brokenDir);
    writeFileSync(join(brokenDir, 'model.onnx'), Buffer.alloc(4096, 7));
    copyFileSync(join(projectRoot, 'models', 'metal-tags', 'card.json'), join(brokenDir, 'card.json'));
    const broken = await buildComponents({
      outDir: join(dir, 'broken-build'),
      components: ['loupe.Model'],
      modelDir: brokenDir,
      modelVersion: '1.0.1',
      log: silentLogger,
    });
    const model = { recipe: broken.recipes[0]!.recipe, artifactDir: join(broken.outDir, 'artifacts', 'loupe.Model', '1.0.1') };
    // The same root, the same components (camera off: no new frames); the uploader now has keys for the object store.
    const file = await writeInitConfig({
      cameraEnabled: false,
      model,
      uploaderSetenv: { AWS_ACCESS_KEY_ID: store.credentials.accessKeyId, AWS_SECRET_ACCESS_KEY: store.credentials.secretAccessKey },
    });
    writeFileSync(probeFile(), '');
    const logFrom = statSync(join(root, 'logs', 'greengrass.log')).size;
    nucleus = await startReal(root, file, nucleusLog());
    await until(
      () =>
        Number(latest('loupe/telemetry/uploader')?.uploaded) === fails.length &&
        Number(latest('loupe/telemetry/uploader')?.spoolPending) === 0,
      180_000,
      () => `${JSON.stringify(latest('loupe/telemetry/uploader'))}\n${why()}`,
    );
    const keys = ((await s3.send(new ListObjectsV2Command({ Bucket: BUCKET }))).Contents ?? []).map((c) => c.Key!).sort();
    expect(
      keys
        .filter((k) => k.endsWith('.jpg'))
        .map((k) =>
          k
            .split('/')
            .pop()!
            .replace(/\.jpg$/, ''),
        )
        .sort(),
    ).toEqual(fails);
    expect(keys.filter((k) => k.endsWith('.json'))).toHaveLength(fails.length);
    expect(latest('loupe/telemetry/uploader')).toMatchObject({ uploaded: fails.length, alreadyThere: 0, spoolPending: 0 });
    expect(readdirSync(join(root, 'work', 'loupe.Uploader', 'spool')).filter((f) => f.endsWith('.json'))).toEqual([]);
    // Inference's Install refuses the model each time the nucleus tries, so it never runs on it: BROKEN.
    await until(() => states(root, logFrom)['loupe.Inference']?.includes('BROKEN'), 180_000, why);
    const after = states(root, logFrom);
    console.log(`after the restart with a broken model: ${JSON.stringify(after)}`);
    expect(after['loupe.Inference']).not.toContain('RUNNING');
    expect(readFileSync(join(root, 'logs', 'loupe.Inference.log'), 'utf8')).toMatch(/model refused: .*loupe\.Model\/1\.0\.1\/model\.onnx/);
  }, 500_000);
});
