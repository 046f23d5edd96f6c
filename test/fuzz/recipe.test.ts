import fc from 'fast-check';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { stringify as toYaml } from 'yaml';
import { describe, expect, it } from 'vitest';
import { projectRoot } from '../../lib/paths.js';
import { parseRecipe } from '../../embedded/nucleus/componentmanager/recipe.js';
import { FUZZ_SECONDS, fuzz } from './harness.js';

/**
 * Fuzz target: the nucleus's recipe parser (embedded/nucleus/componentmanager/recipe.ts, called
 * as is). Inputs: the loupe recipes as JSON and YAML with characters changed, recipes whose
 * fields are replaced by random JSON values, random JSON documents, YAML alias bombs and deep
 * nesting. Property: a Recipe or a LoupeError naming the recipe, in bounded time and memory.
 */
const dir = join(projectRoot, 'recipes');
// one GDK project per component: recipes/<name>/recipe.json
const recipes = readdirSync(dir, { withFileTypes: true })
  .filter((d) => d.isDirectory() && existsSync(join(dir, d.name, 'recipe.json')))
  .map((d) => join(d.name, 'recipe.json'))
  // the source recipes carry the build's placeholders; a built recipe has a version there
  .map((f) => JSON.parse(readFileSync(join(dir, f), 'utf8').replaceAll('{COMPONENT_VERSION}', '1.0.0')) as Record<string, unknown>);
const texts = recipes.flatMap((r) => [
  { text: JSON.stringify(r, null, 2), fmt: 'json' as const },
  { text: toYaml(r), fmt: 'yaml' as const },
]);

const charEdit = fc
  .record({
    i: fc.nat({ max: texts.length - 1 }),
    edits: fc.array(fc.record({ at: fc.nat(), del: fc.nat({ max: 8 }), ins: fc.string({ maxLength: 6, unit: 'binary-ascii' }) }), {
      minLength: 1,
      maxLength: 5,
    }),
  })
  .map(({ i, edits }) => {
    let { text } = texts[i]!;
    for (const e of edits) {
      const at = text.length ? e.at % text.length : 0;
      text = text.slice(0, at) + e.ins + text.slice(at + e.del);
    }
    return { text, fmt: texts[i]!.fmt };
  });

const KEYS = [
  'RecipeFormatVersion',
  'ComponentName',
  'ComponentVersion',
  'ComponentType',
  'ComponentConfiguration',
  'ComponentDependencies',
  'Manifests',
  'Lifecycle',
  'Platform',
  'Artifacts',
  'Uri',
  'Digest',
  'Permission',
  'Selections',
  'Run',
  'Install',
  'Script',
  'Timeout',
  'Setenv',
  'RequiresPrivilege',
];
/** Replace one value somewhere in a recipe by a random JSON value. */
function replaceAt(v: unknown, path: number[], key: string, repl: unknown): unknown {
  if (path.length === 0 || v === null || typeof v !== 'object') return repl;
  if (Array.isArray(v)) {
    if (v.length === 0) return [repl];
    const i = path[0]! % v.length;
    return v.map((x, j) => (j === i ? replaceAt(x, path.slice(1), key, repl) : x));
  }
  const o = v as Record<string, unknown>;
  const keys = Object.keys(o);
  if (keys.length === 0) return { [key]: repl };
  const k = path[0]! % 3 === 0 ? key : keys[path[0]! % keys.length]!;
  return { ...o, [k]: replaceAt(o[k], path.slice(1), key, repl) };
}
const fieldSwap = fc
  .record({
    i: fc.nat({ max: recipes.length - 1 }),
    path: fc.array(fc.nat(), { maxLength: 5 }),
    key: fc.constantFrom(...KEYS),
    repl: fc.jsonValue({ maxDepth: 3 }),
    yaml: fc.boolean(),
  })
  .map(({ i, path, key, repl, yaml }) => {
    const doc = replaceAt(recipes[i], path, key, repl);
    return yaml ? { text: toYaml(doc), fmt: 'yaml' as const } : { text: JSON.stringify(doc), fmt: 'json' as const };
  });

const bombs = fc
  .record({
    levels: fc.integer({ min: 2, max: 12 }),
    width: fc.integer({ min: 2, max: 12 }),
    depth: fc.integer({ min: 10, max: 5000 }),
    kind: fc.constantFrom('aliases', 'nest-json', 'nest-yaml', 'long-key'),
  })
  .map(({ levels, width, depth, kind }) => {
    if (kind === 'aliases') {
      // the "billion laughs": each level lists the previous one `width` times by alias
      const lines = ['a0: &a0 [lol]'];
      for (let l = 1; l <= levels; l++) lines.push(`a${l}: &a${l} [${Array.from({ length: width }, () => `*a${l - 1}`).join(', ')}]`);
      lines.push(`ComponentName: *a${levels}`);
      return { text: lines.join('\n'), fmt: 'yaml' as const };
    }
    if (kind === 'nest-json')
      return { text: '{"ComponentConfiguration":' + '['.repeat(depth) + ']'.repeat(depth) + '}', fmt: 'json' as const };
    if (kind === 'nest-yaml') return { text: 'ComponentConfiguration: ' + '['.repeat(depth) + ']'.repeat(depth), fmt: 'yaml' as const };
    return { text: `RecipeFormatVersion: 2020-01-25\nComponentName: ${'x'.repeat(depth * 20)}\n`, fmt: 'yaml' as const };
  });

describe('fuzz: recipe parser', () => {
  it('the seeds parse (the loupe recipes, as JSON and as YAML)', () => {
    for (const t of texts) expect(parseRecipe(t.text, `seed.${t.fmt}`, t.fmt).name).toMatch(/^loupe\./);
  });

  it(
    'never crashes, hangs or blows up: a recipe or a LoupeError',
    () => {
      const input = fc.oneof(
        { weight: 4, arbitrary: charEdit },
        { weight: 4, arbitrary: fieldSwap },
        { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 4 }).map((v) => ({ text: JSON.stringify(v) ?? 'null', fmt: 'json' as const })) },
        { weight: 1, arbitrary: bombs },
      );
      const r = fuzz('recipe-parser', input, ({ text, fmt }, stats) =>
        stats.check(
          () => parseRecipe(text, `fuzz.${fmt}`, fmt),
          (recipe) => {
            const size = JSON.stringify(recipe).length;
            // an alias bomb expands; a parsed recipe may not be much larger than its text
            return size > 20 * text.length + 4096 ? `a ${size}-character recipe from ${text.length} characters` : null;
          },
        ),
      );
      expect(r.iterations).toBeGreaterThanOrEqual(20); // the budget is time: a loaded machine runs fewer
    },
    FUZZ_SECONDS * 1000 + 60_000,
  );
});
