import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The project root: the nearest folder above this file holding package.json, whether running
 * from sources (`lib/paths.ts`), from `dist/lib/paths.js`, or from an unpacked component
 * artefact ZIP (which carries its own package.json beside `dist/`).
 */
export const projectRoot: string = (() => {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    const up = dirname(dir);
    if (up === dir) throw new Error('loupe: cannot find the project root above ' + fileURLToPath(import.meta.url));
    dir = up;
  }
})();

/** `../shared` beside the checkout (read-only data sets and notes); LOUPE_SHARED overrides. */
export function sharedDir(): string {
  return resolve(process.env.LOUPE_SHARED ?? join(projectRoot, '..', 'shared'));
}

export function sharedDataset(name: 'metal-tags' | 'neu-det'): string {
  return join(sharedDir(), 'datasets', name);
}

/** Where loupe keeps caches that survive clean clones (venvs, exported test models). */
export function cacheDir(): string {
  return resolve(process.env.LOUPE_CACHE ?? join(process.env.HOME ?? '/tmp', '.cache', 'loupe'));
}
