import type { Command } from 'commander';
import { resolve } from 'node:path';
import { LoupeError } from '../../lib/errors.js';
import { DEFAULT_INFRA_CONFIG_FILE, readInfraConfig } from '../../cloud/infra/config.js';
import type { CdkOptions, CdkVerb } from '../../cloud/infra/cdk-cli.js';
import type { SynthSummary } from '../../cloud/infra/synth.js';

const out = (line: string) => process.stdout.write(line + '\n');

interface Common {
  config: string;
  out: string;
}

function summaryLines(s: SynthSummary): string[] {
  const lines = [`cloud assembly: ${s.outDir}`];
  for (const st of s.stacks) {
    const types = Object.entries(st.types)
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([t, n]) => `${t.replace(/^AWS::/, '')} ${n}`)
      .join(', ');
    lines.push(`  ${st.name.padEnd(20)} ${String(st.resources).padStart(3)} resources  ${st.template}`);
    lines.push(`  ${''.padEnd(20)}     ${types}`);
  }
  lines.push(
    `cdk-nag ${s.nag.plugin}: ${s.nag.conclusion}, ${s.nag.violations} unacknowledged, ${s.nag.acknowledged} acknowledged with reasons (${s.nag.report})`,
  );
  lines.push(`assets: ${s.assets.dockerImages} Docker images (built by deploy, not here), ${s.assets.files} files`);
  return lines;
}

/**
 * `loupe aws synth|deploy|diff|destroy|bootstrap`: the cloud side at scale as code (cloud/infra).
 * synth needs no AWS account (and no Docker engine); the others run the CDK CLI of this checkout
 * on the synthesised assembly with the AWS credentials of the environment (or --profile).
 */
export function register(program: Command): void {
  const aws = program
    .command('aws')
    .description('the cloud side on AWS as code: CDK app (storage, edge access, labelling, model build, deploy)');
  const common = (c: Command) =>
    c
      .option('--config <file>', 'the app configuration (cloud/infra/config.ts)', DEFAULT_INFRA_CONFIG_FILE)
      .option('--out <dir>', 'cloud assembly folder', 'cdk.out');

  common(aws.command('synth'))
    .description('synthesise the CloudFormation templates offline (cdk-nag AwsSolutions checked; fails on an unacknowledged finding)')
    .option('--json', 'print the summary as JSON')
    .action(async (o: Common & { json?: boolean }) => {
      const c = readInfraConfig(resolve(o.config));
      const { synthesize } = await import('../../cloud/infra/synth.js');
      const s = await synthesize(c, o.out);
      if (o.json) out(JSON.stringify(s));
      else for (const l of summaryLines(s)) out(l);
    });

  const cdk = (verb: CdkVerb, description: string, extra: (c: Command) => Command = (c) => c) =>
    extra(common(aws.command(verb)))
      .description(description)
      .argument('[stacks...]', 'stacks to act on (default: all)')
      .option('--profile <name>', 'AWS profile for the CDK CLI')
      .option('--no-synth', 'use the assembly in --out as it is')
      .action(
        async (
          stacks: string[],
          o: Common & {
            profile?: string;
            synth: boolean;
            requireApproval?: CdkOptions['requireApproval'];
            outputsFile?: string;
            force?: boolean;
            environment?: string;
          },
        ) => {
          if (o.synth) {
            const c = readInfraConfig(resolve(o.config));
            const { synthesize } = await import('../../cloud/infra/synth.js');
            for (const l of summaryLines(await synthesize(c, o.out))) process.stderr.write(l + '\n');
          }
          const { runCdk } = await import('../../cloud/infra/cdk-cli.js');
          const code = await runCdk(verb, {
            assembly: o.out,
            stacks,
            profile: o.profile,
            requireApproval: o.requireApproval,
            outputsFile: o.outputsFile,
            force: o.force,
            environment: o.environment,
          });
          if (code !== 0) throw new LoupeError('INFRA_CDK_FAILED', `cdk ${verb} exited with ${code}`, { exitCode: code });
        },
      );

  cdk('deploy', 'synthesise, then cdk deploy the stacks in order (storage, edge, labelling, model-build, deploy)', (c) =>
    c
      .option('--require-approval <when>', 'never | any-change | broadening (ask before IAM changes)', 'broadening')
      .option('--outputs-file <file>', "write the stacks' outputs (bucket names, thing group, role alias, loop.json) to this JSON file"),
  );
  cdk('diff', 'synthesise, then show what cdk deploy would change');
  cdk('destroy', 'cdk destroy the stacks (buckets, feature group and model registry stay unless storage.removalPolicy is "destroy")', (c) =>
    c.option('--force', 'do not ask'),
  );
  cdk('bootstrap', 'cdk bootstrap the account and region (once per account/region, before the first deploy)', (c) =>
    c.option('--environment <aws://account/region>', 'where to bootstrap (default: the configuration and credentials)'),
  );
}
