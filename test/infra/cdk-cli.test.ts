import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseInfraConfig } from '../../cloud/infra/config.js';
import { cdkBin, cdkCommand } from '../../cloud/infra/cdk-cli.js';
import { LoupeError } from '../../lib/errors.js';
import { synthesizedOnce } from '../helpers/synth-once.js';

/**
 * `loupe aws deploy|diff|destroy|bootstrap` run the CDK CLI of this checkout on the assembly
 * `loupe aws synth` wrote. Deploying needs an AWS account, so the deploy path is tested on the
 * exact argument list it runs; that the real CDK CLI reads the assembly is tested by running it
 * (`cdk ls`, offline) on a synthesised one: the example configuration with a first fleet
 * deployment, as test/infra/cdk-app.test.ts synthesises it, so one vitest run synthesises it once
 * (the example without the deployment is synthesised in cfn-lint.full.test.ts).
 */
const raw = JSON.parse(readFileSync('cloud/infra/loupe.infra.example.json', 'utf8')) as Record<string, unknown>;
let dir: string;
let assembly: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lp-cdkcli-'));
  const config = parseInfraConfig(
    {
      ...raw,
      edge: {
        thingGroupName: 'press-line-3',
        components: { 'loupe.Camera': '1.0.0', 'loupe.Inference': '1.0.0', 'loupe.Uploader': '1.0.0', 'loupe.Model': '1.0.0' },
      },
    },
    'test',
  );
  assembly = (await synthesizedOnce(config, join(dir, 'cdk.out'))).outDir;
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('the CDK CLI commands', () => {
  it('deploy: every stack of the assembly, asking before broadening IAM, outputs to a file', () => {
    const { command, args } = cdkCommand('deploy', { assembly: 'cdk.out', outputsFile: 'outputs.json' });
    expect(command).toBe(process.execPath);
    expect(args).toEqual([
      cdkBin(),
      'deploy',
      '--app',
      resolve('cdk.out'),
      '--all',
      '--require-approval',
      'broadening',
      '--outputs-file',
      resolve('outputs.json'),
    ]);
  });

  it('deploy of named stacks with a profile and no approval prompt', () => {
    const { args } = cdkCommand('deploy', {
      assembly: '/x/cdk.out',
      stacks: ['loupe-storage', 'loupe-edge'],
      requireApproval: 'never',
      profile: 'plant',
    });
    expect(args.slice(1)).toEqual([
      'deploy',
      '--app',
      '/x/cdk.out',
      'loupe-storage',
      'loupe-edge',
      '--require-approval',
      'never',
      '--profile',
      'plant',
    ]);
  });

  it('diff, destroy --force, bootstrap aws://account/region', () => {
    expect(cdkCommand('diff', { assembly: '/a' }).args.slice(1)).toEqual(['diff', '--app', '/a', '--all']);
    expect(cdkCommand('destroy', { assembly: '/a', force: true }).args.slice(1)).toEqual(['destroy', '--app', '/a', '--all', '--force']);
    expect(cdkCommand('bootstrap', { assembly: '/a', environment: 'aws://111122223333/eu-west-1' }).args.slice(1)).toEqual([
      'bootstrap',
      '--app',
      '/a',
      'aws://111122223333/eu-west-1',
    ]);
  });

  it('a malformed bootstrap environment is refused naming it', () => {
    expect(() => cdkCommand('bootstrap', { assembly: '/a', environment: 'aws://12/eu-west-1' })).toThrow(LoupeError);
    expect(() => cdkCommand('bootstrap', { assembly: '/a', environment: 'aws://12/eu-west-1' })).toThrow(
      /aws:\/\/<12-digit account>\/<region>/,
    );
  });

  it('the real CDK CLI reads the synthesised assembly (cdk ls, offline) and lists the five stacks in deploy order', () => {
    const r = spawnSync(process.execPath, [cdkBin(), 'ls', '--app', assembly, '--no-notices', '--no-version-reporting'], {
      encoding: 'utf8',
      env: { ...process.env, CDK_DISABLE_CLI_TELEMETRY: 'true', AWS_REGION: 'eu-west-1' },
      timeout: 120_000,
    });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.trim().split('\n')).toEqual(['loupe-storage', 'loupe-edge', 'loupe-labelling', 'loupe-model-build', 'loupe-deploy']);
  });
});
