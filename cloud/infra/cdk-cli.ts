import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { LoupeError } from '../../lib/errors.js';

/**
 * `loupe aws deploy|diff|destroy|bootstrap`: the AWS CDK CLI (the `aws-cdk` npm package of this
 * checkout, not a global install) run on the cloud assembly `loupe aws synth` wrote, so what is
 * deployed is exactly what was synthesised and checked (cdk-nag, cfn-lint in CI). The command is
 * built here and run as given; tests check the exact argument lists.
 */
export type CdkVerb = 'deploy' | 'diff' | 'destroy' | 'bootstrap';

export interface CdkOptions {
  /** The cloud assembly folder (what `loupe aws synth --out` wrote). */
  assembly: string;
  /** Stacks to act on (default: all). */
  stacks?: string[];
  profile?: string;
  /** deploy: when to ask before IAM or security-group changes (CDK's --require-approval). */
  requireApproval?: 'never' | 'any-change' | 'broadening';
  /** deploy: write the stacks' outputs to this JSON file (CDK's --outputs-file). */
  outputsFile?: string;
  /** bootstrap: aws://<account>/<region>. */
  environment?: string;
  /** destroy: no confirmation prompt. */
  force?: boolean;
}

/** The `aws-cdk` package's CLI entry (bin/cdk) in this checkout. */
export function cdkBin(): string {
  const require = createRequire(import.meta.url);
  let pkg: string;
  try {
    pkg = require.resolve('aws-cdk/package.json');
  } catch {
    throw new LoupeError(
      'INFRA_NO_CDK',
      'the AWS CDK CLI (npm package aws-cdk, a development dependency) is not installed: run npm ci in the checkout',
    );
  }
  const bin = (require(pkg) as { bin: Record<string, string> }).bin.cdk!;
  return join(dirname(pkg), bin);
}

export function cdkCommand(verb: CdkVerb, o: CdkOptions): { command: string; args: string[] } {
  const args = [cdkBin(), verb];
  if (verb === 'bootstrap') {
    if (o.environment && !/^aws:\/\/\d{12}\/[a-z]{2}(-[a-z]+)+-\d$/.test(o.environment)) {
      throw new LoupeError('INFRA_BAD_ENV', 'expected aws://<12-digit account>/<region>', { input: o.environment });
    }
    args.push('--app', resolve(o.assembly));
    if (o.environment) args.push(o.environment);
  } else {
    args.push('--app', resolve(o.assembly));
    if (o.stacks?.length) args.push(...o.stacks);
    else args.push('--all');
    if (verb === 'deploy') {
      args.push('--require-approval', o.requireApproval ?? 'broadening');
      if (o.outputsFile) args.push('--outputs-file', resolve(o.outputsFile));
    }
    if (verb === 'destroy' && o.force) args.push('--force');
  }
  if (o.profile) args.push('--profile', o.profile);
  return { command: process.execPath, args };
}

/** Run the CDK CLI with the terminal attached (it prompts for approvals); resolves with its exit code. */
export function runCdk(verb: CdkVerb, o: CdkOptions, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const { command, args } = cdkCommand(verb, o);
  return new Promise((res, rej) => {
    const child = spawn(command, args, { stdio: 'inherit', env });
    child.on('error', rej);
    child.on('exit', (code, signal) => res(code ?? (signal ? 128 : 1)));
  });
}
