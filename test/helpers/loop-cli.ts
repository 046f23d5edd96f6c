/**
 * `loupe loop ...` with only the loop command registered: the same `register()` the CLI
 * discovers, without loading every other command module. The crash tests spawn this many
 * times, and while the team works in one tree, a half-edited module of another command must
 * not stop them. Usage: node dist/test/helpers/loop-cli.js run --home DIR --json
 */
import { Command } from 'commander';
import { isLoupeError, errorMessage } from '../../lib/errors.js';
import { register } from '../../cli/commands/loop.js';

const program = new Command('loupe').exitOverride();
register(program);
try {
  await program.parseAsync(['node', 'loupe', 'loop', ...process.argv.slice(2)]);
} catch (e) {
  process.stderr.write(`loupe: ${errorMessage(e)}\n`);
  process.exitCode = isLoupeError(e) ? e.exitCode : 1;
}
