import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, existsSync } from 'node:fs';
import { copyFile, lstat, mkdir, readdir, readFile, rm, stat } from 'node:fs/promises';
import { basename, dirname, join, relative, resolve, sep } from 'node:path';
import { promisify } from 'node:util';
import yazl from 'yazl';
import type { Logger } from 'pino';
import { LoupeError } from '../../lib/errors.js';
import { writeFileAtomic } from '../../lib/fsutil.js';
import { silentLogger } from '../../lib/log.js';
import { cacheDir, projectRoot } from '../../lib/paths.js';
import { COMPONENTS, loadSourceRecipe, PLATFORMS, renderRecipe, ZIP_BASE, type ComponentName, type Recipe } from './recipes.js';
import { validateRecipe } from './recipe-schema.js';

const run = promisify(execFile);

/**
 * The packaging build: GDK-compatible output in `greengrass-build/`
 *   artifacts/<component>/<version>/<zip base>-linux-x64.zip, ...-linux-arm64.zip (+ model files)
 *   recipes/<component>-<version>.json   (digests filled in, validated against the recipe schema)
 * Each ZIP holds the compiled JS a component needs (traced from its entry point through its
 * imports in dist/), a package.json (ES modules), and its production dependencies for that
 * platform: the npm packages it imports and their dependencies, with other platforms' native
 * binaries left out, and the platform's optional native packages (e.g. sharp's @img/*) fetched
 * with `npm pack` into a cache when this machine does not have them. ZIPs are deterministic
 * (sorted entries, fixed timestamps), so the same inputs give the same digests.
 */
export type Platform = (typeof PLATFORMS)[keyof typeof PLATFORMS];

export interface BuildOptions {
  outDir?: string;
  /** version of the code components (default: package.json's) */
  version?: string;
  components?: ComponentName[];
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
}

export interface BuildResult {
  outDir: string;
  recipes: { component: string; version: string; path: string; recipe: Recipe }[];
  artifacts: BuiltArtifact[];
}

const ZIP_TIME = new Date('2020-01-01T00:00:00Z');

async function digestB64(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const c of createReadStream(path)) h.update(c as Buffer);
  return h.digest('base64');
}

/** Compiled files a component needs, and the npm packages they import. */
export async function traceImports(entry: string): Promise<{ files: string[]; packages: Set<string> }> {
  const files = new Set<string>();
  const packages = new Set<string>();
  const queue = [entry];
  const re = /(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s+)['"]([^'"]+)['"]/g;
  while (queue.length) {
    const f = queue.pop()!;
    if (files.has(f)) continue;
    const text = await readFile(f, 'utf8').catch(() => {
      throw new LoupeError('build.trace', 'is missing: run `npx tsc -p .` (or `npm run build`) first', { input: f });
    });
    files.add(f);
    for (const m of text.matchAll(re)) {
      const spec = m[1]!;
      if (spec.startsWith('node:')) continue;
      if (spec.startsWith('.')) queue.push(resolve(dirname(f), spec));
      else packages.add(spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]!);
    }
  }
  return { files: [...files].sort(), packages };
}

interface Pkg {
  name: string;
  dir: string;
  /** where it goes inside the zip, e.g. node_modules/@img/sharp-linux-x64 */
  dest: string;
}

function platformMatches(pj: { os?: string[]; cpu?: string[]; libc?: string[] }, platform: Platform): boolean {
  const cpu = platform === 'linux-x64' ? 'x64' : 'arm64';
  const ok = (list: string[] | undefined, v: string) => !list || list.length === 0 || (list.includes(v) && !list.includes(`!${v}`)) || (list.every((x) => x.startsWith('!')) && !list.includes(`!${v}`));
  return ok(pj.os, 'linux') && ok(pj.cpu, cpu) && ok(pj.libc, 'glibc');
}

/** Node's resolution: <from>/node_modules/<name>, then each parent's. */
function findPackage(name: string, fromDir: string): string | undefined {
  let dir = fromDir;
  const top = join(projectRoot, 'node_modules');
  for (;;) {
    const cand = join(dir, 'node_modules', name);
    if (existsSync(join(cand, 'package.json'))) return cand;
    if (dir === projectRoot || !dir.startsWith(projectRoot)) break;
    dir = dirname(dir);
  }
  return existsSync(join(top, name, 'package.json')) ? join(top, name) : undefined;
}

/** An optional native package for another platform, fetched with `npm pack` (cached). */
async function fetchPackage(name: string, version: string, log: Logger): Promise<string> {
  const dir = join(cacheDir(), 'npm-platform', `${name.replace('/', '+')}@${version}`);
  if (existsSync(join(dir, 'package', 'package.json'))) return join(dir, 'package');
  await mkdir(dir, { recursive: true });
  log.info({ package: `${name}@${version}` }, 'fetching a platform package with npm pack');
  try {
    const { stdout } = await run('npm', ['pack', `${name}@${version}`, '--pack-destination', dir, '--json', '--silent'], { maxBuffer: 16 * 1024 * 1024 });
    const tgz = (JSON.parse(stdout) as { filename: string }[])[0]!.filename;
    await run('tar', ['-xzf', join(dir, basename(tgz)), '-C', dir]);
    await rm(join(dir, basename(tgz)), { force: true });
  } catch (e) {
    await rm(dir, { recursive: true, force: true });
    throw new LoupeError('build.fetch', `cannot fetch it from the npm registry: ${(e as Error).message}`, { input: `${name}@${version}` });
  }
  return join(dir, 'package');
}

/** The production dependency closure of `roots` for one platform. */
export async function dependencyClosure(roots: Iterable<string>, platform: Platform, log: Logger): Promise<Pkg[]> {
  const out = new Map<string, Pkg>();
  const queue: { name: string; from: string; range?: string; optional: boolean }[] = [...roots].map((name) => ({ name, from: projectRoot, optional: false }));
  while (queue.length) {
    const q = queue.shift()!;
    let dir = findPackage(q.name, q.from);
    let dest: string;
    if (dir) {
      const pj = JSON.parse(await readFile(join(dir, 'package.json'), 'utf8')) as { os?: string[]; cpu?: string[]; libc?: string[] };
      if (!platformMatches(pj, platform)) continue;
      dest = relative(projectRoot, dir).split(sep).join('/');
    } else {
      // Not installed here: only an optional native package for the target platform is fetched.
      if (!q.optional) throw new LoupeError('build.deps', `is needed but not installed (run npm install)`, { input: q.name });
      const plat = platform;
      if (!q.name.includes(plat) || q.name.includes('musl') || !q.range) continue;
      dir = await fetchPackage(q.name, q.range.replace(/^[\^~=]/, ''), log);
      dest = `node_modules/${q.name}`;
    }
    if (out.has(dest)) continue;
    out.set(dest, { name: q.name, dir, dest });
    const pj = JSON.parse(await readFile(join(dir, 'package.json'), 'utf8')) as {
      dependencies?: Record<string, string>;
      optionalDependencies?: Record<string, string>;
    };
    for (const [n, r] of Object.entries(pj.dependencies ?? {})) queue.push({ name: n, from: dir, range: r, optional: false });
    for (const [n, r] of Object.entries(pj.optionalDependencies ?? {})) queue.push({ name: n, from: dir, range: r, optional: true });
  }
  return [...out.values()].sort((a, b) => (a.dest < b.dest ? -1 : 1));
}

/** Files inside a package worth shipping for `platform` (no sources maps, typings, docs, other platforms' binaries). */
function keepFile(pkg: Pkg, rel: string, platform: Platform): boolean {
  if (/\.(map|d\.ts|d\.mts|d\.cts|md|markdown)$/i.test(rel) && !/^license/i.test(basename(rel))) return false;
  const arch = platform === 'linux-x64' ? 'x64' : 'arm64';
  if (pkg.name === 'onnxruntime-node') {
    const m = /^bin\/napi-v\d+\/([^/]+)\/([^/]+)\//.exec(rel);
    if (m && (m[1] !== 'linux' || m[2] !== arch)) return false;
  }
  if (pkg.name === 'aws-crt') {
    const m = /^dist\/bin\/([^/]+)\//.exec(rel);
    if (m && !m[1]!.startsWith(`linux-${arch}`)) return false;
    if (rel.startsWith('dist.browser/')) return false;
  }
  return true;
}

async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string) => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) {
        if (e.name === 'node_modules') continue; // nested packages come in through the closure
        await walk(p);
      } else if (e.isFile() || e.isSymbolicLink()) out.push(p);
    }
  };
  await walk(dir);
  return out;
}

async function writeZip(path: string, entries: { name: string; file?: string; data?: Buffer; mode?: number }[]): Promise<void> {
  const zip = new yazl.ZipFile();
  for (const e of [...entries].sort((a, b) => (a.name < b.name ? -1 : 1))) {
    if (e.data) zip.addBuffer(e.data, e.name, { mtime: ZIP_TIME, mode: 0o100644 });
    else zip.addFile(e.file!, e.name, { mtime: ZIP_TIME, mode: e.mode ?? 0o100644 });
  }
  zip.end();
  await mkdir(dirname(path), { recursive: true });
  await new Promise<void>((res, rej) => {
    const ws = createWriteStream(path);
    ws.on('close', () => res());
    ws.on('error', rej);
    zip.outputStream.on('error', rej).pipe(ws);
  });
}

/** The artefact ZIP of one code component for one platform. */
export async function buildComponentZip(component: ComponentName, platform: Platform, path: string, version: string, log: Logger): Promise<{ files: number; packages: number }> {
  const dist = join(projectRoot, 'dist');
  const dir = join(dist, 'components', component.replace('loupe.', '').toLowerCase());
  // loupe.Model also runs verify.js (its Install step checks that the model loads).
  const entries0 = component === 'loupe.Model' ? ['main.js', 'verify.js'] : ['main.js'];
  const traces = await Promise.all(entries0.map((e) => traceImports(join(dir, e))));
  const traced = { files: [...new Set(traces.flatMap((t) => t.files))].sort(), packages: new Set(traces.flatMap((t) => [...t.packages])) };
  const pkgs = await dependencyClosure(traced.packages, platform, log);
  const entries: { name: string; file?: string; data?: Buffer; mode?: number }[] = [];
  for (const f of traced.files) entries.push({ name: relative(projectRoot, f).split(sep).join('/'), file: f });
  // lib/paths.ts finds the root as the nearest folder holding package.json; the README says what this is.
  entries.push({ name: 'package.json', data: Buffer.from(JSON.stringify({ name: ZIP_BASE[component], version, private: true, type: 'module' }, null, 2)) });
  entries.push({ name: 'components/README', data: Buffer.from(`${component} ${version} (${platform}); programs in dist/components/\n`) });
  for (const p of pkgs) {
    for (const f of await listFiles(p.dir)) {
      const rel = relative(p.dir, f).split(sep).join('/');
      if (!keepFile(p, rel, platform)) continue;
      const st = await lstat(f);
      if (st.isSymbolicLink()) continue; // ZIP artefacts carry files; packages here need no links
      entries.push({ name: `${p.dest}/${rel}`, file: f, mode: st.mode & 0o111 ? 0o100755 : 0o100644 });
    }
  }
  await writeZip(path, entries);
  return { files: entries.length, packages: pkgs.length };
}

export async function buildComponents(opts: BuildOptions = {}): Promise<BuildResult> {
  const log = opts.log ?? silentLogger;
  const outDir = resolve(opts.outDir ?? join(projectRoot, 'greengrass-build'));
  const version = opts.version ?? (JSON.parse(await readFile(join(projectRoot, 'package.json'), 'utf8')) as { version: string }).version;
  const platforms = opts.platforms ?? (Object.values(PLATFORMS) as Platform[]);
  const components = opts.components ?? [...COMPONENTS];
  const modelDir = resolve(opts.modelDir ?? join(projectRoot, 'models', 'metal-tags'));
  const modelVersion = opts.modelVersion ?? '1.0.0';
  const result: BuildResult = { outDir, recipes: [], artifacts: [] };
  await mkdir(join(outDir, 'recipes'), { recursive: true });
  for (const component of components) {
    const v = component === 'loupe.Model' ? modelVersion : version;
    const artDir = join(outDir, 'artifacts', component, v);
    await rm(artDir, { recursive: true, force: true });
    await mkdir(artDir, { recursive: true });
    const digests = new Map<string, string>();
    const add = async (file: string, path: string) => {
      const digest = await digestB64(path);
      digests.set(file, digest);
      result.artifacts.push({ component, version: v, file, path, bytes: (await stat(path)).size, digest });
    };
    for (const platform of platforms) {
      const file = `${ZIP_BASE[component]}-${platform}.zip`;
      const t0 = Date.now();
      const info = await buildComponentZip(component, platform, join(artDir, file), v, log);
      log.info({ component, platform, ...info, ms: Date.now() - t0 }, 'artifact built');
      await add(file, join(artDir, file));
    }
    let model: { name: string; sha256: string } | undefined;
    if (component === 'loupe.Model') {
      const onnx = join(modelDir, 'model.onnx');
      if (!existsSync(onnx)) throw new LoupeError('build.model', 'has no model.onnx', { input: modelDir });
      await copyFile(onnx, join(artDir, 'model.onnx'));
      const card = join(modelDir, 'card.json');
      if (existsSync(card)) await copyFile(card, join(artDir, 'card.json'));
      else throw new LoupeError('build.model', 'has no card.json (the model card ships with the model; `loupe card` writes one)', { input: modelDir });
      await add('model.onnx', join(artDir, 'model.onnx'));
      await add('card.json', join(artDir, 'card.json'));
      model = { name: opts.modelName ?? basename(modelDir), sha256: Buffer.from(digests.get('model.onnx')!, 'base64').toString('hex') };
    }
    const recipe = renderRecipe(loadSourceRecipe(component), { version: v, ...(model ? { model } : {}) });
    // Keep only the manifests whose platform was built; fill URIs and digests.
    const built = new Set(platforms);
    recipe.Manifests = recipe.Manifests.filter((m) => built.has(PLATFORMS[m.Platform?.architecture as keyof typeof PLATFORMS])).map((m) => ({
      ...m,
      Artifacts: (m.Artifacts ?? []).map((a) => {
        const file = a.Uri.split('/').pop()!;
        const digest = digests.get(file);
        if (!digest) throw new LoupeError('build.recipe', `artefact ${file} was not built`, { input: component });
        return { ...a, Uri: a.Uri.replace('COMPONENT_NAME', component).replace('COMPONENT_VERSION', v), Digest: digest, Algorithm: 'SHA-256' };
      }),
    }));
    validateRecipe(recipe, `${component}-${v}`);
    const path = join(outDir, 'recipes', `${component}-${v}.json`);
    await writeFileAtomic(path, JSON.stringify(recipe, null, 2) + '\n');
    result.recipes.push({ component, version: v, path, recipe });
  }
  return result;
}
