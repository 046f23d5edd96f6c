import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, existsSync } from 'node:fs';
import { chmod, copyFile, cp, lstat, mkdir, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, extname, join, resolve, sep } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import semver from 'semver';
import yauzl from 'yauzl';
import { LoupeError } from '../../../lib/errors.js';
import { fsyncDir, writeFileAtomic } from '../../../lib/fsutil.js';
import { parseRecipe, readRecipeFile, type Artifact, type PlatformRecipe, type Recipe } from './recipe.js';

/**
 * The component store under the nucleus root, laid out like the real one:
 *   packages/recipes/<name>@<version>.recipe.{json,yaml}
 *   packages/artifacts/<name>/<version>/<file>
 *   packages/artifacts-unarchived/<name>/<version>/<zip name without .zip>/...
 * Artefacts come from a local artifact dir laid out as the Greengrass CLI expects
 * (<dir>/<name>/<version>/<file>) or from file:// URIs. A recipe's SHA-256 digest is checked
 * before a file is moved into place, so a mismatching file never lands in the store.
 */
export class ComponentStore {
  readonly recipesDir: string;
  readonly artifactsDir: string;
  readonly unarchivedDir: string;

  constructor(readonly root: string) {
    this.recipesDir = join(root, 'packages', 'recipes');
    this.artifactsDir = join(root, 'packages', 'artifacts');
    this.unarchivedDir = join(root, 'packages', 'artifacts-unarchived');
  }

  artifactsPath(name: string, version: string): string {
    return join(this.artifactsDir, name, version);
  }

  unarchivedPath(name: string, version: string): string {
    return join(this.unarchivedDir, name, version);
  }

  /** Parse every recipe in `dir` (not recursive) and copy it into the store. */
  async importRecipeDir(dir: string): Promise<Recipe[]> {
    let entries: string[];
    try {
      const st = await stat(dir);
      if (!st.isDirectory()) throw new Error('not a directory');
      entries = await readdir(dir);
    } catch (e) {
      throw new LoupeError('RECIPE_DIR', `cannot read the recipe directory: ${(e as Error).message}`, { input: dir, cause: e });
    }
    const files = entries.filter((f) => /\.(json|ya?ml)$/i.test(f)).sort();
    const recipes: Recipe[] = [];
    for (const f of files) recipes.push(await readRecipeFile(join(dir, f)));
    const seen = new Map<string, string>();
    for (const r of recipes) {
      const id = `${r.name}@${r.version}`;
      if (seen.has(id)) throw new LoupeError('RECIPE_DUPLICATE', `${id} is defined twice (also in ${seen.get(id)})`, { input: r.source });
      seen.set(id, r.source);
    }
    for (const r of recipes) await this.saveRecipe(r, await readFile(r.source, 'utf8'));
    return recipes;
  }

  async saveRecipe(r: Recipe, text: string): Promise<void> {
    const ext = extname(r.source).toLowerCase() === '.json' ? 'json' : 'yaml';
    for (const old of ['json', 'yaml']) if (old !== ext) await rm(this.recipeFile(r.name, r.version, old), { force: true });
    await writeFileAtomic(this.recipeFile(r.name, r.version, ext), text);
  }

  private recipeFile(name: string, version: string, ext: string): string {
    return join(this.recipesDir, `${name}@${version}.recipe.${ext}`);
  }

  /** Versions of `name` in the store, highest first. */
  async versions(name: string): Promise<string[]> {
    if (!existsSync(this.recipesDir)) return [];
    const out: string[] = [];
    for (const f of await readdir(this.recipesDir)) {
      const m = /^(.+)@([^@]+)\.recipe\.(json|yaml)$/.exec(f);
      if (m && m[1] === name && semver.valid(m[2]!)) out.push(m[2]!);
    }
    return semver.rsort(out);
  }

  async loadRecipe(name: string, version: string): Promise<Recipe> {
    for (const ext of ['json', 'yaml']) {
      const p = this.recipeFile(name, version, ext);
      if (existsSync(p)) return parseRecipe(await readFile(p, 'utf8'), p, ext as 'json' | 'yaml');
    }
    throw new LoupeError(
      'COMPONENT_NOT_FOUND',
      `no recipe for ${name}@${version} in the component store or the deployment's recipe directory`,
      { input: name },
    );
  }

  /**
   * Make every artefact of `recipe` present and verified in the store (and unpacked when
   * Unarchive is ZIP). `artifactDir` is the deployment's artifact directory, if any.
   */
  async prepareArtifacts(recipe: PlatformRecipe, artifactDir?: string): Promise<void> {
    const target = this.artifactsPath(recipe.name, recipe.version);
    await mkdir(target, { recursive: true });
    // As greengrass-cli's local deployments: the component's whole artefact folder comes along,
    // whether or not the recipe lists each file (a recipe may list none). Files the recipe lists
    // are copied below, digest first; symlinks are left out (they could point anywhere).
    const folder = artifactDir ? join(artifactDir, recipe.name, recipe.version) : undefined;
    if (folder && existsSync(folder) && (await stat(folder)).isDirectory()) {
      const listed = new Set(recipe.artifacts.map((a) => artifactFileName(a)));
      await cp(folder, target, {
        recursive: true,
        force: true,
        filter: async (src) => {
          if (src === folder) return true;
          if ((await lstat(src)).isSymbolicLink()) return false;
          return !(dirname(src) === folder && listed.has(basename(src)));
        },
      });
    }
    for (const a of recipe.artifacts) {
      const file = artifactFileName(a);
      const label = `${recipe.name}@${recipe.version} artifact ${a.uri}`;
      const dest = inside(target, file, label);
      const candidates: string[] = [];
      if (a.uri.startsWith('file:')) candidates.push(fileURLToPath(a.uri));
      if (artifactDir) candidates.push(inside(join(artifactDir, recipe.name, recipe.version), file, label));
      const source = candidates.find((c) => existsSync(c));
      if (source) {
        // Copy beside the destination, verify, then rename: a bad file never replaces a good one.
        const tmp = join(target, `.${file}.${randomBytes(4).toString('hex')}.tmp`);
        await copyFile(source, tmp);
        try {
          await verifyDigest(tmp, a, label, source);
        } catch (e) {
          await rm(tmp, { force: true });
          throw e;
        }
        await rename(tmp, dest);
        await fsyncDir(target);
      } else if (existsSync(dest)) {
        await verifyDigest(dest, a, label, dest);
      } else {
        throw new LoupeError(
          'ARTIFACT_MISSING',
          `not found; looked in ${candidates.length ? candidates.join(', ') : '(no artifact directory given)'} and the component store`,
          { input: label },
        );
      }
      await applyPermission(dest, a);
      if (a.unarchive === 'ZIP')
        await this.unzip(dest, inside(this.unarchivedPath(recipe.name, recipe.version), basename(file, extname(file)), label), a, label);
    }
  }

  private async unzip(zipPath: string, destDir: string, a: Artifact, label: string): Promise<void> {
    const tmp = `${destDir}.${randomBytes(4).toString('hex')}.tmp`;
    await mkdir(tmp, { recursive: true });
    try {
      await extractZip(zipPath, tmp, a, label);
      await rm(destDir, { recursive: true, force: true });
      await mkdir(dirname(destDir), { recursive: true });
      await rename(tmp, destDir);
    } catch (e) {
      await rm(tmp, { recursive: true, force: true });
      throw e;
    }
  }
}

/**
 * The file name an artefact URI lands under: the last segment of the URI's decoded path, as
 * Greengrass takes it (java.net.URI.getPath() decodes, then the name after the last "/"). Taking
 * the segment after decoding means an encoded "%2F..%2F" cannot smuggle a path into the name;
 * "." and ".." are refused, and the caller checks the result stays in its folder.
 */
export function artifactFileName(a: Artifact): string {
  const raw = a.uri.replace(/^[a-z][a-z0-9+.-]*:(\/\/[^/]*)?/i, '').split(/[?#]/)[0]!;
  let path: string;
  try {
    path = decodeURIComponent(raw);
  } catch {
    throw new LoupeError('ARTIFACT_URI', 'has an invalid percent-encoding in its path', { input: a.uri });
  }
  const name = path.split('/').pop() ?? '';
  if (!name || name === '.' || name === '..' || name.includes('\0'))
    throw new LoupeError('ARTIFACT_URI', `does not end in a file name (got "${name}")`, { input: a.uri });
  return name;
}

/** `name` inside `dir`, or an error: nothing from a recipe may land outside its own folder. */
export function inside(dir: string, name: string, what: string): string {
  const root = resolve(dir);
  const p = resolve(root, name);
  if (p === root || !p.startsWith(root + sep)) throw new LoupeError('ARTIFACT_PATH', `would land outside ${root}`, { input: what });
  return p;
}

export async function sha256Base64(path: string): Promise<string> {
  const h = createHash('sha256');
  await pipeline(createReadStream(path), h);
  return h.digest('base64');
}

async function verifyDigest(path: string, a: Artifact, label: string, shownPath: string): Promise<void> {
  if (!a.digest) return;
  const got = await sha256Base64(path);
  if (got !== a.digest) {
    throw new LoupeError('ARTIFACT_DIGEST', `SHA-256 digest mismatch: the recipe says ${a.digest}, ${shownPath} has ${got}; refusing it`, {
      input: label,
    });
  }
}

async function applyPermission(path: string, a: Artifact): Promise<void> {
  const exec = a.permission?.execute ?? 'NONE';
  const read = a.permission?.read ?? 'OWNER';
  let mode = 0o600;
  if (read === 'ALL') mode |= 0o044;
  if (exec === 'OWNER') mode |= 0o100;
  if (exec === 'ALL') mode |= 0o111;
  await chmod(path, mode);
}

function extractZip(zipPath: string, dest: string, a: Artifact, label: string): Promise<void> {
  const root = resolve(dest);
  return new Promise((resolvePromise, reject) => {
    yauzl.open(zipPath, { lazyEntries: true, validateEntrySizes: true }, (err, zip) => {
      if (err || !zip) return reject(new LoupeError('ARTIFACT_ZIP', `cannot open as ZIP: ${err?.message}`, { input: label, cause: err }));
      const fail = (e: unknown) => {
        zip.close();
        reject(
          e instanceof LoupeError
            ? e
            : new LoupeError('ARTIFACT_ZIP', `cannot unpack: ${(e as Error).message}`, { input: label, cause: e }),
        );
      };
      zip.on('error', fail);
      zip.on('end', () => resolvePromise());
      zip.on('entry', (entry: yauzl.Entry) => {
        const out = resolve(root, entry.fileName);
        if (out !== root && !out.startsWith(root + sep))
          return fail(new LoupeError('ARTIFACT_ZIP', `entry "${entry.fileName}" would land outside the unpack folder`, { input: label }));
        if (entry.fileName.endsWith('/')) {
          mkdir(out, { recursive: true }).then(() => zip.readEntry(), fail);
          return;
        }
        zip.openReadStream(entry, (e2, stream) => {
          if (e2 || !stream) return fail(e2);
          mkdir(dirname(out), { recursive: true })
            .then(() => pipeline(stream, createWriteStream(out)))
            .then(() => {
              // Keep the executable bit a ZIP carries (unix mode in the high bits), as unzip does.
              const unixMode = (entry.externalFileAttributes >>> 16) & 0o777;
              return unixMode ? chmod(out, unixMode) : applyPermission(out, a);
            })
            .then(() => zip.readEntry(), fail);
        });
      });
      zip.readEntry();
    });
  });
}
