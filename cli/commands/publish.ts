import type { Command } from 'commander';
import { createLogger } from '../../lib/log.js';
import { LoupeError } from '../../lib/errors.js';
import { publishComponents } from '../../components/build/publish.js';

/**
 * `loupe publish`: upload the built artefacts to S3 and create the component versions on AWS IoT
 * Greengrass (CreateComponentVersion), as `gdk component publish` does, then wait until each is
 * DEPLOYABLE. Uses the default AWS credential chain and region.
 */
export function register(program: Command): void {
  program
    .command('publish')
    .description(
      'create the built component versions on AWS IoT Greengrass (artefacts to S3, CreateComponentVersion, wait until DEPLOYABLE)',
    )
    .requiredOption('--bucket <name>', 'S3 bucket for the artefacts')
    .option('--region <region>', 'AWS region (default: AWS_REGION or us-east-1)')
    .option('--build-dir <dir>', 'output of `loupe build`', 'greengrass-build')
    .option('--component <name...>', 'only these components')
    .option('--deployable-timeout <s>', 'seconds to wait for each version to become DEPLOYABLE', '300')
    .option('--json', 'print the result as JSON')
    .action(
      async (o: { bucket: string; region?: string; buildDir: string; component?: string[]; deployableTimeout: string; json?: boolean }) => {
        const log = createLogger('publish', { stream: 'stderr' });
        const timeout = Number(o.deployableTimeout);
        if (!Number.isFinite(timeout) || timeout <= 0)
          throw new LoupeError('cli.timeout', 'must be a positive number of seconds', {
            input: `--deployable-timeout ${o.deployableTimeout}`,
          });
        const r = await publishComponents({
          bucket: o.bucket,
          buildDir: o.buildDir,
          ...(o.region ? { region: o.region } : {}),
          ...(o.component ? { components: o.component } : {}),
          deployableTimeoutMs: timeout * 1000,
          log,
        });
        process.stdout.write(
          o.json
            ? JSON.stringify(r) + '\n'
            : r.map((c) => `${c.component}@${c.version} ${c.status ?? ''} ${c.arn ?? ''}`).join('\n') + '\n',
        );
      },
    );
}
