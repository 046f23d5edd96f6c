import semver from 'semver';
import { LoupeError } from '../../../lib/errors.js';
import type { ComponentStore } from '../componentmanager/store.js';
import type { Recipe } from '../componentmanager/recipe.js';

/**
 * Dependency resolution for a deployment: root components at the versions asked for, every
 * dependency at the version already running if it satisfies all the semver ranges pointing at
 * it, else the highest version in the component store that does. Components the nucleus provides itself (the nucleus, TES, CLI) resolve
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

/**
 * `fixed`: components whose recipe is not in the store (defined inline in the nucleus
 * configuration): they resolve to that recipe, whose version must satisfy every range.
 */
export async function resolveComponents(
  roots: ReadonlyMap<string, string>,
  store: ComponentStore,
  fixed: ReadonlyMap<string, Recipe> = new Map(),
  active: ReadonlyMap<string, string> = new Map(),
): Promise<Map<string, Resolved>> {
  for (const [name, version] of roots) {
    if (!semver.valid(version))
      throw new LoupeError('DEPLOYMENT_INVALID', `version "${version}" of ${name} is not a semantic version`, { input: name });
    if (BUILTIN_COMPONENTS[name])
      throw new LoupeError('DEPLOYMENT_INVALID', `${name} is built into the local nucleus and cannot be deployed`, { input: name });
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
    for (const r of chosen.values())
      for (const [dep, d] of Object.entries(r.recipe.dependencies))
        add(dep, { range: d.versionRequirement, from: `${r.name}@${r.version}` });
    let changed = false;
    for (const [name, cs] of constraints) {
      if (BUILTIN_COMPONENTS[name]) {
        const v = BUILTIN_COMPONENTS[name]!;
        const bad = cs.find((c) => !semver.satisfies(v, c.range, { includePrerelease: true }));
        if (bad)
          throw new LoupeError('DEPENDENCY_UNSATISFIED', `${bad.from} needs ${name} ${bad.range}, but this nucleus provides ${v}`, {
            input: name,
          });
        continue;
      }
      const inline = fixed.get(name);
      const versions = inline ? [inline.version] : await store.versions(name);
      const fits = (v: string) => cs.every((c) => semver.satisfies(v, c.range, { includePrerelease: true }));
      // As the real DependencyResolver: a version already running that satisfies every
      // requirement is kept rather than upgraded to the newest one in the store.
      const running = active.get(name);
      const pick = running !== undefined && versions.includes(running) && fits(running) ? running : versions.find(fits);
      if (!pick) {
        const wants = cs.map((c) => `${c.range} (from ${c.from})`).join(', ');
        throw new LoupeError(
          'DEPENDENCY_UNSATISFIED',
          `no version satisfies ${wants}; the store has ${versions.length ? versions.join(', ') : 'none'}`,
          { input: name },
        );
      }
      if (chosen.get(name)?.version !== pick) {
        chosen.set(name, { name, version: pick, recipe: inline ?? (await load(name, pick)) });
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
  throw new LoupeError('DEPENDENCY_UNSATISFIED', 'dependency resolution did not settle (conflicting ranges)', {
    input: [...roots.keys()].join(', '),
  });
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
