import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { chmod, copyFile, mkdir, readdir } from 'node:fs/promises';
import { basename, dirname, extname, join, resolve, sep } from 'node:path';
import { pipeline } from 'node:stream/promises';
import yauzl from 'yauzl';
import type { Manifest, Recipe } from '../../components/build/recipes.js';
import { interpolate, type ComponentPaths } from '../../embedded/nucleus/componentmanager/variables.js';

/**
 * Components for the REAL Greengrass nucleus defined inline in its init config (`services`),
 * built from recipes and artefact folders (e.g. `greengrass-build/`), for a nucleus that cannot
 * make local deployments (no aws.greengrass.Cli). What a deployment would do, done here the way
 * the nucleus source does it:
 *  - the manifest for this platform is chosen; its artefacts are put into
 *    `<root>/packages/artifacts/<name>/<version>/` (digest checked), ZIPs unpacked into
 *    `<root>/packages/artifacts-unarchived/<name>/<version>/<zip name>/` with the modes in the
 *    ZIP ignored and the recipe's Permission applied to every file (ComponentManager,
 *    Unarchiver, Permissions.setArtifactPermission); ownership is left to the nucleus, which
 *    hands the files to the component's user when it installs it (RunWithPathOwnershipHandler);
 *  - the service entry is what KernelConfigResolver writes: componentType, version,
 *    dependencies as `name:TYPE`, the DefaultConfiguration (plus a merge), and the lifecycle
 *    with recipe variables interpolated, since the nucleus interpolates only at deployment.
 */
export interface InlineComponent {
  recipe: Recipe;
  /** folder holding the artefact files named by the recipe's URIs */
  artifactDir: string;
  /** merged into the DefaultConfiguration (a deployment's configurationUpdate.merge) */
  merge?: Record<string, unknown>;
}

export interface InlineOptions {
  root: string;
  thingName: string;
  architecture: 'amd64' | 'aarch64';
}

function deepMerge(a: Record<string, unknown>, b: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...a };
  for (const [k, v] of Object.entries(b)) {
    const cur = out[k];
    out[k] =
      v && typeof v === 'object' && !Array.isArray(v) && cur && typeof cur === 'object' && !Array.isArray(cur)
        ? deepMerge(cur as Record<string, unknown>, v as Record<string, unknown>)
        : v;
  }
  return out;
}

/** The manifest a linux device of `architecture` takes: the first one whose platform matches. */
export function manifestFor(recipe: Recipe, architecture: string): Manifest {
  const m = recipe.Manifests.find(
    (x) =>
      (!x.Platform?.os || x.Platform.os === 'linux' || x.Platform.os === '*') &&
      (!x.Platform?.architecture || x.Platform.architecture === architecture || x.Platform.architecture === '*'),
  );
  if (!m) throw new Error(`${recipe.ComponentName}: no manifest for linux/${architecture}`);
  return m;
}

/** Permission to a file mode as the nucleus sets it (the nucleus runs as root: no owner write). */
function modeOf(p: { Read?: string; Execute?: string } | undefined): number {
  const read = (p?.Read ?? 'OWNER').toUpperCase();
  const exec = (p?.Execute ?? 'NONE').toUpperCase();
  let mode = 0;
  if (read === 'OWNER' || read === 'ALL' || exec !== 'NONE') mode |= 0o400;
  if (read === 'ALL' || exec === 'ALL') mode |= 0o044;
  if (exec === 'OWNER' || exec === 'ALL') mode |= 0o100;
  if (exec === 'ALL') mode |= 0o011;
  return mode;
}

async function applyTree(path: string, mode: number): Promise<void> {
  const entries = await readdir(path, { withFileTypes: true });
  await chmod(path, 0o755);
  for (const e of entries) {
    const p = join(path, e.name);
    if (e.isDirectory()) await applyTree(p, mode);
    else await chmod(p, mode);
  }
}

function unzip(zipPath: string, dest: string): Promise<void> {
  const root = resolve(dest);
  return new Promise((res, rej) => {
    yauzl.open(zipPath, { lazyEntries: true }, (err, zf) => {
      if (err || !zf) return rej(err);
      zf.on('error', rej);
      zf.on('end', () => res());
      zf.on('entry', (e: yauzl.Entry) => {
        const out = resolve(root, e.fileName);
        if (!out.startsWith(root + sep)) return rej(new Error(`entry outside the folder: ${e.fileName}`));
        if (e.fileName.endsWith('/')) return void mkdir(out, { recursive: true }).then(() => zf.readEntry(), rej);
        zf.openReadStream(e, (e2, stream) => {
          if (e2 || !stream) return rej(e2);
          mkdir(dirname(out), { recursive: true })
            .then(() => pipeline(stream, createWriteStream(out)))
            .then(() => zf.readEntry(), rej);
        });
      });
      zf.readEntry();
    });
  });
}

async function sha256b64(path: string): Promise<string> {
  const h = createHash('sha256');
  await pipeline(createReadStream(path), h);
  return h.digest('base64');
}

/** Place every component's artefacts under `root` and return the init config's service entries. */
export async function installInline(components: InlineComponent[], o: InlineOptions): Promise<Record<string, Record<string, unknown>>> {
  const paths = new Map<string, ComponentPaths & { version: string }>();
  const chosen = new Map<string, { c: InlineComponent; m: Manifest; configuration: Record<string, unknown> }>();
  for (const c of components) {
    const name = c.recipe.ComponentName;
    const version = c.recipe.ComponentVersion;
    const m = manifestFor(c.recipe, o.architecture);
    const configuration = deepMerge(
      (c.recipe.ComponentConfiguration?.DefaultConfiguration ?? {}) as Record<string, unknown>,
      c.merge ?? {},
    );
    const artifactsPath = join(o.root, 'packages', 'artifacts', name, version);
    const decompressedPath = join(o.root, 'packages', 'artifacts-unarchived', name, version);
    paths.set(name, { version, artifactsPath, decompressedPath, workPath: join(o.root, 'work', name), configuration });
    chosen.set(name, { c, m, configuration });
    await mkdir(artifactsPath, { recursive: true });
    for (const a of m.Artifacts ?? []) {
      const file = basename(a.Uri);
      const dest = join(artifactsPath, file);
      await copyFile(join(c.artifactDir, file), dest);
      if (a.Digest && (await sha256b64(dest)) !== a.Digest) throw new Error(`${name}: ${file} does not match its digest`);
      const mode = modeOf(a.Permission);
      await chmod(dest, mode);
      if ((a.Unarchive ?? 'NONE').toUpperCase() === 'ZIP') {
        const into = join(decompressedPath, basename(file, extname(file)));
        await unzip(dest, into);
        await applyTree(into, mode);
        await chmod(decompressedPath, 0o755);
      }
    }
    for (let d = artifactsPath; d.startsWith(join(o.root, 'packages')); d = dirname(d)) await chmod(d, 0o755);
  }
  const services: Record<string, Record<string, unknown>> = {};
  for (const [name, { c, m, configuration }] of chosen) {
    const deps = c.recipe.ComponentDependencies ?? {};
    const own = paths.get(name)!;
    const dependencies = new Map([...Object.keys(deps)].filter((d) => paths.has(d)).map((d) => [d, paths.get(d)!]));
    const ctx = { ...own, componentName: name, rootPath: o.root, thingName: o.thingName, dependencies };
    const unresolved: string[] = [];
    const interp = (v: unknown): unknown =>
      typeof v === 'string'
        ? interpolate(v, ctx, (x) => unresolved.push(x))
        : Array.isArray(v)
          ? v.map(interp)
          : v && typeof v === 'object'
            ? Object.fromEntries(Object.entries(v).map(([k, x]) => [k, interp(x)]))
            : v;
    const lifecycle = interp(m.Lifecycle) as Record<string, unknown>;
    if (unresolved.length) throw new Error(`${name}: recipe variables left unresolved: ${unresolved.join(', ')}`);
    services[name] = {
      componentType: 'GENERIC',
      version: c.recipe.ComponentVersion,
      dependencies: Object.entries(deps).map(([d, p]) => (p.DependencyType ? `${d}:${p.DependencyType}` : d)),
      lifecycle,
      configuration,
    };
  }
  return services;
}
