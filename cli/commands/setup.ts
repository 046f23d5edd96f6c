import type { Command } from 'commander';
import { createLogger } from '../../lib/log.js';
import { ensureVenv, venvDir, venvReady } from '../../cloud/training/venv.js';

export function register(program: Command): void {
  const setup = program.command('setup').description('prepare local dependencies');
  setup
    .command('python')
    .description('create (or reuse) the pinned trainer venv used by `loupe train` and the ultralytics cross-checks')
    .option('--check', 'only report whether the venv is ready')
    .action(async (opts: { check?: boolean }) => {
      const log = createLogger('setup', { stream: 'stderr' });
      if (opts.check) {
        const ready = venvReady();
        process.stdout.write(JSON.stringify({ venv: venvDir(), ready }) + '\n');
        if (!ready) process.exitCode = 1;
        return;
      }
      const dir = await ensureVenv(log);
      process.stdout.write(JSON.stringify({ venv: dir, ready: true }) + '\n');
    });
}
