import { afterAll, beforeAll, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseInfraConfig } from '../../cloud/infra/config.js';
import { synthesize, type SynthSummary } from '../../cloud/infra/synth.js';
import { AWS_TOOLS_VENV, awsToolsBin } from '../../cloud/infra/tools.js';
import { ensureVenv } from '../../cloud/training/venv.js';

/**
 * cfn-lint (PyPI, AWS's CloudFormation linter with the published resource schemas) on every
 * template of the synthesised app, with and without the optional first fleet deployment.
 * Full tier: it runs Python from the aws-tools venv (`loupe setup aws-tools`; made here when missing).
 * The only check switched off is in cloud/infra/.cfnlintrc.yaml, with its reason.
 */
const raw = JSON.parse(readFileSync('cloud/infra/loupe.infra.example.json', 'utf8')) as Record<string, unknown>;
const variants = {
  example: parseInfraConfig(raw, 'example'),
  'with first deployment': parseInfraConfig(
    {
      ...raw,
      edge: {
        thingGroupName: 'press-line-3',
        components: { 'loupe.Camera': '1.0.0', 'loupe.Inference': '1.0.0', 'loupe.Uploader': '1.0.0', 'loupe.Model': '1.0.0' },
      },
    },
    'with-deployment',
  ),
};

let dir: string;
const synthesized: Record<string, SynthSummary> = {};

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lp-cfnlint-'));
  await ensureVenv(undefined, AWS_TOOLS_VENV);
  for (const [name, c] of Object.entries(variants)) synthesized[name] = await synthesize(c, join(dir, name.replace(/ /g, '-')));
}, 600_000);
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

it.each(Object.keys(variants))('cfn-lint finds nothing in any template (%s)', (name) => {
  const templates = synthesized[name]!.stacks.map((s) => s.template);
  expect(templates).toHaveLength(5);
  const r = spawnSync(awsToolsBin('cfn-lint'), ['--config-file', 'cloud/infra/.cfnlintrc.yaml', '--', ...templates], { encoding: 'utf8' });
  expect(r.stdout + r.stderr).toBe('');
  expect(r.status).toBe(0);
});
