import { createHash } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { copyFile, mkdir, readFile, rm, stat } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import type { Logger } from 'pino';
import { LoupeError } from '../../lib/errors.js';
import { writeFileAtomic } from '../../lib/fsutil.js';
import { silentLogger } from '../../lib/log.js';
import { projectRoot, defaultModelDir } from '../../lib/paths.js';
import {
  loadSourceRecipe,
  PLATFORMS,
  renderRecipe,
  ZIP_BASE,
  type Recipe,
  BUILD_COMPONENTS,
  NODE_RUNTIME,
  type BuildComponentName,
  type CodeComponentName,
} from './recipes.js';
import { buildCodeZip, type CodeBundleInfo, type Platform } from './code-bundle.js';
import { buildNodeRuntimeZip, NODE_RUNTIME_VERSION, nodeRuntimeZipName } from './node-runtime.js';
import { validateRecipe } from './recipe-schema.js';

export type { Platform } from './code-bundle.js';

/**
 * The packaging build: GDK-compatible output in `greengrass-build/`
 *   artifacts/loupe.NodeRuntime/<node version>/node-linux-x64.zip, node-linux-arm64.zip
 *   artifacts/<code component>/<version>/<zip base>-linux-x64.zip, ...-linux-arm64.zip
 *   artifacts/loupe.Model/<model version>/model.onnx, card.json   (no code: a model update is the model)
 *   recipes/<component>-<version>.json   (digests filled in, validated against the recipe schema)
 * One manifest and one artefact per platform, so a device downloads only its own binaries.
 * ZIPs are deterministic (sorted entries, fixed timestamps), so the same inputs give the same
 * digests: `gdk component build` (which runs this per component) gives the same bytes.
 */
export interface BuildOptions {
  outDir?: string;
  /** version of the code components (default: package.json's) */
  version?: string;
  components?: BuildComponentName[];
  platforms?: Platform[];
  modelDir?: string;
  modelName?: string;
  modelVersion?: string;
  log?: Logger;
}

export interface BuiltArtifact {
  component: string;
  version: string;
  file: string;
  path: string;
  bytes: number;
  digest: string; // base64 SHA-256, as in recipes
  /** the platform this artefact is for; absent when every platform downloads it (the model) */
  platform?: Platform;
}

export interface BuildResult {
  outDir: string;
  recipes: { component: string; version: string; path: string; recipe: Recipe }[];
  artifacts: BuiltArtifact[];
}

async function digestB64(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const c of createReadStream(path)) h.update(c as Buffer);
  return h.digest('base64');
}

/** The programs in each code component's bundle (under dist/components/). */
export const PROGRAMS: Record<CodeComponentName, string[]> = {
  'loupe.Camera': ['camera/main.js'],
  // Inference's Install step checks each new model before Inference runs on it (model/verify.ts).
  'loupe.Inference': ['inference/main.js', 'model/verify.js'],
  'loupe.Uploader': ['uploader/main.js'],
};

/** The artefact ZIP of one code component for one platform. */
export async function buildComponentZip(
  component: CodeComponentName,
  platform: Platform,
  path: string,
  version: string,
  log: Logger,
): Promise<CodeBundleInfo> {
  const programs = PROGRAMS[component].map((p) => join(projectRoot, 'dist', 'components', p));
  return buildCodeZip(programs, platform, path, { name: ZIP_BASE[component], version, label: component }, log);
}

export async function buildComponents(opts: BuildOptions = {}): Promise<BuildResult> {
  const log = opts.log ?? silentLogger;
  const outDir = resolve(opts.outDir ?? join(projectRoot, 'greengrass-build'));
  const version = opts.version ?? (JSON.parse(await readFile(join(projectRoot, 'package.json'), 'utf8')) as { version: string }).version;
  const platforms = opts.platforms ?? (Object.values(PLATFORMS) as Platform[]);
  const components = BUILD_COMPONENTS.filter((c) => !opts.components || opts.components.includes(c));
  const modelDir = resolve(opts.modelDir ?? defaultModelDir());
  const modelVersion = opts.modelVersion ?? '1.0.0';
  const result: BuildResult = { outDir, recipes: [], artifacts: [] };
  await mkdir(join(outDir, 'recipes'), { recursive: true });
  for (const component of components) {
    const v = component === 'loupe.Model' ? modelVersion : component === NODE_RUNTIME ? NODE_RUNTIME_VERSION : version;
    const artDir = join(outDir, 'artifacts', component, v);
    await rm(artDir, { recursive: true, force: true });
    await mkdir(artDir, { recursive: true });
    const digests = new Map<string, string>();
    const add = async (file: string, platform?: Platform) => {
      const path = join(artDir, file);
      const digest = await digestB64(path);
      digests.set(file, digest);
      result.artifacts.push({
        component,
        version: v,
        file,
        path,
        bytes: (await stat(path)).size,
        digest,
        ...(platform ? { platform } : {}),
      });
    };
    let model: { name: string; sha256: string } | undefined;
    if (component === 'loupe.Model') {
      const onnx = join(modelDir, 'model.onnx');
      if (!existsSync(onnx)) throw new LoupeError('build.model', 'has no model.onnx', { input: modelDir });
      const card = join(modelDir, 'card.json');
      if (!existsSync(card))
        throw new LoupeError('build.model', 'has no card.json (the model card ships with the model; `loupe card` writes one)', {
          input: modelDir,
        });
      await copyFile(onnx, join(artDir, 'model.onnx'));
      await copyFile(card, join(artDir, 'card.json'));
      await add('model.onnx');
      await add('card.json');
      model = { name: opts.modelName ?? basename(modelDir), sha256: Buffer.from(digests.get('model.onnx')!, 'base64').toString('hex') };
    } else {
      for (const platform of platforms) {
        const t0 = Date.now();
        const file = component === NODE_RUNTIME ? nodeRuntimeZipName(platform) : `${ZIP_BASE[component]}-${platform}.zip`;
        const info =
          component === NODE_RUNTIME
            ? await buildNodeRuntimeZip(platform, join(artDir, file), log)
            : await buildComponentZip(component, platform, join(artDir, file), v, log);
        await add(file, platform);
        log.info({ component, platform, ...info, bytes: result.artifacts.at(-1)!.bytes, ms: Date.now() - t0 }, 'artifact built');
      }
    }
    const recipe = renderRecipe(loadSourceRecipe(component), { version: v, ...(model ? { model } : {}) });
    // Keep the manifests whose platform was built (and platform-independent ones); fill URIs and digests.
    const built = new Set<string>(platforms);
    recipe.Manifests = recipe.Manifests.filter((m) => {
      const arch = m.Platform?.architecture as keyof typeof PLATFORMS | undefined;
      return !arch || built.has(PLATFORMS[arch]);
    }).map((m) => ({
      ...m,
      Artifacts: (m.Artifacts ?? []).map((a) => {
        const file = a.Uri.split('/').pop()!;
        const digest = digests.get(file);
        if (!digest) throw new LoupeError('build.recipe', `artefact ${file} was not built`, { input: component });
        return {
          ...a,
          Uri: a.Uri.replace('COMPONENT_NAME', component).replace('COMPONENT_VERSION', v),
          Digest: digest,
          Algorithm: 'SHA-256',
        };
      }),
    }));
    validateRecipe(recipe, `${component}-${v}`);
    const path = join(outDir, 'recipes', `${component}-${v}.json`);
    await writeFileAtomic(path, JSON.stringify(recipe, null, 2) + '\n');
    result.recipes.push({ component, version: v, path, recipe });
  }
  return result;
}
