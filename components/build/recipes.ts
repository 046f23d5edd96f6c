import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { LoupeError } from '../../lib/errors.js';
import { projectRoot } from '../../lib/paths.js';

/**
 * The loupe component recipes: source recipes live in `recipes/<name>/recipe.json`, beside the
 * component's `gdk-config.json` (one GDK project per component), GDK style, with
 * `{COMPONENT_VERSION}` and `s3://BUCKET_NAME/COMPONENT_NAME/COMPONENT_VERSION/<file>`
 * placeholders. From them come
 *  - the built recipes for AWS (greengrass-build/recipes): version, model digest and artefact
 *    digests filled in (build.ts), the bucket at publish time (publish.ts);
 *  - the local recipes for loupe's own nucleus (`loupe edge up`): the same recipe, but the
 *    program is run from this checkout's dist/ by the Node.js running loupe instead of an
 *    unpacked artefact ZIP by loupe.NodeRuntime's node, so a local run needs no packaging step.
 *    Everything else (configuration, accessControl, the other dependencies, model artefacts with
 *    digests) is what a device gets.
 */
/** The four loupe edge components (what `loupe edge up` deploys). */
export const COMPONENTS = ['loupe.Model', 'loupe.Camera', 'loupe.Inference', 'loupe.Uploader'] as const;
export type ComponentName = (typeof COMPONENTS)[number];

/** The Node.js runtime component the code components depend on (recipes/loupe.NodeRuntime). */
export const NODE_RUNTIME = 'loupe.NodeRuntime';
/** Everything `loupe build` packages, in build order. */
export const BUILD_COMPONENTS = [NODE_RUNTIME, ...COMPONENTS] as const;
export type BuildComponentName = (typeof BUILD_COMPONENTS)[number];

/** The components whose artefact is compiled JS + node_modules (one ZIP per platform). */
export type CodeComponentName = Exclude<ComponentName, 'loupe.Model'>;
export const CODE_COMPONENTS: readonly CodeComponentName[] = ['loupe.Camera', 'loupe.Inference', 'loupe.Uploader'];

/** Artefact ZIP base name per code component (`<base>-linux-x64.zip`, `<base>-linux-arm64.zip`). */
export const ZIP_BASE: Record<CodeComponentName, string> = {
  'loupe.Camera': 'loupe-camera',
  'loupe.Inference': 'loupe-inference',
  'loupe.Uploader': 'loupe-uploader',
};

/** Node platform name per Greengrass manifest architecture. */
export const PLATFORMS = { amd64: 'linux-x64', aarch64: 'linux-arm64' } as const;

export type Recipe = Record<string, unknown> & {
  ComponentName: string;
  ComponentVersion: string;
  Manifests: Manifest[];
  ComponentConfiguration?: { DefaultConfiguration?: Record<string, unknown> };
  ComponentDependencies?: Record<string, { VersionRequirement: string; DependencyType?: string }>;
};
export interface Artifact {
  Uri: string;
  Digest?: string;
  Algorithm?: string;
  Unarchive?: string;
  Permission?: { Read?: string; Execute?: string };
}
export interface Manifest {
  Platform?: { os?: string; architecture?: string };
  Lifecycle: Record<string, unknown>;
  Artifacts?: Artifact[];
}

export function loadSourceRecipe(name: BuildComponentName, dir = join(projectRoot, 'recipes')): Recipe {
  const file = join(dir, name, 'recipe.json');
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as Recipe;
  } catch (e) {
    throw new LoupeError('recipe.read', `cannot read the source recipe: ${(e as Error).message}`, { input: file });
  }
}

export interface RenderOptions {
  version: string;
  /** for loupe.Model: what the model is */
  model?: { name: string; sha256: string };
}

/** Fill the version (and for loupe.Model the model's name and digest) into a source recipe. */
export function renderRecipe(src: Recipe, opts: RenderOptions): Recipe {
  const subst = (s: string) =>
    s
      .replaceAll('{COMPONENT_VERSION}', opts.version)
      .replaceAll('MODEL_SHA256', opts.model?.sha256 ?? 'MODEL_SHA256')
      .replaceAll('MODEL_NAME', opts.model?.name ?? 'MODEL_NAME');
  const r = mapStrings(structuredClone(src), subst) as Recipe;
  if (r.ComponentName === 'loupe.Model' && !opts.model)
    throw new LoupeError('recipe.model', 'loupe.Model needs the model name and SHA-256', { input: 'loupe.Model' });
  return r;
}

/**
 * The recipe for loupe's local nucleus: run the program from `root` (this checkout, built) with
 * this Node binary instead of loupe.NodeRuntime's, and drop the code ZIP artefacts and the
 * dependency on loupe.NodeRuntime. Model artefacts stay, with their digests.
 */
export function localRecipe(r: Recipe, root = projectRoot, nodeBin = process.execPath): Recipe {
  const out = structuredClone(r);
  const base = ZIP_BASE[r.ComponentName as CodeComponentName] as string | undefined;
  if (out.ComponentDependencies) {
    delete out.ComponentDependencies[NODE_RUNTIME];
    if (Object.keys(out.ComponentDependencies).length === 0) delete out.ComponentDependencies;
  }
  out.Manifests = out.Manifests.map((m) => {
    const arch = m.Platform?.architecture as keyof typeof PLATFORMS | undefined;
    const plat = arch ? PLATFORMS[arch] : 'linux-x64';
    const runtimeNode = `{${NODE_RUNTIME}:artifacts:decompressedPath}/node-${plat}/bin/node`;
    const zipDir = base ? `{artifacts:decompressedPath}/${base}-${plat}/` : undefined;
    const lifecycle = mapStrings(m.Lifecycle, (s) => {
      let t = s.replaceAll(runtimeNode, nodeBin);
      if (zipDir) t = t.replaceAll(zipDir, `${root}/`);
      return t;
    }) as Record<string, unknown>;
    return { ...m, Lifecycle: lifecycle, Artifacts: (m.Artifacts ?? []).filter((a) => !a.Uri.endsWith('.zip')) };
  });
  return out;
}

function mapStrings(v: unknown, f: (s: string) => string): unknown {
  if (typeof v === 'string') return f(v);
  if (Array.isArray(v)) return v.map((x) => mapStrings(x, f));
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, mapStrings(x, f)]));
  return v;
}
