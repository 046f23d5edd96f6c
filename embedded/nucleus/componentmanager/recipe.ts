import { readFile } from 'node:fs/promises';
import { arch as osArch, platform as osPlatform } from 'node:os';
import { extname } from 'node:path';
import semver from 'semver';
import { parse as parseYaml } from 'yaml';
import { LoupeError } from '../../../lib/errors.js';

/**
 * Greengrass component recipes (RecipeFormatVersion 2020-01-25), JSON or YAML, with keys matched
 * case-insensitively as the real nucleus does (DefaultConfiguration's own keys keep their case).
 * Every problem names the recipe and the key path, e.g.
 * `recipes/cam.yaml: ComponentDependencies.loupe.Model.DependencyType: must be HARD or SOFT, got "MAYBE"`.
 */
export interface Artifact {
  uri: string;
  /** Base64 SHA-256 of the file, as recipes carry it (GDK writes it at publish). */
  digest?: string;
  algorithm?: string;
  unarchive: 'ZIP' | 'NONE';
  permission?: { read?: string; execute?: string };
}

export interface LifecycleStep {
  script: string;
  timeout?: number;
  setenv: Record<string, string>;
  requiresPrivilege: boolean;
  skipIf?: string;
}

export type StepName = 'bootstrap' | 'install' | 'startup' | 'run' | 'shutdown' | 'recover';
export const STEP_NAMES: readonly StepName[] = ['bootstrap', 'install', 'startup', 'run', 'shutdown', 'recover'];

export interface Lifecycle {
  setenv: Record<string, string>;
  steps: Partial<Record<StepName, LifecycleStep>>;
}

export interface Manifest {
  platform: Record<string, string>;
  lifecycle?: Lifecycle;
  selections: string[];
  artifacts: Artifact[];
}

export interface Dependency {
  versionRequirement: string;
  type: 'HARD' | 'SOFT';
}

export interface Recipe {
  formatVersion: '2020-01-25';
  name: string;
  version: string;
  type?: string;
  description?: string;
  publisher?: string;
  defaultConfiguration: Record<string, unknown>;
  dependencies: Record<string, Dependency>;
  manifests: Manifest[];
  /** Top-level Lifecycle of the older selection-keyed form ({all: {...}, linux: {...}}). */
  selectionLifecycles?: Record<string, Lifecycle>;
  /**
   * A component defined inline in the nucleus configuration (an init-config `services` entry)
   * rather than by a recipe: its lifecycle is used as written (the real nucleus interpolates
   * recipe variables only when it deploys a recipe), it has no artefacts.
   */
  inline?: InlineDefinition;
  /** Where it came from, for messages. */
  source: string;
  warnings: string[];
}

export interface InlineDefinition {
  lifecycle: Lifecycle;
  /** Whether the configuration gave a version (artefact folders exist only for versioned services). */
  versioned: boolean;
  /** services.<name>.runWith.posixUser, if set. */
  posixUser?: string;
}

/** A recipe resolved for this device: the manifest that matched, its lifecycle and artifacts. */
export interface PlatformRecipe extends Recipe {
  lifecycle: Lifecycle;
  artifacts: Artifact[];
}

const NAME_RE = /^[A-Za-z0-9\-_.]{1,128}$/;

/** A component name is also a folder name in the store: "." and ".." would climb out of it. */
export function validComponentName(name: string): boolean {
  return NAME_RE.test(name) && !/^\.+$/.test(name);
}
const COMPONENT_TYPES = new Set(['aws.greengrass.generic', 'aws.greengrass.lambda', 'aws.greengrass.plugin', 'aws.greengrass.nucleus']);

type Obj = Record<string, unknown>;

class RecipeReader {
  readonly warnings: string[] = [];
  constructor(private readonly source: string) {}

  fail(path: string, problem: string): never {
    throw new LoupeError('RECIPE_INVALID', `${path}: ${problem}`, { input: this.source });
  }

  isObj(v: unknown): v is Obj {
    return v !== null && typeof v === 'object' && !Array.isArray(v);
  }

  obj(v: unknown, path: string): Obj {
    if (!this.isObj(v)) this.fail(path, `must be a map, got ${describe(v)}`);
    return v;
  }

  /** Find `key` in `o` ignoring case; two spellings of one key are ambiguous. */
  get(o: Obj, key: string, path: string): unknown {
    const hits = Object.keys(o).filter((k) => k.toLowerCase() === key.toLowerCase());
    if (hits.length > 1) this.fail(join(path, key), `appears more than once with different case (${hits.join(', ')})`);
    return hits.length ? o[hits[0]!] : undefined;
  }

  str(o: Obj, key: string, path: string, required: boolean): string | undefined {
    const v = this.get(o, key, path);
    if (v === undefined || v === null) {
      if (required) this.fail(join(path, key), 'is required');
      return undefined;
    }
    if (typeof v === 'number' || typeof v === 'boolean') return String(v);
    if (typeof v !== 'string') this.fail(join(path, key), `must be a string, got ${describe(v)}`);
    return v;
  }

  unknownKeys(o: Obj, known: string[], path: string): void {
    const set = new Set(known.map((k) => k.toLowerCase()));
    for (const k of Object.keys(o)) if (!set.has(k.toLowerCase())) this.warnings.push(`${join(path, k)}: unknown key, ignored`);
  }

  stringMap(v: unknown, path: string): Record<string, string> {
    if (v === undefined || v === null) return {};
    const o = this.obj(v, path);
    const out: Record<string, string> = {};
    for (const [k, val] of Object.entries(o)) {
      if (typeof val === 'string' || typeof val === 'number' || typeof val === 'boolean') out[k] = String(val);
      else this.fail(join(path, k), `must be a string, got ${describe(val)}`);
    }
    return out;
  }

  step(v: unknown, path: string): LifecycleStep {
    if (typeof v === 'string') return { script: v, setenv: {}, requiresPrivilege: false };
    const o = this.obj(v, path);
    this.unknownKeys(o, ['Script', 'Timeout', 'Setenv', 'RequiresPrivilege', 'SkipIf'], path);
    const script = this.str(o, 'Script', path, true)!;
    const t = this.get(o, 'Timeout', path);
    let timeout: number | undefined;
    if (t !== undefined && t !== null) {
      timeout = typeof t === 'string' ? Number(t) : (t as number);
      if (typeof timeout !== 'number' || !Number.isFinite(timeout) || timeout <= 0)
        this.fail(join(path, 'Timeout'), `must be a positive number of seconds, got ${describe(t)}`);
    }
    const rp = this.get(o, 'RequiresPrivilege', path);
    const skipIf = this.str(o, 'SkipIf', path, false);
    if (skipIf !== undefined && !/^!?\s*(onpath|exists)\s+\S/.test(skipIf.trim()))
      this.fail(join(path, 'SkipIf'), `must be "onpath <program>" or "exists <file>" (optionally after "!"), got "${skipIf}"`);
    return {
      script,
      ...(timeout !== undefined ? { timeout } : {}),
      setenv: this.stringMap(this.get(o, 'Setenv', path), join(path, 'Setenv')),
      requiresPrivilege: rp === true || rp === 'true',
      ...(skipIf !== undefined ? { skipIf: skipIf.trim() } : {}),
    };
  }

  lifecycle(v: unknown, path: string): Lifecycle {
    const o = this.obj(v, path);
    const lc: Lifecycle = { setenv: {}, steps: {} };
    for (const [k, val] of Object.entries(o)) {
      const key = k.toLowerCase();
      if (key === 'setenv') lc.setenv = this.stringMap(val, join(path, k));
      else if ((STEP_NAMES as readonly string[]).includes(key)) {
        if (val === undefined || val === null) continue;
        lc.steps[key as StepName] = this.step(val, join(path, k));
      } else this.warnings.push(`${join(path, k)}: unknown lifecycle step, ignored`);
    }
    if (lc.steps.startup && lc.steps.run) this.fail(path, 'defines both Startup and Run; a component has one or the other');
    return lc;
  }

  artifact(v: unknown, path: string): Artifact {
    const o = this.obj(v, path);
    this.unknownKeys(o, ['Uri', 'Digest', 'Algorithm', 'Unarchive', 'Permission'], path);
    const uri = this.str(o, 'Uri', path, true)!;
    if (!/^[a-z][a-z0-9+.-]*:/i.test(uri)) this.fail(join(path, 'Uri'), `must be a URI such as s3://bucket/key, got "${uri}"`);
    const unarchive = (this.str(o, 'Unarchive', path, false) ?? 'NONE').toUpperCase();
    if (unarchive !== 'ZIP' && unarchive !== 'NONE') this.fail(join(path, 'Unarchive'), `must be ZIP or NONE, got "${unarchive}"`);
    const algorithm = this.str(o, 'Algorithm', path, false);
    const digest = this.str(o, 'Digest', path, false);
    if (digest !== undefined && (algorithm ?? 'SHA-256').toUpperCase() !== 'SHA-256')
      this.fail(join(path, 'Algorithm'), `only SHA-256 is supported, got "${algorithm}"`);
    if (digest !== undefined && !/^[A-Za-z0-9+/]{43}=$/.test(digest))
      this.fail(join(path, 'Digest'), 'must be the base64 SHA-256 of the file (44 characters)');
    const perm = this.get(o, 'Permission', path);
    let permission: Artifact['permission'];
    if (perm !== undefined && perm !== null) {
      const p = this.obj(perm, join(path, 'Permission'));
      permission = {};
      const read = this.str(p, 'Read', join(path, 'Permission'), false);
      const execute = this.str(p, 'Execute', join(path, 'Permission'), false);
      for (const [k, val] of [
        ['Read', read],
        ['Execute', execute],
      ] as const) {
        if (val !== undefined && !['NONE', 'OWNER', 'ALL'].includes(val.toUpperCase()))
          this.fail(join(path, 'Permission', k), `must be NONE, OWNER or ALL, got "${val}"`);
      }
      if (read) permission.read = read.toUpperCase();
      if (execute) permission.execute = execute.toUpperCase();
    }
    return { uri, unarchive, ...(digest ? { digest } : {}), ...(algorithm ? { algorithm } : {}), ...(permission ? { permission } : {}) };
  }
}

function join(...parts: string[]): string {
  return parts.filter((p) => p !== '').join('.');
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a map';
  return `${typeof v} ${JSON.stringify(v)}`;
}

/** Parse and validate recipe text. `source` names it in errors (a path, usually). */
export function parseRecipe(text: string, source: string, format?: 'json' | 'yaml'): Recipe {
  const r = new RecipeReader(source);
  let doc: unknown;
  const fmt = format ?? (/\.json$/i.test(source) ? 'json' : 'yaml');
  try {
    doc = fmt === 'json' ? JSON.parse(text) : parseYaml(text);
  } catch (e) {
    throw new LoupeError('RECIPE_INVALID', `not valid ${fmt.toUpperCase()}: ${(e as Error).message}`, { input: source, cause: e });
  }
  const o = r.obj(doc, '(recipe)');
  r.unknownKeys(
    o,
    [
      'RecipeFormatVersion',
      'ComponentName',
      'ComponentVersion',
      'ComponentType',
      'ComponentDescription',
      'ComponentPublisher',
      'ComponentSource',
      'ComponentConfiguration',
      'ComponentDependencies',
      'Manifests',
      'Lifecycle',
    ],
    '',
  );
  const formatVersion = r.str(o, 'RecipeFormatVersion', '', true)!;
  if (formatVersion !== '2020-01-25') r.fail('RecipeFormatVersion', `must be "2020-01-25", got "${formatVersion}"`);
  const name = r.str(o, 'ComponentName', '', true)!;
  if (!validComponentName(name))
    r.fail('ComponentName', `must be 1-128 characters of letters, digits, "-", "_" and "." (not only dots), got "${name}"`);
  const version = r.str(o, 'ComponentVersion', '', true)!;
  if (!semver.valid(version)) r.fail('ComponentVersion', `must be a semantic version such as 1.0.0, got "${version}"`);
  const type = r.str(o, 'ComponentType', '', false);
  if (type !== undefined && !COMPONENT_TYPES.has(type))
    r.fail('ComponentType', `must be one of ${[...COMPONENT_TYPES].join(', ')}, got "${type}"`);

  let defaultConfiguration: Obj = {};
  const cc = r.get(o, 'ComponentConfiguration', '');
  if (cc !== undefined && cc !== null) {
    const cco = r.obj(cc, 'ComponentConfiguration');
    const dc = r.get(cco, 'DefaultConfiguration', 'ComponentConfiguration');
    if (dc !== undefined && dc !== null) defaultConfiguration = r.obj(dc, 'ComponentConfiguration.DefaultConfiguration');
  }

  const dependencies: Record<string, Dependency> = {};
  const deps = r.get(o, 'ComponentDependencies', '');
  if (deps !== undefined && deps !== null) {
    for (const [dep, spec] of Object.entries(r.obj(deps, 'ComponentDependencies'))) {
      const path = join('ComponentDependencies', dep);
      if (!validComponentName(dep)) r.fail(path, 'is not a valid component name');
      const so = spec === null || spec === undefined ? {} : r.obj(spec, path);
      const range = r.str(so, 'VersionRequirement', path, false) ?? '*';
      if (semver.validRange(range) === null)
        r.fail(join(path, 'VersionRequirement'), `must be a semver range such as ">=1.0.0 <2.0.0", got "${range}"`);
      const dt = (r.str(so, 'DependencyType', path, false) ?? 'HARD').toUpperCase();
      if (dt !== 'HARD' && dt !== 'SOFT') r.fail(join(path, 'DependencyType'), `must be HARD or SOFT, got "${dt}"`);
      dependencies[dep] = { versionRequirement: range, type: dt as 'HARD' | 'SOFT' };
    }
  }

  const manifests: Manifest[] = [];
  const ms = r.get(o, 'Manifests', '');
  if (ms !== undefined && ms !== null) {
    if (!Array.isArray(ms)) r.fail('Manifests', `must be a list, got ${describe(ms)}`);
    (ms as unknown[]).forEach((m, i) => {
      const path = `Manifests[${i}]`;
      const mo = r.obj(m, path);
      r.unknownKeys(mo, ['Platform', 'Lifecycle', 'Artifacts', 'Selections', 'Name'], path);
      const platform = r.stringMap(r.get(mo, 'Platform', path), join(path, 'Platform'));
      const lc = r.get(mo, 'Lifecycle', path);
      const arts = r.get(mo, 'Artifacts', path);
      if (arts !== undefined && arts !== null && !Array.isArray(arts))
        r.fail(join(path, 'Artifacts'), `must be a list, got ${describe(arts)}`);
      const sel = r.get(mo, 'Selections', path);
      if (sel !== undefined && (!Array.isArray(sel) || sel.some((s) => typeof s !== 'string')))
        r.fail(join(path, 'Selections'), 'must be a list of strings');
      manifests.push({
        platform: Object.fromEntries(Object.entries(platform).map(([k, v]) => [k.toLowerCase(), v])),
        ...(lc !== undefined && lc !== null ? { lifecycle: r.lifecycle(lc, join(path, 'Lifecycle')) } : {}),
        selections: (sel as string[] | undefined) ?? [],
        artifacts: ((arts as unknown[] | undefined) ?? []).map((a, j) => r.artifact(a, `${path}.Artifacts[${j}]`)),
      });
    });
  }
  let selectionLifecycles: Record<string, Lifecycle> | undefined;
  const top = r.get(o, 'Lifecycle', '');
  if (top !== undefined && top !== null) {
    selectionLifecycles = {};
    for (const [sel, lc] of Object.entries(r.obj(top, 'Lifecycle')))
      selectionLifecycles[sel.toLowerCase()] = r.lifecycle(lc, join('Lifecycle', sel));
  }

  const description = r.str(o, 'ComponentDescription', '', false);
  const publisher = r.str(o, 'ComponentPublisher', '', false);
  return {
    formatVersion: '2020-01-25',
    name,
    version,
    ...(type ? { type } : {}),
    ...(description ? { description } : {}),
    ...(publisher ? { publisher } : {}),
    defaultConfiguration,
    dependencies,
    manifests,
    ...(selectionLifecycles ? { selectionLifecycles } : {}),
    source,
    warnings: r.warnings,
  };
}

/** A lifecycle map written inline (init-config `services.<name>.lifecycle`), validated as in recipes. */
export function parseLifecycle(v: unknown, path: string, source: string): Lifecycle {
  return new RecipeReader(source).lifecycle(v, path);
}

export async function readRecipeFile(path: string): Promise<Recipe> {
  const ext = extname(path).toLowerCase();
  if (!['.json', '.yaml', '.yml'].includes(ext))
    throw new LoupeError('RECIPE_INVALID', 'a recipe file must end in .json, .yaml or .yml', { input: path });
  return parseRecipe(await readFile(path, 'utf8'), path, ext === '.json' ? 'json' : 'yaml');
}

// --- platform selection -----------------------------------------------------------------------

export interface DevicePlatform {
  os: string;
  architecture: string;
  runtime: string;
}

/** This machine in Greengrass's platform vocabulary. */
export function devicePlatform(): DevicePlatform {
  const archMap: Record<string, string> = { x64: 'amd64', arm64: 'aarch64', arm: 'arm', ia32: 'x86' };
  const osMap: Record<string, string> = { win32: 'windows' };
  return { os: osMap[osPlatform()] ?? osPlatform(), architecture: archMap[osArch()] ?? osArch(), runtime: 'aws_nucleus_classic' };
}

function platformValueMatches(want: string, have: string | undefined): boolean {
  if (want === '*' || want.toLowerCase() === 'all') return true;
  if (have === undefined) return false;
  const m = /^\/(.*)\/$/.exec(want);
  if (m) return new RegExp(m[1]!).test(have);
  return want.toLowerCase() === have.toLowerCase();
}

export function manifestMatches(m: Manifest, device: DevicePlatform): boolean {
  return Object.entries(m.platform).every(([k, v]) => platformValueMatches(v, (device as unknown as Record<string, string>)[k]));
}

/** Pick the first manifest that matches this device, as Greengrass does. */
export function resolveForPlatform(recipe: Recipe, device: DevicePlatform = devicePlatform()): PlatformRecipe {
  const manifest = recipe.manifests.find((m) => manifestMatches(m, device));
  if (!manifest && recipe.manifests.length > 0) {
    throw new LoupeError(
      'RECIPE_NO_PLATFORM',
      `${recipe.name}@${recipe.version}: no manifest matches this device (os ${device.os}, architecture ${device.architecture})`,
      { input: recipe.source },
    );
  }
  if (recipe.inline) return { ...recipe, lifecycle: recipe.inline.lifecycle, artifacts: [] };
  let lifecycle: Lifecycle = { setenv: {}, steps: {} };
  if (manifest?.lifecycle) lifecycle = manifest.lifecycle;
  else if (recipe.selectionLifecycles) {
    const selections = manifest?.selections.length ? manifest.selections.map((s) => s.toLowerCase()) : ['all'];
    for (const s of [...selections, 'all']) {
      const lc = recipe.selectionLifecycles[s];
      if (lc) {
        lifecycle = lc;
        break;
      }
    }
  }
  return { ...recipe, lifecycle, artifacts: manifest?.artifacts ?? [] };
}
