import { existsSync } from 'node:fs';
import { lstat, readdir, readFile } from 'node:fs/promises';
import { basename, dirname, join, relative, resolve, sep } from 'node:path';
import type { Logger } from 'pino';
import { LoupeError } from '../../lib/errors.js';
import { projectRoot } from '../../lib/paths.js';
import { fetchPackage } from './npm-pack.js';
import type { PLATFORMS } from './recipes.js';
import { writeZip, type ZipEntry } from './zip.js';

/**
 * A code bundle: the ZIP artefact of a program for one platform. It holds the compiled JS the
 * program needs (traced from its entry points through their imports in dist/), a package.json
 * (ES modules), and the production dependencies for that platform: the npm packages it imports
 * and their dependencies, with files no program loads left out (tests, examples, docs,
 * typings, source maps, TypeScript and C/C++ sources) and other platforms' native binaries left
 * out; the platform's optional native packages (e.g. sharp's @img/*) are fetched with `npm pack`
 * when this machine does not have them. Linux glibc only: Greengrass manifests select by OS and
 * architecture, not by C library.
 */
export type Platform = (typeof PLATFORMS)[keyof typeof PLATFORMS];

/** Compiled files a program needs, and the npm packages they import. */
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

export interface Pkg {
  name: string;
  dir: string;
  /** where it goes inside the zip, e.g. node_modules/@img/sharp-linux-x64 */
  dest: string;
}

function cpuOf(platform: Platform): 'x64' | 'arm64' {
  return platform === 'linux-x64' ? 'x64' : 'arm64';
}

function platformMatches(pj: { os?: string[]; cpu?: string[]; libc?: string[] }, platform: Platform): boolean {
  const ok = (list: string[] | undefined, v: string) =>
    !list ||
    list.length === 0 ||
    (list.includes(v) && !list.includes(`!${v}`)) ||
    (list.every((x) => x.startsWith('!')) && !list.includes(`!${v}`));
  return ok(pj.os, 'linux') && ok(pj.cpu, cpuOf(platform)) && ok(pj.libc, 'glibc');
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

/** The production dependency closure of `roots` for one platform. */
export async function dependencyClosure(roots: Iterable<string>, platform: Platform, log: Logger): Promise<Pkg[]> {
  const out = new Map<string, Pkg>();
  const queue: { name: string; from: string; range?: string; optional: boolean }[] = [...roots].map((name) => ({
    name,
    from: projectRoot,
    optional: false,
  }));
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
      if (!q.name.includes(platform) || q.name.includes('musl') || !q.range) continue;
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

/** Folders no program loads from: tests, examples, docs, benchmarks, editor and CI settings. */
const NOT_PRODUCTION_DIR = /(^|\/)(tests?|__tests__|specs?|examples?|docs?|benchmarks?|coverage|\.github|\.vscode|\.idea)\//i;
/** Files no program loads: source maps, typings and TypeScript sources, C/C++ and build files, docs, lock files, dotfiles (tool settings). */
const NOT_PRODUCTION_FILE =
  /(\.(map|ts|mts|cts|tsx|md|markdown|c|cc|cpp|cxx|h|hh|hpp|gyp|gypi|py|tsbuildinfo|lock)|(^|\/)(\.[^/]+|CMakeLists\.txt|Makefile|tsconfig(\.\w+)?\.json))$/i;
const KEEP_ALWAYS = /^(licen[cs]e|notice|copying)(\.\w+)?$/i;

/**
 * Per package, what belongs to one platform (the rest is other platforms' binaries, or build
 * inputs: install scripts run by npm, never by the program).
 */
const PACKAGE_RULES: Record<string, (rel: string, cpu: 'x64' | 'arm64') => boolean> = {
  'onnxruntime-node': (rel, cpu) => {
    const m = /^bin\/napi-v\d+\/([^/]+)\/([^/]+)\//.exec(rel);
    if (m) return m[1] === 'linux' && m[2] === cpu;
    return !rel.startsWith('script/');
  },
  'aws-crt': (rel, cpu) => {
    const m = /^dist\/bin\/([^/]+)\//.exec(rel);
    if (m) return m[1] === `linux-${cpu}-glibc`;
    return !/^(dist\.browser|source|scripts|crt)\//.test(rel);
  },
  sharp: (rel) => !/^(install|src)\//.test(rel),
};

/** Whether a file inside a package ships in the code bundle for `platform`. */
export function keepFile(pkgName: string, rel: string, platform: Platform): boolean {
  if (pkgName.startsWith('@types/')) return false; // typings only
  const rule = PACKAGE_RULES[pkgName];
  if (rule && !rule(rel, cpuOf(platform))) return false;
  if (NOT_PRODUCTION_DIR.test(rel)) return false;
  return KEEP_ALWAYS.test(basename(rel)) || !NOT_PRODUCTION_FILE.test(rel);
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

export interface CodeBundleInfo {
  files: number;
  packages: number;
  /** files of the packages left out as not production or another platform's */
  leftOut: number;
}

/**
 * The code bundle of the program(s) `entries` (compiled files under dist/) for `platform`,
 * written to `path`. `name`/`version` go into the bundle's package.json.
 */
export async function buildCodeZip(
  entries: string[],
  platform: Platform,
  path: string,
  meta: { name: string; version: string; label: string },
  log: Logger,
): Promise<CodeBundleInfo> {
  const traces = await Promise.all(entries.map((e) => traceImports(e)));
  const files = [...new Set(traces.flatMap((t) => t.files))].sort();
  const pkgs = await dependencyClosure(new Set(traces.flatMap((t) => [...t.packages])), platform, log);
  const zip: ZipEntry[] = [];
  for (const f of files) zip.push({ name: relative(projectRoot, f).split(sep).join('/'), file: f });
  // lib/paths.ts finds the root as the nearest folder holding package.json; the README says what this is.
  zip.push({
    name: 'package.json',
    data: Buffer.from(JSON.stringify({ name: meta.name, version: meta.version, private: true, type: 'module' }, null, 2)),
  });
  zip.push({ name: 'components/README', data: Buffer.from(`${meta.label} ${meta.version} (${platform}); programs in dist/\n`) });
  let leftOut = 0;
  for (const p of pkgs) {
    for (const f of await listFiles(p.dir)) {
      const rel = relative(p.dir, f).split(sep).join('/');
      if (!keepFile(p.name, rel, platform)) {
        leftOut++;
        continue;
      }
      const st = await lstat(f);
      if (st.isSymbolicLink()) continue; // ZIP artefacts carry files; packages here need no links
      zip.push({ name: `${p.dest}/${rel}`, file: f, mode: st.mode & 0o111 ? 0o100755 : 0o100644 });
    }
  }
  await writeZip(path, zip);
  return { files: zip.length, packages: pkgs.length, leftOut };
}
