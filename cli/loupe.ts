import { Command, CommanderError } from 'commander';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { isLoupeError, errorMessage } from '../lib/errors.js';
import { projectRoot } from '../lib/paths.js';
import { loadCommandModules } from './commands/index.js';
import { configureOutput, ignoreClosedPipes, say } from '../lib/terminal.js';

/**
 * `loupe`: one command with sub-commands. Each sub-command lives in cli/commands/<name>.ts and
 * registers itself; this file only wires them and turns errors into messages and exit codes.
 */
const pkg = JSON.parse(readFileSync(join(projectRoot, 'package.json'), 'utf8')) as { version: string };

export async function main(argv: string[]): Promise<number> {
  ignoreClosedPipes(); // `loupe labels list | head`: the reader leaving is not an error of the command
  const program = new Command('loupe')
    .description('Visual quality inspection at the factory edge (YOLOv8 on ONNX Runtime, Greengrass v2)')
    .version(pkg.version)
    .option(
      '--log-format <fmt>',
      'stderr output: human (readable lines, progress bars), json (one JSON event per line) or auto (human on a terminal; json with --json or when piped)',
    )
    .showHelpAfterError()
    .exitOverride();
  // One output rule for every command (lib/terminal.ts), settled before any action runs.
  program.hook('preAction', (_root, action) => {
    const o = action.optsWithGlobals() as { json?: boolean; logFormat?: string };
    configureOutput({ json: o.json, logFormat: o.logFormat });
  });
  for (const mod of await loadCommandModules(argv)) mod.register(program);
  try {
    await program.parseAsync(argv);
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode;
    if (isLoupeError(e)) {
      say(`loupe: ${e.message}`);
      return e.exitCode;
    }
    say(`loupe: ${errorMessage(e)}`);
    if (process.env.LOUPE_DEBUG) process.stderr.write(`${(e as Error)?.stack ?? ''}\n`);
    return 1;
  }
}

const code = await main(process.argv);
process.exitCode = code;
