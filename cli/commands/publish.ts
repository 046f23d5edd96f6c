import type { Command } from 'commander';
import { createLogger } from '../../lib/log.js';
import { publishComponents } from '../../components/build/publish.js';

/**
 * `loupe publish`: upload the built artefacts to S3 and create the component versions on AWS IoT
 * Greengrass (CreateComponentVersion), as `gdk component publish` does. Uses the default AWS
 * credential chain and region.
 */
export function register(program: Command): void {
  program
    .command('publish')
    .description('create the built component versions on AWS IoT Greengrass (artefacts to S3, CreateComponentVersion)')
    .requiredOption('--bucket <name>', 'S3 bucket for the artefacts')
    .option('--region <region>', 'AWS region (default: AWS_REGION or us-east-1)')
    .option('--build-dir <dir>', 'output of `loupe build`', 'greengrass-build')
    .option('--component <name...>', 'only these components')
    .option('--json', 'print the result as JSON')
    .action(async (o: { bucket: string; region?: string; buildDir: string; component?: string[]; json?: boolean }) => {
      const log = createLogger('publish', { stream: 'stderr' });
      const r = await publishComponents({ bucket: o.bucket, buildDir: o.buildDir, ...(o.region ? { region: o.region } : {}), ...(o.component ? { components: o.component } : {}), log });
      process.stdout.write(o.json ? JSON.stringify(r) + '\n' : r.map((c) => `${c.component}@${c.version} ${c.status ?? ''} ${c.arn ?? ''}`).join('\n') + '\n');
    });
}
