import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Logger } from 'pino';
import { LoupeError } from '../../lib/errors.js';
import { sha256 } from '../../lib/fsutil.js';
import { cacheDir, sharedDir } from '../../lib/paths.js';

/**
 * The real AWS Greengrass Development Kit CLI (GDK 1.6.2), which the tests use to build loupe's
 * components (test/edge/gdk.test.ts). It is not on PyPI: its wheel is in ../shared/tools/gdk;
 * its dependencies (boto3, jsonschema, ...) come from PyPI. Installed into a venv under
 * ~/.cache/loupe/gdk, marked with the wheel's digest so a new wheel gives a new venv.
 */
const run = promisify(execFile);

export function gdkWheel(): string {
  return join(sharedDir(), 'tools', 'gdk', 'gdk-1.6.2-py3-none-any.whl');
}

export function gdkVenv(): string {
  return join(cacheDir(), 'gdk');
}

export function gdkBin(): string {
  return join(gdkVenv(), 'bin', 'gdk');
}

const STAMP = '.loupe-wheel';

function wheelDigest(): string | null {
  return existsSync(gdkWheel()) ? sha256(readFileSync(gdkWheel())).slice(0, 16) : null;
}

export function gdkReady(): boolean {
  const stamp = join(gdkVenv(), STAMP);
  return existsSync(gdkBin()) && existsSync(stamp) && readFileSync(stamp, 'utf8') === wheelDigest();
}

export async function ensureGdk(log: Logger, o: { dryRun?: boolean } = {}): Promise<{ ready: boolean; gdk: string }> {
  if (gdkReady()) return { ready: true, gdk: gdkBin() };
  const digest = wheelDigest();
  if (!digest)
    throw new LoupeError(
      'SETUP_GDK_WHEEL',
      'the GDK CLI wheel is not there (it comes with ../shared/tools, beside the project; LOUPE_SHARED points elsewhere)',
      { input: gdkWheel() },
    );
  if (o.dryRun) {
    log.info({ venv: gdkVenv(), wheel: gdkWheel() }, 'gdk: dry run, would create the venv and install the wheel');
    return { ready: false, gdk: gdkBin() };
  }
  log.info({ venv: gdkVenv() }, 'gdk: creating the venv');
  await rm(gdkVenv(), { recursive: true, force: true });
  try {
    await run('python3', ['-m', 'venv', gdkVenv()], { cwd: cacheDir() });
    log.info({ wheel: gdkWheel() }, 'gdk: installing the GDK CLI and its dependencies from PyPI');
    await run(join(gdkVenv(), 'bin', 'pip'), ['install', '--quiet', '--disable-pip-version-check', gdkWheel()], {
      cwd: cacheDir(),
      maxBuffer: 16 * 1024 * 1024,
    });
    const { stdout } = await run(gdkBin(), ['--version']);
    log.info({ version: stdout.trim() }, 'gdk: ready');
  } catch (e) {
    throw new LoupeError(
      'SETUP_COMMAND_FAILED',
      `installing the GDK CLI failed: ${(e as { stderr?: string }).stderr?.trim() || (e as Error).message}`,
      { input: gdkVenv() },
    );
  }
  await writeFile(join(gdkVenv(), STAMP), digest);
  return { ready: true, gdk: gdkBin() };
}
