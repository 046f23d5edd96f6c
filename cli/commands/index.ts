import type { Command } from 'commander';
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

/**
 * Every sub-command is a module in this folder exporting `register(program)`. They are found
 * at start-up rather than listed here, so adding a command touches only its own file.
 */
export interface CommandModule {
  register(program: Command): void;
}

const here = dirname(fileURLToPath(import.meta.url));
const ext = fileURLToPath(import.meta.url).endsWith('.ts') ? '.ts' : '.js';

export const commandModules: CommandModule[] = await Promise.all(
  readdirSync(here)
    .filter((f) => f.endsWith(ext) && !f.endsWith('.d.ts') && f !== `index${ext}`)
    .sort()
    .map(async (f) => (await import(pathToFileURL(join(here, f)).href)) as CommandModule),
);
