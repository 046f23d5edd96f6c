import type { Command } from 'commander';
import { existsSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { LoupeError, errorMessage } from '../../lib/errors.js';

/**
 * Every sub-command is a module in this folder, named for the command, exporting
 * `register(program)`. Modules are found at start-up rather than listed, so adding a command
 * touches only its own file. Only the module of the command being run is imported (the others
 * pull in ONNX Runtime, the AWS SDK, ... and would cost start-up time and memory, e.g. for a
 * long-running `loupe nucleus start`); help and unknown commands load them all. A module that
 * fails to import is reported when its command is used and never takes the others down.
 */
export interface CommandModule {
  register(program: Command): void;
}

const here = dirname(fileURLToPath(import.meta.url));
const ext = fileURLToPath(import.meta.url).endsWith('.ts') ? '.ts' : '.js';

function moduleNames(): string[] {
  return readdirSync(here)
    .filter((f) => f.endsWith(ext) && !f.endsWith('.d.ts') && f !== `index${ext}`)
    .map((f) => f.slice(0, -ext.length))
    .sort();
}

async function load(name: string): Promise<CommandModule> {
  try {
    return (await import(pathToFileURL(join(here, name + ext)).href)) as CommandModule;
  } catch (e) {
    const failure = new LoupeError('CLI_MODULE_BROKEN', `the \`${name}\` command could not be loaded: ${errorMessage(e)}`);
    return {
      register(program) {
        program
          .command(name)
          .description(`(unavailable: ${errorMessage(e).split('\n')[0]})`)
          .allowUnknownOption()
          .argument('[args...]')
          .action(() => {
            throw failure;
          });
      },
    };
  }
}

/** The modules needed for this command line: the named command's alone, or all of them. */
export async function loadCommandModules(argv: string[]): Promise<CommandModule[]> {
  // The program's own option with a value (--log-format X) must not be taken for the command.
  const args = argv.slice(2).filter((a, i, all) => a !== '--log-format' && all[i - 1] !== '--log-format');
  const first = args.find((a) => !a.startsWith('-'));
  const wantsHelp = args.some((a) => a === '-h' || a === '--help');
  // `loupe --version` prints the package version: no command module is needed.
  if (!first && !wantsHelp && args.some((a) => a === '-V' || a === '--version')) return [];
  if (first && first !== 'help' && existsSync(join(here, first + ext))) {
    // `loupe <cmd> --help` still needs only <cmd>; `loupe --help` needs all.
    if (!wantsHelp || args.indexOf(first) < args.findIndex((a) => a === '-h' || a === '--help')) {
      return [await load(first)];
    }
  }
  return Promise.all(moduleNames().map(load));
}
