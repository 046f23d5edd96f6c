import { execFile } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, symlinkSync, statSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildComponents, type BuildResult } from '../../components/build/build.js';
import { BUILD_COMPONENTS } from '../../components/build/recipes.js';
import { silentLogger } from '../../lib/log.js';
import { projectRoot } from '../../lib/paths.js';
import { gdkBin } from '../../cli/setup/gdk.js';
import { ensureBuilt } from '../helpers/edge.js';

/**
 * The real GDK CLI (../shared/tools/gdk, 1.6.2, installed into a cached venv by `loupe setup gdk`,
 * part of the `loupe setup all` that .ci/run runs) builds
 * each of loupe's components from its GDK project (recipes/<name>/: gdk-config.json +
 * recipe.json; and the top-level project, loupe.Model), and what it produces is byte for byte
 * what `loupe build` produces: the same recipes, the same artefacts, nothing more. Each project
 * is run from a copy beside a link to this checkout's bin/, so GDK (which empties its
 * greengrass-build/ first) never touches the checkout.
 */
const GDK = gdkBin();
const run = promisify(execFile);
let dir: string;
let reference: BuildResult;

function files(root: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory()) walk(join(d, e.name));
      else out.push(relative(root, join(d, e.name)));
    }
  };
  if (existsSync(root)) walk(root);
  return out.sort();
}

/** A copy of a GDK project at the same depth below `dir` as in the checkout, with bin/ linked. */
function project(rel: string): string {
  const p = join(dir, 'p', rel);
  mkdirSync(p, { recursive: true });
  for (const f of ['gdk-config.json', 'recipe.json']) copyFileSync(join(projectRoot, rel, f), join(p, f));
  return p;
}

beforeAll(async () => {
  expect(existsSync(GDK), `${GDK}: the GDK CLI venv (.ci/run installs it)`).toBe(true);
  ensureBuilt();
  dir = mkdtempSync('/tmp/lgdk-');
  mkdirSync(join(dir, 'p'));
  symlinkSync(join(projectRoot, 'bin'), join(dir, 'p', 'bin'));
  reference = await buildComponents({ outDir: join(dir, 'loupe-build'), log: silentLogger });
}, 600_000);

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('gdk component build (GDK CLI 1.6.2)', () => {
  const projects = [...BUILD_COMPONENTS.map((c) => ({ component: c, rel: join('recipes', c) })), { component: 'loupe.Model', rel: '.' }];
  for (const { component, rel } of projects) {
    it(`${rel === '.' ? 'the top-level project' : rel} builds ${component}: the same recipe and artefacts as loupe build, byte for byte`, async () => {
      const p = project(rel);
      const { stdout, stderr } = await run(GDK, ['component', 'build'], { cwd: p, maxBuffer: 16 * 1024 * 1024, timeout: 600_000 });
      // What GDK printed, without the build's own JSON progress lines.
      console.log(
        `$ gdk component build   # in ${rel}\n${(stderr + stdout)
          .split('\n')
          .filter((l) => l && !l.startsWith('{"level"'))
          .join('\n')}`,
      );
      const got = files(join(p, 'greengrass-build'));
      const version = reference.recipes.find((r) => r.component === component)!.version;
      const want = files(reference.outDir).filter(
        (f) => f === join('recipes', `${component}-${version}.json`) || f.startsWith(join('artifacts', component, version) + '/'),
      );
      expect(got).toEqual(want);
      for (const f of want) {
        const a = readFileSync(join(p, 'greengrass-build', f));
        const b = readFileSync(join(reference.outDir, f));
        expect(a.equals(b), `${f} (${statSync(join(p, 'greengrass-build', f)).size} vs ${b.length} bytes)`).toBe(true);
      }
    }, 600_000);
  }
});
