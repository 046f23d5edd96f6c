import { cpSync, mkdtempSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { projectRoot } from '../../lib/paths.js';

/**
 * A private, frozen copy of the built project for tests that start many CLI processes over
 * minutes: several people rebuild the shared dist/ while they work, and a process started while
 * tsc rewrites a file would load half of it. The copy holds dist/ itself and links to everything
 * else (package.json, sources, recipes, models, node_modules), so `projectRoot` resolves to it and
 * the code behaves as from the checkout. `bin` is the copy's loupe launcher.
 */
export interface DistSnapshot {
  root: string;
  bin: string;
  /** A compiled file inside the copy, e.g. file('test/helpers/loop-cli.js'). */
  file(rel: string): string;
  remove(): void;
}

export function snapshotDist(): DistSnapshot {
  const root = mkdtempSync(join(tmpdir(), 'loupe-dist-'));
  cpSync(join(projectRoot, 'dist'), join(root, 'dist'), { recursive: true });
  for (const entry of readdirSync(projectRoot)) {
    if (entry === 'dist' || entry === '.git') continue;
    symlinkSync(join(projectRoot, entry), join(root, entry));
  }
  return {
    root,
    bin: join(root, 'bin', 'loupe.js'),
    file: (rel) => join(root, 'dist', rel),
    remove: () => rmSync(root, { recursive: true, force: true }),
  };
}
