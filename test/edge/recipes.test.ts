import { Ajv } from 'ajv';
import { existsSync, readFileSync, realpathSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import semver from 'semver';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { projectRoot } from '../../lib/paths.js';
import { cameraConfigSchema } from '../../components/camera/config.js';
import { inferenceConfigSchema } from '../../components/inference/config.js';
import { parseConfig } from '../../components/ipc/config.js';
import { modelConfigSchema } from '../../components/model/config.js';
import { uploaderConfigSchema } from '../../components/uploader/config.js';
import {
  BUILD_COMPONENTS,
  CODE_COMPONENTS,
  loadSourceRecipe,
  localRecipe,
  NODE_RUNTIME,
  renderRecipe,
  ZIP_BASE,
  type Recipe,
} from '../../components/build/recipes.js';
import { NODE_RUNTIME_VERSION } from '../../components/build/node-runtime.js';
import { PROGRAMS } from '../../components/build/build.js';
import { recipeErrors } from '../../components/build/recipe-schema.js';
import { Authorizer } from '../../embedded/nucleus/authorization.js';

const SHA = 'a'.repeat(64);
const rendered = (name: (typeof BUILD_COMPONENTS)[number]): Recipe =>
  renderRecipe(loadSourceRecipe(name), { version: '1.2.3', model: { name: 'metal-tags', sha256: SHA } });
const withDigests = (r: Recipe): Recipe => ({
  ...r,
  Manifests: r.Manifests.map((m) => ({
    ...m,
    Artifacts: (m.Artifacts ?? []).map((a) => ({ ...a, Digest: 'q'.repeat(43) + '=', Algorithm: 'SHA-256' })),
  })),
});

/** What each component may do over IPC: least privilege, stated once here and checked against the recipes. */
const EXPECTED_ACCESS: Record<string, Record<string, string[]>> = {
  'loupe.Camera': {
    'aws.greengrass#PublishToTopic': ['loupe/frames', 'loupe/health/camera'],
    'aws.greengrass#SubscribeToTopic': [
      'loupe/inference/ready',
      'loupe/results',
      'loupe/trigger',
      'loupe/uploader/handled',
      'loupe/uploader/ready',
    ],
    'aws.greengrass#PublishToIoTCore': ['loupe/+/health'],
    'aws.greengrass#SubscribeToIoTCore': ['loupe/+/trigger'],
  },
  'loupe.Inference': {
    'aws.greengrass#PublishToTopic': [
      'loupe/inference/ready',
      'loupe/model/query',
      'loupe/model/status',
      'loupe/results',
      'loupe/telemetry/inference',
    ],
    'aws.greengrass#SubscribeToTopic': ['loupe/frames', 'loupe/model'],
    'aws.greengrass#PublishToIoTCore': ['loupe/+/results', 'loupe/+/telemetry'],
  },
  'loupe.Uploader': {
    'aws.greengrass#PublishToTopic': ['loupe/telemetry/uploader', 'loupe/uploader/handled', 'loupe/uploader/ready'],
    'aws.greengrass#SubscribeToTopic': ['loupe/results'],
    'aws.greengrass#PublishToIoTCore': ['loupe/+/telemetry'],
  },
};

describe('recipes', () => {
  it('authorize their IoT Core topics on a stock Greengrass nucleus (no interpolateComponentConfiguration)', () => {
    // A stock nucleus takes accessControl values as written: "{iot:thingName}" would stay
    // literal and deny every IoT Core call. "+" (one MQTT level, no "/") allows this thing's
    // topic; the device certificate's IoT policy keeps each thing to its own topics in the cloud.
    const thing = 'line-7-cam';
    const wants: [string, string, string][] = [
      ['loupe.Camera', 'aws.greengrass#PublishToIoTCore', `loupe/${thing}/health`],
      ['loupe.Camera', 'aws.greengrass#SubscribeToIoTCore', `loupe/${thing}/trigger`],
      ['loupe.Inference', 'aws.greengrass#PublishToIoTCore', `loupe/${thing}/results`],
      ['loupe.Inference', 'aws.greengrass#PublishToIoTCore', `loupe/${thing}/telemetry`],
      ['loupe.Uploader', 'aws.greengrass#PublishToIoTCore', `loupe/${thing}/telemetry`],
    ];
    for (const [name, op, topic] of wants) {
      const a = new Authorizer();
      expect(
        a.setComponentPolicies(
          name,
          rendered(name as (typeof BUILD_COMPONENTS)[number]).ComponentConfiguration!.DefaultConfiguration!.accessControl,
        ),
        name,
      ).toEqual([]);
      expect(a.isAuthorized('aws.greengrass.ipc.mqttproxy', name, op, topic), `${name} ${op} ${topic}`).toBe(true);
      expect(a.isAuthorized('aws.greengrass.ipc.mqttproxy', name, op, `loupe/${thing}/other`), `${name} ${op} other`).toBe(false);
      expect(a.isAuthorized('aws.greengrass.ipc.mqttproxy', name, op, `loupe/a/b/results`), `${name} ${op} two levels`).toBe(false);
    }
  });

  it('are valid Greengrass v2 recipes once rendered (built and local forms)', () => {
    for (const name of BUILD_COMPONENTS) {
      const r = rendered(name);
      expect(recipeErrors(withDigests(r)), name).toEqual([]);
      expect(recipeErrors(localRecipe(r)), `${name} (local)`).toEqual([]);
    }
  });

  it("code components: linux amd64 and aarch64 manifests, each with its own ZIP, run by loupe.NodeRuntime's node (no PATH, no HOME)", () => {
    for (const name of CODE_COMPONENTS) {
      const r = rendered(name);
      expect(r.Manifests.map((m) => `${m.Platform?.os}/${m.Platform?.architecture}`)).toEqual(['linux/amd64', 'linux/aarch64']);
      for (const m of r.Manifests) {
        const plat = m.Platform?.architecture === 'amd64' ? 'linux-x64' : 'linux-arm64';
        expect(m.Artifacts).toEqual([
          {
            Uri: `s3://BUCKET_NAME/COMPONENT_NAME/COMPONENT_VERSION/${ZIP_BASE[name]}-${plat}.zip`,
            Unarchive: 'ZIP',
            Permission: { Read: 'OWNER', Execute: 'NONE' },
          },
        ]);
        // Every step starts an absolute program: the runtime's node on a program in the component's own ZIP.
        const node = `exec "{loupe.NodeRuntime:artifacts:decompressedPath}/node-${plat}/bin/node" "{artifacts:decompressedPath}/${ZIP_BASE[name]}-${plat}/dist/components/`;
        const short = name.replace('loupe.', '').toLowerCase();
        expect((m.Lifecycle.Run as { Script: string }).Script).toBe(`${node}${short}/main.js"`);
        // Inference checks the model at install; the script names loupe.Model's artefact, so a new model re-runs it.
        if (name === 'loupe.Inference') {
          expect(Object.keys(m.Lifecycle)).toEqual(['Setenv', 'Install', 'Run']);
          expect(m.Lifecycle.Install).toEqual({
            Script: `${node}model/verify.js" "{loupe.Model:artifacts:path}/model.onnx" "{loupe.Model:configuration:/sha256}"`,
            Timeout: 300,
          });
        } else expect(Object.keys(m.Lifecycle)).toEqual(['Run']);
      }
    }
  });

  it('loupe.NodeRuntime: per platform a ZIP of node readable and executable by every component user, checked at install', () => {
    const r = rendered(NODE_RUNTIME);
    expect(r.ComponentDependencies).toBeUndefined();
    expect(r.Manifests.map((m) => `${m.Platform?.os}/${m.Platform?.architecture}`)).toEqual(['linux/amd64', 'linux/aarch64']);
    for (const m of r.Manifests) {
      const plat = m.Platform?.architecture === 'amd64' ? 'linux-x64' : 'linux-arm64';
      expect(m.Artifacts).toEqual([
        {
          Uri: `s3://BUCKET_NAME/COMPONENT_NAME/COMPONENT_VERSION/node-${plat}.zip`,
          Unarchive: 'ZIP',
          Permission: { Read: 'ALL', Execute: 'ALL' },
        },
      ]);
      expect(m.Lifecycle).toEqual({ Install: { Script: `"{artifacts:decompressedPath}/node-${plat}/bin/node" --version`, Timeout: 60 } });
    }
  });

  it('loupe.Model carries the model and its card only: one manifest for every platform, no program, no code', () => {
    const r = rendered('loupe.Model');
    expect(r.ComponentDependencies).toBeUndefined();
    expect(r.Manifests).toEqual([
      {
        Platform: { os: 'linux' },
        Lifecycle: {},
        Artifacts: ['model.onnx', 'card.json'].map((f) => ({
          Uri: `s3://BUCKET_NAME/COMPONENT_NAME/COMPONENT_VERSION/${f}`,
          Unarchive: 'NONE',
          Permission: { Read: 'ALL', Execute: 'NONE' },
        })),
      },
    ]);
  });

  it('grant least privilege: explicit operations on explicit topics only', () => {
    for (const name of BUILD_COMPONENTS) {
      const ac = (rendered(name).ComponentConfiguration?.DefaultConfiguration?.accessControl ?? {}) as Record<
        string,
        Record<string, { operations: string[]; resources: string[] }>
      >;
      expect(Object.keys(ac).every((s) => s === 'aws.greengrass.ipc.pubsub' || s === 'aws.greengrass.ipc.mqttproxy')).toBe(true);
      const got: Record<string, string[]> = {};
      for (const policies of Object.values(ac)) {
        for (const p of Object.values(policies)) {
          for (const op of p.operations) {
            expect(op).not.toBe('*');
            got[op] = [...(got[op] ?? []), ...p.resources].sort();
          }
          // No wildcards, except one MQTT level standing for the thing name on IoT Core topics
          // (loupe/+/results): the only way a stock nucleus authorizes per-thing topics.
          for (const res of p.resources) expect(res.replace(/^loupe\/\+\//, 'loupe/THING/')).not.toMatch(/[*#+?]/);
        }
      }
      expect(got, name).toEqual(EXPECTED_ACCESS[name] ?? {});
    }
  });

  it('declare their dependencies: every code component loupe.NodeRuntime (HARD), inference loupe.Model (HARD), the uploader the Token Exchange Service', () => {
    const node = { VersionRequirement: '^20.15.0', DependencyType: 'HARD' };
    expect(rendered('loupe.Camera').ComponentDependencies).toEqual({ 'loupe.NodeRuntime': node });
    expect(rendered('loupe.Inference').ComponentDependencies).toEqual({
      'loupe.NodeRuntime': node,
      'loupe.Model': { VersionRequirement: '>=0.0.0', DependencyType: 'HARD' },
    });
    expect(rendered('loupe.Uploader').ComponentDependencies).toEqual({
      'loupe.NodeRuntime': node,
      'aws.greengrass.TokenExchangeService': { VersionRequirement: '^2.0.0', DependencyType: 'HARD' },
    });
    // The runtime loupe builds satisfies what the components ask for, and what package.json says loupe runs on.
    expect(semver.satisfies(NODE_RUNTIME_VERSION, node.VersionRequirement)).toBe(true);
    const engines = (JSON.parse(readFileSync(join(projectRoot, 'package.json'), 'utf8')) as { engines: { node: string } }).engines.node;
    expect(semver.satisfies(NODE_RUNTIME_VERSION, engines)).toBe(true);
    const setenv = rendered('loupe.Inference').Manifests[0]!.Lifecycle.Setenv as Record<string, string>;
    expect(setenv).toEqual({
      LOUPE_MODEL_PATH: '{loupe.Model:artifacts:path}/model.onnx',
      LOUPE_MODEL_SHA256: '{loupe.Model:configuration:/sha256}',
      LOUPE_MODEL_VERSION: '{loupe.Model:configuration:/version}',
      LOUPE_MODEL_NAME: '{loupe.Model:configuration:/name}',
    });
  });

  it('every component whose code uses an AWS SDK client waits for the Token Exchange Service (HARD)', () => {
    // The SDK finds the device's credentials through AWS_CONTAINER_CREDENTIALS_FULL_URI, which a
    // nucleus gives only to components started after TES: a HARD dependency is what orders that
    // (test/nucleus/tes-address.test.ts; the real nucleus in test/nucleus-diff).
    const packagesOf = (programs: string[]): Set<string> => {
      const seen = new Set<string>();
      const packages = new Set<string>();
      const queue = programs.map((p) => join(projectRoot, 'components', p.replace(/\.js$/, '.ts')));
      while (queue.length) {
        const f = queue.pop()!;
        if (seen.has(f)) continue;
        seen.add(f);
        for (const i of ts.preProcessFile(readFileSync(f, 'utf8'), true, true).importedFiles) {
          if (i.fileName.startsWith('.')) queue.push(resolve(dirname(f), i.fileName).replace(/\.js$/, '.ts'));
          else packages.add(i.fileName);
        }
      }
      return packages;
    };
    const usesAws = CODE_COMPONENTS.filter((c) => [...packagesOf(PROGRAMS[c])].some((p) => p.startsWith('@aws-sdk/client-')));
    expect(usesAws).toContain('loupe.Uploader'); // the tracing sees what it should
    for (const name of usesAws)
      expect(rendered(name).ComponentDependencies?.['aws.greengrass.TokenExchangeService']?.DependencyType, name).toBe('HARD');
  });

  it('the local form runs dist/ with the Node.js running loupe, without loupe.NodeRuntime', () => {
    const r = localRecipe(rendered('loupe.Inference'), '/src/loupe', '/opt/node/bin/node');
    expect(r.ComponentDependencies).toEqual({ 'loupe.Model': { VersionRequirement: '>=0.0.0', DependencyType: 'HARD' } });
    for (const m of r.Manifests) {
      expect(m.Artifacts).toEqual([]);
      expect((m.Lifecycle.Run as { Script: string }).Script).toBe(
        'exec "/opt/node/bin/node" "/src/loupe/dist/components/inference/main.js"',
      );
      expect((m.Lifecycle.Install as { Script: string }).Script).toBe(
        'exec "/opt/node/bin/node" "/src/loupe/dist/components/model/verify.js" "{loupe.Model:artifacts:path}/model.onnx" "{loupe.Model:configuration:/sha256}"',
      );
    }
    expect(localRecipe(rendered('loupe.Model')).Manifests[0]!.Artifacts!.map((a) => a.Uri.split('/').pop())).toEqual([
      'model.onnx',
      'card.json',
    ]);
  });

  it('ship a DefaultConfiguration each component accepts as is', () => {
    const cfg = (n: (typeof BUILD_COMPONENTS)[number]) => rendered(n).ComponentConfiguration!.DefaultConfiguration!;
    expect(() => parseConfig(cameraConfigSchema, cfg('loupe.Camera'), 'loupe.Camera')).not.toThrow();
    expect(() => parseConfig(inferenceConfigSchema, cfg('loupe.Inference'), 'loupe.Inference')).not.toThrow();
    expect(() => parseConfig(uploaderConfigSchema, cfg('loupe.Uploader'), 'loupe.Uploader')).not.toThrow();
    expect(parseConfig(modelConfigSchema, cfg('loupe.Model'), 'loupe.Model')).toMatchObject({
      name: 'metal-tags',
      version: '1.2.3',
      sha256: SHA,
    });
  });

  it('the schema refuses what Greengrass would not take, naming the place', () => {
    const base = withDigests(rendered('loupe.Camera'));
    expect(recipeErrors({ ...base, ComponentVersoin: '1.0.0' })).toEqual(['(root) must NOT have additional properties (ComponentVersoin)']);
    expect(recipeErrors({ ...base, ComponentVersion: '1.0' })[0]).toMatch(/^\/ComponentVersion must match pattern/);
    const badDigest = structuredClone(base);
    badDigest.Manifests[0]!.Artifacts![0]!.Digest = 'abc';
    expect(recipeErrors(badDigest)[0]).toMatch(/^\/Manifests\/0\/Artifacts\/0\/Digest must match pattern/);
    const badOp = structuredClone(base) as Recipe;
    (badOp.ComponentConfiguration!.DefaultConfiguration!.accessControl as Record<string, Record<string, { operations: string[] }>>)[
      'aws.greengrass.ipc.pubsub'
    ]!['loupe.Camera:pubsub:publish']!.operations = ['PublishToTopic'];
    expect(recipeErrors(badOp)[0]).toMatch(
      /accessControl\/aws\.greengrass\.ipc\.pubsub\/loupe\.Camera:pubsub:publish\/operations\/0 must match pattern/,
    );
    const badStep = structuredClone(base);
    badStep.Manifests[0]!.Lifecycle.Run = { Scritp: 'x' };
    expect(recipeErrors(badStep).join(' ')).toMatch(/\/Manifests\/0\/Lifecycle\/Run/);
    // Keys are case-insensitive in Greengrass: a lower-case recipe is the same recipe.
    const lower = JSON.parse(
      JSON.stringify(base).replace(
        /"(RecipeFormatVersion|ComponentName|ComponentVersion|Manifests|Lifecycle|Artifacts|Uri)"/g,
        (_, k: string) => `"${k.toLowerCase()}"`,
      ),
    ) as unknown;
    expect(recipeErrors(lower)).toEqual([]);
  });
});

describe('gdk-config.json', () => {
  // The GDK CLI's configuration rules (gdk/static/config_schema.json): one component per file,
  // version semver or NEXT_PATCH, a build system (custom needs a command), publish bucket + region.
  const gdkSchema = {
    type: 'object',
    required: ['component', 'gdk_version'],
    properties: {
      gdk_version: { type: 'string', pattern: '^\\d+\\.\\d+\\.\\d+$' },
      component: {
        type: 'object',
        minProperties: 1,
        maxProperties: 1,
        additionalProperties: {
          type: 'object',
          required: ['author', 'version', 'build', 'publish'],
          properties: {
            version: { anyOf: [{ enum: ['NEXT_PATCH'] }, { type: 'string', pattern: '^\\d+\\.\\d+\\.\\d+' }] },
            build: {
              type: 'object',
              required: ['build_system', 'custom_build_command'],
              properties: { build_system: { const: 'custom' }, custom_build_command: { type: 'array', minItems: 1 } },
            },
            publish: { type: 'object', required: ['bucket', 'region'] },
          },
        },
      },
    },
  };
  it('one GDK project per component (recipes/<name>/: gdk-config.json + recipe.json), building that component and version with loupe build', () => {
    const validate = new Ajv({ strict: false }).compile(gdkSchema);
    const pkgVersion = (JSON.parse(readFileSync(join(projectRoot, 'package.json'), 'utf8')) as { version: string }).version;
    const versions: Record<string, string> = {
      'loupe.NodeRuntime': NODE_RUNTIME_VERSION,
      'loupe.Model': '1.0.0',
      'loupe.Camera': pkgVersion,
      'loupe.Inference': pkgVersion,
      'loupe.Uploader': pkgVersion,
    };
    const projects = [
      ...BUILD_COMPONENTS.map((c) => ({ component: c, dir: join(projectRoot, 'recipes', c), loupe: '../../bin/loupe.js' })),
      { component: 'loupe.Model', dir: projectRoot, loupe: 'bin/loupe.js' },
    ];
    for (const { component, dir, loupe } of projects) {
      const file = join(dir, 'gdk-config.json');
      const cfg = JSON.parse(readFileSync(file, 'utf8')) as {
        component: Record<string, { version: string; build: { custom_build_command: string[] } }>;
      };
      expect(validate(cfg), `${file}: ${JSON.stringify(validate.errors)}`).toBe(true);
      expect(Object.keys(cfg.component)).toEqual([component]);
      // GDK publishes what it finds under artifacts/<name>/<this version>/: the version loupe build gives the component.
      expect(cfg.component[component]!.version, file).toBe(versions[component]);
      expect(cfg.component[component]!.build.custom_build_command).toEqual([
        'node',
        loupe,
        'build',
        '--component',
        component,
        '--out',
        'greengrass-build',
      ]);
      expect(existsSync(join(dir, 'recipe.json')), `${dir}/recipe.json`).toBe(true);
    }
    // The top-level project is loupe.Model's (rebuilt for every new model); its recipe.json is the one in recipes/.
    expect(realpathSync(join(projectRoot, 'recipe.json'))).toBe(join(projectRoot, 'recipes', 'loupe.Model', 'recipe.json'));
  });
});
