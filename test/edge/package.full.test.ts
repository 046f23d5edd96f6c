import { CreateComponentVersionCommand, DescribeComponentCommand, GreengrassV2Client } from '@aws-sdk/client-greengrassv2';
import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { mockClient } from 'aws-sdk-client-mock';
import { createHash } from 'node:crypto';
import { readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import mqtt from 'mqtt';
import yauzl from 'yauzl';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { datasetDir } from '../../lib/paths.js';
import { buildComponentZip, buildComponents, type BuildResult } from '../../components/build/build.js';
import { NODE_RUNTIME_VERSION } from '../../components/build/node-runtime.js';
import { buildModelComponent } from '../../cloud/publish/model-component.js';
import { publishComponents } from '../../components/build/publish.js';
import { silentLogger } from '../../lib/log.js';
import { Nucleus } from '../../embedded/nucleus/nucleus.js';
import { startObjectStore } from '../../embedded/objectstore/index.js';
import { tesCredentials } from '../../embedded/objectstore/keys.js';
import { ensureBuilt, until } from '../helpers/edge.js';
import { tempRoot } from '../helpers/nucleus.js';
import { componentProcesses } from '../helpers/procs.js';

/**
 * The packaging build for real: Node.js runtime and code ZIPs for linux-x64 and linux-arm64 (the
 * arm64 native packages and both Node.js builds come from the npm registry), production files
 * only, digests in the recipes, a model update that is the model, the x64 output deployed as
 * built onto the local nucleus (unzipped there, digest-checked, run on the runtime's node), and
 * `loupe publish` with the Greengrass control plane mocked (exact request shapes) and the
 * artefacts uploaded to the real local S3.
 */
let root: string;
let build: BuildResult;

function zipEntries(path: string): Promise<string[]> {
  return new Promise((res, rej) => {
    yauzl.open(path, { lazyEntries: true }, (err, zf) => {
      if (err || !zf) return rej(err);
      const names: string[] = [];
      zf.on('entry', (e: yauzl.Entry) => {
        names.push(e.fileName);
        zf.readEntry();
      });
      zf.on('end', () => res(names));
      zf.on('error', rej);
      zf.readEntry();
    });
  });
}

const sha256b64 = async (p: string) =>
  createHash('sha256')
    .update(await readFile(p))
    .digest('base64');

/** The first bytes and the unix mode of one entry of a ZIP. */
function zipEntryHead(path: string, name: string): Promise<{ head: Buffer; mode: number }> {
  return new Promise((res, rej) => {
    yauzl.open(path, { lazyEntries: true }, (err, zf) => {
      if (err || !zf) return rej(err);
      zf.on('entry', (e: yauzl.Entry) => {
        if (e.fileName !== name) return zf.readEntry();
        zf.openReadStream(e, (e2, stream) => {
          if (e2 || !stream) return rej(e2);
          stream.once('data', (c: Buffer) => {
            stream.destroy();
            zf.close();
            res({ head: c, mode: (e.externalFileAttributes >>> 16) & 0o7777 });
          });
        });
      });
      zf.on('end', () => rej(new Error(`${name} not in ${path}`)));
      zf.readEntry();
    });
  });
}

beforeAll(async () => {
  ensureBuilt();
  root = tempRoot('lpk-');
  build = await buildComponents({ outDir: join(root, 'greengrass-build'), log: silentLogger });
}, 600_000);

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('packaging build', () => {
  it('writes GDK-style output: one ZIP per component and platform, recipes with matching digests', async () => {
    expect(build.recipes.map((r) => `${r.component}-${r.version}`)).toEqual([
      `loupe.NodeRuntime-${NODE_RUNTIME_VERSION}`,
      'loupe.Model-1.0.0',
      'loupe.Camera-0.1.0',
      'loupe.Inference-0.1.0',
      'loupe.Uploader-0.1.0',
    ]);
    for (const r of build.recipes) {
      expect(r.path).toBe(join(root, 'greengrass-build', 'recipes', `${r.component}-${r.version}.json`));
      for (const m of r.recipe.Manifests) {
        for (const a of m.Artifacts ?? []) {
          const file = join(root, 'greengrass-build', 'artifacts', r.component, r.version, a.Uri.split('/').pop()!);
          expect(a.Uri.startsWith(`s3://BUCKET_NAME/${r.component}/${r.version}/`)).toBe(true);
          expect(a.Algorithm).toBe('SHA-256');
          expect(a.Digest).toBe(await sha256b64(file));
        }
      }
    }
    const model = build.recipes[1]!.recipe;
    expect(model.ComponentConfiguration!.DefaultConfiguration).toMatchObject({
      version: '1.0.0',
      sha256: createHash('sha256')
        .update(await readFile(join(root, 'greengrass-build', 'artifacts', 'loupe.Model', '1.0.0', 'model.onnx')))
        .digest('hex'),
    });
  });

  it("puts the traced JS and only the platform's native binaries into each ZIP", async () => {
    const dir = join(root, 'greengrass-build', 'artifacts', 'loupe.Inference', '0.1.0');
    const x64 = await zipEntries(join(dir, 'loupe-inference-linux-x64.zip'));
    const arm = await zipEntries(join(dir, 'loupe-inference-linux-arm64.zip'));
    for (const names of [x64, arm]) {
      expect(names).toContain('package.json');
      expect(names).toContain('dist/components/inference/main.js');
      expect(names).toContain('dist/components/detector/detector.js');
      expect(names).toContain('dist/components/model/verify.js');
      // shared code and contracts travel with the component that imports them
      expect(names).toContain('dist/lib/errors.js');
      expect(names).toContain('dist/contracts/topics.js');
      expect(names.some((n) => n.startsWith('dist/cloud/') || n.startsWith('dist/embedded/'))).toBe(false);
      expect(names.some((n) => n.startsWith('dist/components/uploader/'))).toBe(false); // traced, not the whole dist
      // Production files only: no source maps, typings, TypeScript or C sources, docs, tests, examples, dotfiles.
      expect(names.filter((n) => /\.(map|ts|mts|cts|md|cc|h|gyp)$/.test(n) && !/(^|\/)licen[cs]e[^/]*$/i.test(n))).toEqual([]);
      expect(names.filter((n) => /(^|\/)(tests?|__tests__|examples?|docs?|benchmarks?)\//.test(n))).toEqual([]);
      expect(names.filter((n) => /\/\.[^/]+$/.test(n))).toEqual([]);
      expect(names.some((n) => n.startsWith('node_modules/@types/'))).toBe(false);
      // The CDK app (cloud/infra) and its tools are development dependencies: never on a device.
      expect(
        names.filter((n) =>
          /^node_modules\/(aws-cdk-lib|aws-cdk|constructs|cdk-nag|asl-validator|@aws-sdk\/client-(sfn|dynamodb|iot))\//.test(n),
        ),
      ).toEqual([]);
      expect(
        names.some(
          (n) =>
            n.startsWith('node_modules/aws-crt/source/') ||
            n.startsWith('node_modules/sharp/src/') ||
            n.startsWith('node_modules/onnxruntime-node/script/'),
        ),
      ).toBe(false);
      expect(names.some((n) => /onnxruntime-node\/bin\/napi-v\d+\/(darwin|win32)\//.test(n))).toBe(false);
      expect(names.some((n) => n.includes('-musl'))).toBe(false);
      // What a program needs is there: every package's package.json and LICENSE stay.
      expect(names).toContain('node_modules/onnxruntime-node/package.json');
      expect(names).toContain('node_modules/zod/package.json');
      expect(names).toContain('node_modules/aws-crt/LICENSE');
    }
    expect(x64.some((n) => n.includes('onnxruntime-node/bin/napi-v6/linux/x64/onnxruntime_binding.node'))).toBe(true);
    expect(x64.some((n) => n.includes('/linux/arm64/'))).toBe(false);
    expect(x64.some((n) => n.startsWith('node_modules/@img/sharp-linux-x64/'))).toBe(true);
    expect(arm.some((n) => n.includes('onnxruntime-node/bin/napi-v6/linux/arm64/onnxruntime_binding.node'))).toBe(true);
    expect(arm.some((n) => n.includes('/linux/x64/'))).toBe(false);
    expect(arm.some((n) => n.startsWith('node_modules/@img/sharp-linux-arm64/lib/'))).toBe(true);
    expect(arm.some((n) => n.startsWith('node_modules/@img/sharp-libvips-linux-arm64/lib/'))).toBe(true);
    expect(arm.some((n) => n.startsWith('node_modules/@img/sharp-linux-x64/'))).toBe(false);
    expect(arm.some((n) => n.startsWith('node_modules/aws-crt/dist/bin/linux-arm64-glibc/'))).toBe(true);
    expect(arm.some((n) => n.startsWith('node_modules/aws-crt/dist/bin/linux-x64'))).toBe(false);
    expect(x64.some((n) => n.startsWith('node_modules/aws-crt/dist/bin/linux-x64-glibc/'))).toBe(true);
    expect(x64.filter((n) => n.startsWith('node_modules/aws-crt/dist/bin/')).map((n) => n.split('/')[4])).toEqual(['linux-x64-glibc']);
  });

  it('packs Node.js for each platform as loupe.NodeRuntime: bin/node (executable) and its LICENSE', async () => {
    const dir = join(root, 'greengrass-build', 'artifacts', 'loupe.NodeRuntime', NODE_RUNTIME_VERSION);
    for (const [plat, machine] of [
      ['linux-x64', 62],
      ['linux-arm64', 183],
    ] as const) {
      const zip = join(dir, `node-${plat}.zip`);
      expect(await zipEntries(zip)).toEqual(['LICENSE', 'bin/node']);
      const node = await zipEntryHead(zip, 'bin/node');
      // An ELF executable for the platform's machine (EM_X86_64 = 62, EM_AARCH64 = 183).
      expect(node.head.subarray(0, 4).toString('latin1')).toBe('\x7fELF');
      expect(node.head.readUInt16LE(18)).toBe(machine);
      expect(node.mode & 0o111).toBe(0o111);
    }
  });

  it('a model update is the model: a new loupe.Model version downloads within 10% of model.onnx', async () => {
    const built = build.recipes.find((r) => r.component === 'loupe.Model')!.recipe;
    const onnx = join(root, 'greengrass-build', 'artifacts', 'loupe.Model', '1.0.0', 'model.onnx');
    const card = join(root, 'greengrass-build', 'artifacts', 'loupe.Model', '1.0.0', 'card.json');
    // The next version as `loupe` republishes it (cloud/publish), derived from the recipe the fleet runs.
    const next = buildModelComponent({
      baseRecipe: built as unknown as Record<string, unknown>,
      version: '1.0.1',
      files: [
        { name: 'model.onnx', path: onnx },
        { name: 'card.json', path: card },
      ],
      uriFor: (f) => `s3://b/loupe.Model/1.0.1/${f.name}`,
    });
    const manifests = (next.recipe as { Manifests: { Platform?: { os?: string; architecture?: string }; Artifacts?: { Uri: string }[] }[] })
      .Manifests;
    const modelBytes = (await stat(onnx)).size;
    for (const arch of ['amd64', 'aarch64']) {
      // The manifest a linux device of this architecture picks, and the bytes of its artefacts.
      const m = manifests.find((x) => x.Platform?.os === 'linux' && (!x.Platform.architecture || x.Platform.architecture === arch))!;
      const files = (m.Artifacts ?? []).map((a) => a.Uri.split('/').pop()!);
      expect(files).toEqual(['model.onnx', 'card.json']);
      const bytes = (await stat(onnx)).size + (await stat(card)).size;
      console.log(
        `model update (${arch}): ${bytes} bytes downloaded for a ${modelBytes}-byte model.onnx (${(bytes / modelBytes).toFixed(4)}x)`,
      );
      expect(bytes).toBeLessThanOrEqual(modelBytes * 1.1);
    }
  });

  it('is deterministic: the same inputs give the same digest', async () => {
    const again = join(root, 'again.zip');
    await buildComponentZip('loupe.Camera', 'linux-x64', again, '0.1.0', silentLogger);
    expect(await sha256b64(again)).toBe(
      await sha256b64(join(root, 'greengrass-build', 'artifacts', 'loupe.Camera', '0.1.0', 'loupe-camera-linux-x64.zip')),
    );
  });

  it("the built x64 components run on the local nucleus as packaged (unzipped, digest-checked), on loupe.NodeRuntime's node", async () => {
    const store = await startObjectStore({ dir: join(root, 's3'), buckets: ['loupe-incoming'] });
    const nucleus = new Nucleus({ root: join(root, 'gg'), thingName: 'pkg-test', credentials: () => tesCredentials(store.keysFile) });
    await nucleus.start();
    const client = await mqtt.connectAsync(nucleus.mqttUrl!);
    const results: Record<string, unknown>[] = [];
    await client.subscribeAsync('loupe/pkg-test/results', { qos: 1 });
    client.on('message', (_t, p) => results.push(JSON.parse(p.toString()) as Record<string, unknown>));
    try {
      const rec = await nucleus.deploy({
        recipeDir: join(root, 'greengrass-build', 'recipes'),
        artifactDir: join(root, 'greengrass-build', 'artifacts'),
        merge: { 'loupe.Model': '1.0.0', 'loupe.Camera': '0.1.0', 'loupe.Inference': '0.1.0', 'loupe.Uploader': '0.1.0' },
        configurationUpdate: {
          'loupe.Camera': {
            merge: {
              cameras: [
                {
                  name: 'pk',
                  source: { type: 'folder', path: join(datasetDir('metal-tags'), 'bad'), mode: 'once' },
                  trigger: { type: 'interval', fps: 5 },
                },
              ],
            },
          },
          'loupe.Uploader': { merge: { endpoint: store.endpoint, forcePathStyle: true } },
        },
      });
      expect(rec.status, rec.failureCause).toBe('SUCCEEDED');
      await until(() => results.length >= 3, 120_000, 'results from the packaged components');
      expect(
        Object.fromEntries(
          nucleus
            .status()
            .components.filter((c) => c.name.startsWith('loupe.'))
            .map((c) => [c.name, c.state]),
        ),
      ).toEqual({
        'loupe.NodeRuntime': 'FINISHED',
        'loupe.Model': 'FINISHED',
        'loupe.Camera': 'RUNNING',
        'loupe.Inference': 'RUNNING',
        'loupe.Uploader': 'RUNNING',
      });
      const inferenceLog = await nucleus.readLog('loupe.Inference');
      expect(inferenceLog).toContain('model loaded');
      const node = join(
        root,
        'gg',
        'packages',
        'artifacts-unarchived',
        'loupe.NodeRuntime',
        NODE_RUNTIME_VERSION,
        'node-linux-x64',
        'bin',
        'node',
      );
      const procs = componentProcesses(join(root, 'gg')).filter((p) => p.exe === node);
      expect(procs.map((p) => p.component)).toEqual(['loupe.Camera', 'loupe.Inference', 'loupe.Uploader']);
    } finally {
      await client.endAsync(true);
      await nucleus.stop();
      await store.stop();
    }
  });
});

describe('loupe publish', () => {
  it('uploads every artefact to S3, creates each component version with the exact recipe and waits until it is DEPLOYABLE', async () => {
    const store = await startObjectStore({ dir: join(root, 's3-publish'), buckets: ['loupe-components'] });
    const s3 = new S3Client(store.clientConfig);
    const gg = mockClient(GreengrassV2Client);
    gg.on(CreateComponentVersionCommand).callsFake((input: { inlineRecipe: Uint8Array }) => {
      const r = JSON.parse(Buffer.from(input.inlineRecipe).toString('utf8')) as { ComponentName: string; ComponentVersion: string };
      return {
        arn: `arn:aws:greengrass:us-east-1:123456789012:components:${r.ComponentName}:versions:${r.ComponentVersion}`,
        componentName: r.ComponentName,
        componentVersion: r.ComponentVersion,
        status: { componentState: 'REQUESTED' },
      };
    });
    // Greengrass checks each version a moment later.
    const asked = new Map<string, number>();
    gg.on(DescribeComponentCommand).callsFake((input: { arn: string }) => {
      asked.set(input.arn, (asked.get(input.arn) ?? 0) + 1);
      return { arn: input.arn, status: { componentState: asked.get(input.arn)! < 2 ? 'INITIATED' : 'DEPLOYABLE' } };
    });
    try {
      const out = await publishComponents({
        buildDir: join(root, 'greengrass-build'),
        bucket: 'loupe-components',
        s3,
        greengrass: new GreengrassV2Client({ region: 'us-east-1' }),
        pollMs: 5,
      });
      expect(out.map((c) => `${c.component}@${c.version}:${c.status}`)).toEqual([
        'loupe.Camera@0.1.0:DEPLOYABLE',
        'loupe.Inference@0.1.0:DEPLOYABLE',
        'loupe.Model@1.0.0:DEPLOYABLE',
        `loupe.NodeRuntime@${NODE_RUNTIME_VERSION}:DEPLOYABLE`,
        'loupe.Uploader@0.1.0:DEPLOYABLE',
      ]);
      expect([...asked.values()]).toEqual([2, 2, 2, 2, 2]);
      expect(gg.commandCalls(DescribeComponentCommand).map((c) => c.args[0].input)).toEqual(
        out.flatMap((c) => [{ arn: c.arn }, { arn: c.arn }]),
      );
      const calls = gg.commandCalls(CreateComponentVersionCommand);
      expect(calls).toHaveLength(5);
      for (const call of calls) {
        const input = call.args[0].input;
        expect(Object.keys(input).sort()).toEqual(['clientToken', 'inlineRecipe']);
        const sent = JSON.parse(Buffer.from(input.inlineRecipe!).toString('utf8')) as {
          ComponentName: string;
          ComponentVersion: string;
          Manifests: { Artifacts?: { Uri: string; Digest: string }[] }[];
        };
        expect(input.clientToken).toBe(`${sent.ComponentName}-${sent.ComponentVersion}`);
        const built = build.recipes.find((r) => r.component === sent.ComponentName)!.recipe;
        expect(sent).toEqual(JSON.parse(JSON.stringify(built).replaceAll('s3://BUCKET_NAME/', 's3://loupe-components/')));
        for (const m of sent.Manifests) {
          for (const a of m.Artifacts ?? []) {
            const key = a.Uri.replace('s3://loupe-components/', '');
            const obj = Buffer.from(
              await (await s3.send(new GetObjectCommand({ Bucket: 'loupe-components', Key: key }))).Body!.transformToByteArray(),
            );
            expect(createHash('sha256').update(obj).digest('base64')).toBe(a.Digest);
          }
        }
      }
      await expect(
        publishComponents({
          buildDir: join(root, 'nowhere'),
          bucket: 'loupe-components',
          s3,
          greengrass: new GreengrassV2Client({ region: 'us-east-1' }),
        }),
      ).rejects.toThrow(/nowhere: has no recipes\/: run `loupe build` first/);
      await expect(publishComponents({ buildDir: join(root, 'greengrass-build'), bucket: 'Bad_Bucket', s3 })).rejects.toThrow(
        /--bucket Bad_Bucket: is not a valid S3 bucket name/,
      );
      // A version Greengrass refuses stops the publish with its reason.
      gg.on(DescribeComponentCommand).resolves({
        status: {
          componentState: 'FAILED',
          message: 'The artifact s3://loupe-components/loupe.Camera/0.1.0/loupe-camera-linux-x64.zip is not accessible',
        },
      });
      await expect(
        publishComponents({
          buildDir: join(root, 'greengrass-build'),
          bucket: 'loupe-components',
          s3,
          greengrass: new GreengrassV2Client({ region: 'us-east-1' }),
          components: ['loupe.Camera'],
          pollMs: 5,
        }),
      ).rejects.toThrow(
        'arn:aws:greengrass:us-east-1:123456789012:components:loupe.Camera:versions:0.1.0: Greengrass says the component version is FAILED: The artifact s3://loupe-components/loupe.Camera/0.1.0/loupe-camera-linux-x64.zip is not accessible',
      );
    } finally {
      gg.restore();
      s3.destroy();
      await store.stop();
    }
  });
});
