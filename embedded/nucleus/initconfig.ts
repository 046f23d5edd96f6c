import { readFile } from 'node:fs/promises';
import semver from 'semver';
import { parse as parseYaml } from 'yaml';
import { LoupeError } from '../../lib/errors.js';
import { parseLifecycle, validComponentName, type Dependency, type Lifecycle, type Recipe } from './componentmanager/recipe.js';
import { BUILTIN_COMPONENTS } from './deployment/resolve.js';
import type { LogRotation } from './lifecycle/rotating-log.js';

/**
 * The real nucleus's configuration file (`java -jar Greengrass.jar --init-config FILE`), so one
 * file starts either nucleus:
 *
 *   system: {rootpath, thingName, rootCaPath}
 *   services:
 *     aws.greengrass.Nucleus:
 *       configuration: {awsRegion, runWithDefault: {posixUser: user[:group]},
 *                       interpolateComponentConfiguration, iotRoleAlias, iotDataEndpoint,
 *                       logging: {fileSizeKB, totalLogsSizeKB}}
 *     main: {dependencies: [what to run]}
 *     my.Component: {version, dependencies: [name or name:SOFT], lifecycle: {...}, configuration: {...},
 *                    runWith: {posixUser}}
 *
 * Keys are matched case-insensitively, as the real nucleus's configuration store does. Components
 * defined here run as written: the real nucleus interpolates recipe variables only when it
 * deploys a recipe, and so does loupe. `iotDataEndpoint` is where loupe's IoT Core bridge connects
 * (an mqtt:// URL to the embedded broker, say); without it the device is offline, as a real one
 * without cloud settings is.
 */
export interface InitConfig {
  source: string;
  rootPath?: string;
  thingName?: string;
  rootCaPath?: string;
  region?: string;
  /** "user" or "user:group". */
  posixUser?: string;
  interpolateComponentConfiguration: boolean;
  iotRoleAlias?: string;
  iotDataEndpoint?: string;
  logging?: Partial<LogRotation>;
  nucleusVersion?: string;
  /** Components defined inline, as recipes (`recipe.inline` set). */
  components: Recipe[];
  /** What `main` depends on: the root components. */
  roots: string[];
}

type Obj = Record<string, unknown>;
const NUCLEUS = 'aws.greengrass.Nucleus';

function isObj(v: unknown): v is Obj {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

class Reader {
  constructor(readonly source: string) {}

  fail(path: string, problem: string): never {
    throw new LoupeError('INIT_CONFIG_INVALID', `${path}: ${problem}`, { input: this.source });
  }

  get(o: Obj, key: string): unknown {
    const hit = Object.keys(o).find((k) => k.toLowerCase() === key.toLowerCase());
    return hit === undefined ? undefined : o[hit];
  }

  map(o: Obj, key: string, path: string): Obj | undefined {
    const v = this.get(o, key);
    if (v === undefined || v === null) return undefined;
    if (!isObj(v)) this.fail(`${path}.${key}`, 'must be a map');
    return v;
  }

  str(o: Obj, key: string, path: string): string | undefined {
    const v = this.get(o, key);
    if (v === undefined || v === null) return undefined;
    if (typeof v === 'number' || typeof v === 'boolean') return String(v);
    if (typeof v !== 'string') this.fail(`${path}.${key}`, 'must be a string');
    return v;
  }

  dependencies(v: unknown, path: string): Record<string, Dependency> {
    if (v === undefined || v === null) return {};
    const list = typeof v === 'string' ? v.split(/[\s,]+/).filter(Boolean) : v;
    if (!Array.isArray(list) || list.some((d) => typeof d !== 'string'))
      this.fail(path, 'must be a list of component names (optionally name:SOFT or name:HARD)');
    const out: Record<string, Dependency> = {};
    for (const d of list as string[]) {
      const [name, type = 'HARD'] = d.split(':');
      const t = type.toUpperCase();
      if (!name || (t !== 'HARD' && t !== 'SOFT'))
        this.fail(path, `"${d}" must be a component name, optionally followed by :HARD or :SOFT`);
      out[name] = { versionRequirement: '*', type: t as 'HARD' | 'SOFT' };
    }
    return out;
  }
}

export function parseInitConfig(text: string, source: string): InitConfig {
  const r: Reader = new Reader(source);
  let doc: unknown;
  try {
    doc = /\.json$/i.test(source) ? JSON.parse(text) : parseYaml(text);
  } catch (e) {
    throw new LoupeError('INIT_CONFIG_INVALID', `not valid ${/\.json$/i.test(source) ? 'JSON' : 'YAML'}: ${(e as Error).message}`, {
      input: source,
      cause: e,
    });
  }
  if (!isObj(doc)) r.fail('(file)', 'must be a map with "system" and "services"');
  const system = r.map(doc, 'system', '') ?? {};
  const services = r.map(doc, 'services', '') ?? {};
  const nucleus = (isObj(r.get(services, NUCLEUS)) ? r.get(services, NUCLEUS) : {}) as Obj;
  const ncfg = r.map(nucleus, 'configuration', `services.${NUCLEUS}`) ?? {};
  const runWith = r.map(ncfg, 'runWithDefault', `services.${NUCLEUS}.configuration`) ?? {};
  const logging = r.map(ncfg, 'logging', `services.${NUCLEUS}.configuration`);
  const kb = (k: string) => {
    if (!logging) return undefined;
    const v = r.get(logging, k);
    if (v === undefined || v === null) return undefined;
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1)
      r.fail(`services.${NUCLEUS}.configuration.logging.${k}`, `must be a whole number of KB, got ${JSON.stringify(v)}`);
    return n;
  };
  const fileSizeKB = kb('fileSizeKB');
  const totalLogsSizeKB = kb('totalLogsSizeKB');
  const interp = r.get(ncfg, 'interpolateComponentConfiguration');

  const main = (isObj(r.get(services, 'main')) ? r.get(services, 'main') : {}) as Obj;
  const roots = Object.keys(r.dependencies(r.get(main, 'dependencies'), 'services.main.dependencies'));

  const components: Recipe[] = [];
  for (const [name, def] of Object.entries(services)) {
    if (name === 'main' || name === NUCLEUS || BUILTIN_COMPONENTS[name]) continue;
    const path = `services.${name}`;
    if (!validComponentName(name)) r.fail(path, 'is not a valid component name');
    if (!isObj(def)) r.fail(path, 'must be a map');
    const versionText = r.str(def, 'version', path);
    if (versionText !== undefined && !semver.valid(versionText))
      r.fail(`${path}.version`, `must be a semantic version, got "${versionText}"`);
    const lc = r.get(def, 'lifecycle');
    const lifecycle: Lifecycle =
      lc === undefined || lc === null ? { setenv: {}, steps: {} } : parseLifecycle(lc, `${path}.lifecycle`, source);
    const configuration = r.map(def, 'configuration', path) ?? {};
    const rw = r.map(def, 'runWith', path);
    const posixUser = rw ? r.str(rw, 'posixUser', `${path}.runWith`) : undefined;
    components.push({
      formatVersion: '2020-01-25',
      name,
      version: versionText ?? '0.0.0',
      defaultConfiguration: structuredClone(configuration),
      dependencies: r.dependencies(r.get(def, 'dependencies'), `${path}.dependencies`),
      manifests: [],
      source: `${source} (${path})`,
      warnings: [],
      inline: { lifecycle, versioned: versionText !== undefined, ...(posixUser ? { posixUser } : {}) },
    });
  }
  const known = new Set([...components.map((c) => c.name), ...Object.keys(BUILTIN_COMPONENTS)]);
  for (const root of roots) if (!known.has(root)) r.fail('services.main.dependencies', `"${root}" is not defined under services`);
  for (const c of components) {
    for (const dep of Object.keys(c.dependencies))
      if (!known.has(dep)) r.fail(`services.${c.name}.dependencies`, `"${dep}" is not defined under services`);
  }

  const opt = <T>(k: string, v: T | undefined) => (v === undefined ? {} : { [k]: v });
  return {
    source,
    ...opt('rootPath', r.str(system, 'rootpath', 'system')),
    ...opt('thingName', r.str(system, 'thingName', 'system')),
    ...opt('rootCaPath', r.str(system, 'rootCaPath', 'system')),
    ...opt('region', r.str(ncfg, 'awsRegion', `services.${NUCLEUS}.configuration`)),
    ...opt('posixUser', r.str(runWith, 'posixUser', `services.${NUCLEUS}.configuration.runWithDefault`)),
    interpolateComponentConfiguration: interp === true || interp === 'true',
    ...opt('iotRoleAlias', r.str(ncfg, 'iotRoleAlias', `services.${NUCLEUS}.configuration`)),
    ...opt('iotDataEndpoint', r.str(ncfg, 'iotDataEndpoint', `services.${NUCLEUS}.configuration`)),
    ...(fileSizeKB !== undefined || totalLogsSizeKB !== undefined
      ? { logging: { ...opt('fileSizeKB', fileSizeKB), ...opt('totalLogsSizeKB', totalLogsSizeKB) } }
      : {}),
    ...opt('nucleusVersion', r.str(nucleus, 'version', `services.${NUCLEUS}`)),
    components,
    roots,
  };
}

export async function readInitConfig(path: string): Promise<InitConfig> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new LoupeError('INIT_CONFIG_READ', `cannot read: ${(e as Error).message}`, { input: path, cause: e });
  }
  return parseInitConfig(text, path);
}
