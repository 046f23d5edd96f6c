import semver from 'semver';
import { LoupeError } from '../../../lib/errors.js';
import type { ComponentStore } from '../componentmanager/store.js';
import type { Recipe } from '../componentmanager/recipe.js';

/**
 * Dependency resolution for a deployment: root components at the versions asked for, every
 * dependency at the highest version in the component store that satisfies all the semver
 * ranges pointing at it. Components the nucleus provides itself (the nucleus, TES, CLI) resolve
 * to their built-in versions.
 */
export const BUILTIN_COMPONENTS: Readonly<Record<string, string>> = {
  'aws.greengrass.Nucleus': '2.13.0',
  'aws.greengrass.TokenExchangeService': '2.0.3',
  'aws.greengrass.Cli': '2.13.0',
};

export interface Resolved {
  name: string;
  version: string;
  recipe: Recipe;
}

interface Constraint {
  range: string;
  from: string;
}

export async function resolveComponents(roots: ReadonlyMap<string, string>, store: ComponentStore): Promise<Map<string, Resolved>> {
  for (const [name, version] of roots) {
    if (!semver.valid(version)) throw new LoupeError('DEPLOYMENT_INVALID', `version "${version}" of ${name} is not a semantic version`, { input: name });
    if (BUILTIN_COMPONENTS[name]) throw new LoupeError('DEPLOYMENT_INVALID', `${name} is built into the local nucleus and cannot be deployed`, { input: name });
  }
  const chosen = new Map<string, Resolved>();
  const recipeCache = new Map<string, Recipe>();
  const load = async (name: string, version: string) => {
    const key = `${name}@${version}`;
    let r = recipeCache.get(key);
    if (!r) recipeCache.set(key, (r = await store.loadRecipe(name, version)));
    return r;
  };
  for (let round = 0; round < 50; round++) {
    const constraints = new Map<string, Constraint[]>();
    const add = (name: string, c: Constraint) => {
      const list = constraints.get(name) ?? [];
      list.push(c);
      constraints.set(name, list);
    };
    for (const [name, version] of roots) add(name, { range: version, from: 'the deployment' });
    for (const r of chosen.values()) for (const [dep, d] of Object.entries(r.recipe.dependencies)) add(dep, { range: d.versionRequirement, from: `${r.name}@${r.version}` });
    let changed = false;
    for (const [name, cs] of constraints) {
      if (BUILTIN_COMPONENTS[name]) {
        const v = BUILTIN_COMPONENTS[name]!;
        const bad = cs.find((c) => !semver.satisfies(v, c.range, { includePrerelease: true }));
        if (bad) throw new LoupeError('DEPENDENCY_UNSATISFIED', `${bad.from} needs ${name} ${bad.range}, but this nucleus provides ${v}`, { input: name });
        continue;
      }
      const versions = await store.versions(name);
      const pick = versions.find((v) => cs.every((c) => semver.satisfies(v, c.range, { includePrerelease: true })));
      if (!pick) {
        const wants = cs.map((c) => `${c.range} (from ${c.from})`).join(', ');
        throw new LoupeError(
          'DEPENDENCY_UNSATISFIED',
          `no version satisfies ${wants}; the store has ${versions.length ? versions.join(', ') : 'none'}`,
          { input: name },
        );
      }
      if (chosen.get(name)?.version !== pick) {
        chosen.set(name, { name, version: pick, recipe: await load(name, pick) });
        changed = true;
      }
    }
    for (const name of [...chosen.keys()]) {
      if (!constraints.has(name)) {
        chosen.delete(name);
        changed = true;
      }
    }
    if (!changed) {
      topoOrder(chosen);
      return chosen;
    }
  }
  throw new LoupeError('DEPENDENCY_UNSATISFIED', 'dependency resolution did not settle (conflicting ranges)', { input: [...roots.keys()].join(', ') });
}

/** Names in start-up order (dependencies first); throws on a cycle, naming it. */
export function topoOrder(components: ReadonlyMap<string, { recipe: Pick<Recipe, 'dependencies'> }>): string[] {
  const out: string[] = [];
  const mark = new Map<string, 'visiting' | 'done'>();
  const visit = (name: string, path: string[]) => {
    const m = mark.get(name);
    if (m === 'done') return;
    if (m === 'visiting') throw new LoupeError('DEPENDENCY_CYCLE', `dependency cycle: ${[...path, name].join(' -> ')}`, { input: name });
    mark.set(name, 'visiting');
    for (const dep of Object.keys(components.get(name)?.recipe.dependencies ?? {})) if (components.has(dep)) visit(dep, [...path, name]);
    mark.set(name, 'done');
    out.push(name);
  };
  for (const name of [...components.keys()].sort()) visit(name, []);
  return out;
}
