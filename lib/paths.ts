import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LoupeError } from './errors.js';

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

/**
 * Where a data set lives. metal-tags (7 MB, MIT-0) ships inside the project beside the model it
 * trained (models/metal-tags/dataset), so a plain clone runs the demo; NEU-DET (37 MB) stays in
 * ../shared/datasets (LOUPE_SHARED overrides ../shared).
 */
export function datasetDir(name: 'metal-tags' | 'neu-det'): string {
  return name === 'metal-tags' ? join(projectRoot, 'models', 'metal-tags', 'dataset') : join(sharedDir(), 'datasets', name);
}

/** datasetDir, or a clear error naming where the data set was looked for and how to get it. */
export function requireDataset(name: 'metal-tags' | 'neu-det'): string {
  const dir = datasetDir(name);
  if (!existsSync(dir)) {
    throw new LoupeError(
      'DATASET_MISSING',
      name === 'neu-det'
        ? `the NEU-DET data set is not shipped with loupe; put it at ${dir} (a checkout of ../shared beside the project) or point LOUPE_SHARED at a folder holding datasets/neu-det`
        : `the shipped metal-tags data set is missing from ${dir} (an incomplete checkout?)`,
      { input: dir },
    );
  }
  return dir;
}

/** Where loupe keeps caches that survive clean clones (venvs, exported test models). */
export function cacheDir(): string {
  return resolve(process.env.LOUPE_CACHE ?? join(process.env.HOME ?? '/tmp', '.cache', 'loupe'));
}

/**
 * The loop installation's state folder when no --home is given: LOUPE_HOME, else `.loupe` in the
 * project (not the current directory, so every command finds the same state from any folder).
 */
export function defaultHome(): string {
  return resolve(process.env.LOUPE_HOME ?? join(projectRoot, '.loupe'));
}

/** The shipped default model (models/metal-tags). */
export function defaultModelDir(): string {
  return join(projectRoot, 'models', 'metal-tags');
}
