import type { Logger } from 'pino';
import { ensureVenv, venvDir, venvReady } from '../../cloud/training/venv.js';
import { AWS_TOOLS_VENV, awsToolsDir, awsToolsReady } from '../../cloud/infra/tools.js';
import { ensureGdk, gdkBin, gdkReady } from './gdk.js';
import { ensureS3Conformance, s3ConformancePython, s3ConformanceReady } from './s3conformance.js';
import { ensureSystem, systemReady, systemStatus, type SystemStatus } from './system.js';

/**
 * The named parts of `loupe setup`: each one checks whether this machine has it and installs it
 * when not, idempotently. `loupe setup all` runs them in this order. To add a part (a GDK venv,
 * moto, ...), add one entry here: the CLI, `setup all`, `setup list` and `.ci/run` pick it up.
 */
export interface SetupContext {
  log: Logger;
  /** A person at a terminal (sudo may ask for a password). */
  interactive: boolean;
  /** Print what would be done, change nothing. */
  dryRun: boolean;
}

export interface SetupPart {
  name: string;
  summary: string;
  /** Whether the part is in place, with what a person needs to know about it. */
  check(): Promise<{ ready: boolean } & Record<string, unknown>>;
  install(ctx: SetupContext): Promise<Record<string, unknown>>;
}

const systemDetails = (s: SystemStatus) => ({
  ready: systemReady(s),
  debian: s.debian,
  missingPackages: s.missingPackages,
  missingUser: s.missingUser,
  missingGroup: s.missingGroup,
});

export const SETUP_PARTS: SetupPart[] = [
  {
    name: 'system',
    summary:
      'Debian packages the tests and tools need (chromium, ffmpeg, python3-venv, Java 17, sudo, DejaVu fonts) and the Greengrass user ggc_user:ggc_group; uses sudo when not root',
    check: async () => systemDetails(systemStatus()),
    install: async (ctx) => systemDetails(await ensureSystem(ctx.log, ctx)),
  },
  {
    name: 'python',
    summary:
      'the pinned trainer venv (ultralytics, torch; cached under ~/.cache/loupe/venvs by the hash of cloud/training/requirements.txt)',
    check: async () => ({ ready: venvReady(), venv: venvDir() }),
    install: async (ctx) => {
      if (ctx.dryRun) return { ready: venvReady(), venv: venvDir() };
      return { ready: true, venv: await ensureVenv(ctx.log) };
    },
  },
  {
    name: 'gdk',
    summary:
      'the real Greengrass Development Kit CLI 1.6.2 (from ../shared/tools/gdk, dependencies from PyPI) in a venv under ~/.cache/loupe/gdk, for the GDK build tests',
    check: async () => ({ ready: gdkReady(), gdk: gdkBin() }),
    install: async (ctx) => ensureGdk(ctx.log, { dryRun: ctx.dryRun }),
  },
  {
    name: 's3conformance',
    summary:
      "boto3, pytest and requests (pinned) in a venv under ~/.cache/loupe/venvs, for the object store's S3 conformance suite (test/objectstore/conformance)",
    check: async () => ({ ready: s3ConformanceReady(), python: s3ConformancePython() }),
    install: async (ctx) =>
      ctx.dryRun
        ? { ready: s3ConformanceReady(), python: s3ConformancePython() }
        : { ready: true, python: await ensureS3Conformance(ctx.log) },
  },
  {
    name: 'aws-tools',
    summary:
      "moto's server and cfn-lint for the CDK app's tests (a small venv cached under ~/.cache/loupe/venvs by the hash of cloud/infra/requirements-tools.txt)",
    check: async () => ({ ready: awsToolsReady(), venv: awsToolsDir() }),
    install: async (ctx) => {
      if (ctx.dryRun) return { ready: awsToolsReady(), venv: awsToolsDir() };
      return { ready: true, venv: await ensureVenv(ctx.log, AWS_TOOLS_VENV) };
    },
  },
];

export function setupPart(name: string): SetupPart | undefined {
  return SETUP_PARTS.find((p) => p.name === name);
}
