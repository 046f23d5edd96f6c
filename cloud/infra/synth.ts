import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { LoupeError, errorMessage } from '../../lib/errors.js';
import type { InfraConfig } from './config.js';

/**
 * `loupe aws synth`: the CDK app synthesised into a cloud assembly (CloudFormation templates,
 * asset manifests, cdk-nag's validation report), offline. What it needs: the configuration and
 * this checkout built (`npm run build`: the cloud image's asset is staged from dist/). No AWS
 * account, credentials or Docker engine: stacks are account-agnostic unless the configuration
 * names an account, and Docker assets are only staged and hashed here (`cdk deploy` builds them).
 */
export interface StackSummary {
  name: string;
  template: string;
  resources: number;
  types: Record<string, number>;
  outputs: string[];
}

export interface SynthSummary {
  outDir: string;
  stacks: StackSummary[];
  nag: { plugin: string; conclusion: string; violations: number; acknowledged: number; report: string };
  assets: { dockerImages: number; files: number };
}

/** Read what a synthesised cloud assembly holds (templates, resource counts, nag report). */
export function summarizeAssembly(outDir: string): SynthSummary {
  const manifest = JSON.parse(readFileSync(join(outDir, 'manifest.json'), 'utf8')) as {
    artifacts: Record<string, { type: string; properties?: { templateFile?: string } }>;
  };
  const stacks: StackSummary[] = [];
  const images = new Set<string>();
  const files = new Set<string>();
  for (const [name, a] of Object.entries(manifest.artifacts)) {
    if (a.type === 'cdk:asset-manifest') {
      const m = JSON.parse(readFileSync(join(outDir, `${name.replace(/\.assets$/, '')}.assets.json`), 'utf8')) as {
        files?: Record<string, unknown>;
        dockerImages?: Record<string, unknown>;
      };
      for (const k of Object.keys(m.dockerImages ?? {})) images.add(k);
      for (const k of Object.keys(m.files ?? {})) files.add(k);
    }
    if (a.type !== 'aws:cloudformation:stack' || !a.properties?.templateFile) continue;
    const template = join(outDir, a.properties.templateFile);
    const t = JSON.parse(readFileSync(template, 'utf8')) as {
      Resources?: Record<string, { Type: string }>;
      Outputs?: Record<string, unknown>;
    };
    const types: Record<string, number> = {};
    for (const r of Object.values(t.Resources ?? {})) types[r.Type] = (types[r.Type] ?? 0) + 1;
    stacks.push({ name, template, resources: Object.keys(t.Resources ?? {}).length, types, outputs: Object.keys(t.Outputs ?? {}) });
  }
  const reportFile = join(outDir, 'validation-report.json');
  let nag: SynthSummary['nag'] = { plugin: 'AwsSolutions', conclusion: 'not run', violations: -1, acknowledged: -1, report: reportFile };
  if (existsSync(reportFile)) {
    const r = JSON.parse(readFileSync(reportFile, 'utf8')) as {
      pluginReports: {
        pluginName: string;
        conclusion: string;
        violations: unknown[];
        suppressedViolations?: { violatingConstructs: unknown[] }[];
      }[];
    };
    const p = r.pluginReports.find((x) => x.pluginName === 'AwsSolutions');
    if (p) {
      const acknowledged = (p.suppressedViolations ?? []).reduce((n, v) => n + v.violatingConstructs.length, 0);
      nag = { plugin: p.pluginName, conclusion: p.conclusion, violations: p.violations.length, acknowledged, report: reportFile };
    }
  }
  return { outDir, stacks, nag, assets: { dockerImages: images.size, files: files.size } };
}

/** Synthesise the app into `outDir`; a cdk-nag finding that is not acknowledged fails with INFRA_NAG (the report names it). */
export async function synthesize(c: InfraConfig, outDir: string): Promise<SynthSummary> {
  let buildApp: typeof import('./app.js').buildApp;
  try {
    ({ buildApp } = await import('./app.js'));
  } catch (e) {
    throw new LoupeError(
      'INFRA_NO_CDK',
      `the CDK app needs the development dependencies (aws-cdk-lib, constructs, cdk-nag): run npm ci in the checkout (${errorMessage(e).split('\n')[0]})`,
    );
  }
  const out = resolve(outDir);
  const { app } = buildApp(c, { outdir: out });
  try {
    app.synth();
  } catch (e) {
    if ((e as { name?: string }).name === 'ValidationFailed' || /ValidationFailed|AwsSolutions/.test(errorMessage(e))) {
      throw new LoupeError(
        'INFRA_NAG',
        `cdk-nag (AwsSolutions) found problems that are not acknowledged; see ${join(out, 'validation-report.json')}:\n${errorMessage(e).slice(0, 4000)}`,
      );
    }
    throw e;
  }
  return summarizeAssembly(out);
}
