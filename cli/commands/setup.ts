import type { Command } from 'commander';
import { createLogger } from '../../lib/log.js';
import { SETUP_PARTS, type SetupPart } from '../setup/parts.js';

/**
 * `loupe setup <part>|all|list`: everything a fresh Debian machine needs beyond `npm ci`, in
 * named parts (cli/setup/parts.ts). Each part is idempotent; `--check` only reports (exit 1 when
 * not ready); stdout gets one JSON object per part, progress and logs go to stderr.
 */
interface SetupCliOptions {
  check?: boolean;
  dryRun?: boolean;
  json?: boolean;
}

async function runParts(parts: SetupPart[], o: SetupCliOptions): Promise<void> {
  const log = createLogger('setup', { stream: 'stderr' });
  let notReady = 0;
  for (const part of parts) {
    const result = o.check
      ? await part.check()
      : await part.install({ log, interactive: Boolean(process.stdin.isTTY), dryRun: Boolean(o.dryRun) });
    if (!result.ready) notReady++;
    process.stdout.write(`${JSON.stringify({ part: part.name, ...result })}\n`);
  }
  if (notReady && (o.check || o.dryRun)) process.exitCode = 1;
}

export function register(program: Command): void {
  const setup = program
    .command('setup')
    .description('prepare this machine: system packages and users, the trainer venv (`loupe setup all` does everything)');
  for (const part of SETUP_PARTS) {
    setup
      .command(part.name)
      .description(part.summary)
      .option('--check', 'only report whether it is ready (exit 1 if not)')
      .option('--dry-run', 'print what would be done, change nothing')
      .option('--json', 'JSON lines on stderr as well')
      .action((o: SetupCliOptions) => runParts([part], o));
  }
  setup
    .command('all')
    .description(`every part in order: ${SETUP_PARTS.map((p) => p.name).join(', ')}`)
    .option('--check', 'only report whether each part is ready (exit 1 if any is not)')
    .option('--dry-run', 'print what would be done, change nothing')
    .option('--json', 'JSON lines on stderr as well')
    .action((o: SetupCliOptions) => runParts(SETUP_PARTS, o));
  setup
    .command('list')
    .description('the parts and whether each is ready')
    .action(async () => {
      for (const p of SETUP_PARTS) {
        const c = await p.check();
        process.stdout.write(`${c.ready ? 'ready    ' : 'missing  '}${p.name.padEnd(10)} ${p.summary}\n`);
      }
    });
}
