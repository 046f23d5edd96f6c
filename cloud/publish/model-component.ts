import { createHash } from 'node:crypto';
import { readFileSync, statSync, existsSync } from 'node:fs';
import { basename } from 'node:path';
import semver from 'semver';
import { parse as parseYaml } from 'yaml';
import { LoupeError } from '../../lib/errors.js';

/**
 * A new version of the loupe.Model component from a registered model: the base recipe (helper
 * "edge"'s `recipes/loupe.Model` recipe, the one the fleet already runs) with a new
 * ComponentVersion, the model's files as its artefacts (URI per backend, SHA-256 digest in
 * base64 as Greengrass expects), and its DefaultConfiguration told which registry version it
 * carries. Recipe keys are case-insensitive in Greengrass, so they are found that way and
 * written back under the spelling the base recipe used.
 */
export const MODEL_COMPONENT = 'loupe.Model';

export interface ArtefactFile {
  /** File name inside the component's artefact folder (`model.onnx`, `card.json`). */
  name: string;
  path: string;
}

export interface BuiltArtefact extends ArtefactFile {
  sha256: string;
  digest: string;
  size: number;
  uri: string;
}

export interface ModelComponentInput {
  baseRecipe: Record<string, unknown>;
  version: string;
  files: ArtefactFile[];
  /** The artefact URI for a file on this backend (s3://… for AWS; any URI ending in the name for the local nucleus). */
  uriFor(file: ArtefactFile & { sha256: string }): string;
  /** Merged into DefaultConfiguration (the model's name, the registry ref). `sha256` and `version` are set from the files and the version. */
  configuration?: Record<string, unknown>;
  description?: string;
}

export interface ModelComponent {
  name: string;
  version: string;
  recipe: Record<string, unknown>;
  artefacts: BuiltArtefact[];
}

export function readRecipeFile(path: string): Record<string, unknown> {
  if (!existsSync(path)) throw new LoupeError('RECIPE_MISSING', 'recipe file not found', { input: path });
  const text = readFileSync(path, 'utf8');
  try {
    const doc = (path.endsWith('.json') ? JSON.parse(text) : parseYaml(text)) as unknown;
    if (!doc || typeof doc !== 'object' || Array.isArray(doc)) throw new Error('not a mapping');
    return doc as Record<string, unknown>;
  } catch (e) {
    throw new LoupeError('RECIPE_BAD', `cannot read the recipe (${(e as Error).message})`, { input: path });
  }
}

/** The key of `obj` equal to `want` ignoring case, or `want` itself when absent. */
export function keyOf(obj: Record<string, unknown>, want: string): string {
  return Object.keys(obj).find((k) => k.toLowerCase() === want.toLowerCase()) ?? want;
}

export function getKey<T = unknown>(obj: Record<string, unknown>, want: string): T | undefined {
  return obj[keyOf(obj, want)] as T | undefined;
}

function fileFacts(f: ArtefactFile): { sha256: string; digest: string; size: number } {
  if (!existsSync(f.path)) throw new LoupeError('ARTEFACT_MISSING', 'artefact file not found', { input: f.path });
  const bytes = readFileSync(f.path);
  const h = createHash('sha256').update(bytes).digest();
  return { sha256: h.toString('hex'), digest: h.toString('base64'), size: statSync(f.path).size };
}

export function buildModelComponent(input: ModelComponentInput): ModelComponent {
  const base = structuredClone(input.baseRecipe);
  const name = getKey<string>(base, 'ComponentName');
  if (name !== MODEL_COMPONENT)
    throw new LoupeError('RECIPE_BAD', `expected the ${MODEL_COMPONENT} recipe, got ComponentName "${String(name)}"`, {
      input: 'ComponentName',
    });
  if (!semver.valid(input.version))
    throw new LoupeError('RECIPE_BAD', `"${input.version}" is not a semantic version`, { input: 'ComponentVersion' });
  const artefacts: BuiltArtefact[] = input.files.map((f) => {
    const facts = fileFacts(f);
    return { ...f, ...facts, uri: input.uriFor({ ...f, sha256: facts.sha256 }) };
  });
  base[keyOf(base, 'ComponentVersion')] = input.version;
  if (input.description) base[keyOf(base, 'ComponentDescription')] = input.description;
  const manifests = getKey<Record<string, unknown>[]>(base, 'Manifests') ?? [];
  if (!Array.isArray(manifests) || manifests.length === 0)
    throw new LoupeError('RECIPE_BAD', 'the loupe.Model recipe has no Manifests', { input: 'Manifests' });
  for (const m of manifests) {
    const key = keyOf(m, 'Artifacts');
    const old = (m[key] as Record<string, unknown>[] | undefined) ?? [];
    // The model files are replaced; any other artefact (the component's code ZIP) is kept as it
    // is: its URI and digest still name the same, unchanged bytes.
    const kept = old.filter((a) => !artefacts.some((x) => basename(String(getKey(a, 'Uri') ?? '')) === x.name));
    const replaced = artefacts.map((x) => {
      const prev = old.find((a) => basename(String(getKey(a, 'Uri') ?? '')) === x.name);
      const perm = prev ? getKey<Record<string, unknown>>(prev, 'Permission') : undefined;
      return {
        Uri: x.uri,
        Digest: x.digest,
        Algorithm: 'SHA-256',
        Unarchive: 'NONE',
        Permission: perm ?? { Read: 'ALL', Execute: 'NONE' },
      };
    });
    m[key] = [...kept, ...replaced];
  }
  // The model component re-checks the digest from its configuration on the device, and
  // announces name/version: recipe defaults replace earlier defaults on a version change.
  const cc = (base[keyOf(base, 'ComponentConfiguration')] ??= {}) as Record<string, unknown>;
  const dkey = keyOf(cc, 'DefaultConfiguration');
  const defaults = { ...((cc[dkey] as Record<string, unknown> | undefined) ?? {}) };
  const onnx = artefacts.find((a) => a.name.endsWith('.onnx'));
  if (onnx) defaults.sha256 = onnx.sha256;
  defaults.version = input.version;
  cc[dkey] = { ...defaults, ...input.configuration };
  return { name: MODEL_COMPONENT, version: input.version, recipe: base, artefacts };
}

/** The next patch version above every version in `existing` (and above `floor`). */
export function nextVersion(existing: string[], floor = '1.0.0'): string {
  const valid = existing.filter((v) => semver.valid(v));
  const top = valid.length ? valid.sort(semver.rcompare)[0]! : null;
  if (!top || semver.lt(top, floor)) return floor;
  return semver.inc(top, 'patch')!;
}
