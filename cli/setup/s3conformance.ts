import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Logger } from 'pino';
import { sha256 } from '../../lib/fsutil.js';
import { cacheDir, projectRoot } from '../../lib/paths.js';

/**
 * The Python side of the object store's S3 conformance suite (test/objectstore/conformance):
 * boto3, pytest and requests, pinned in its requirements.txt, in a venv under
 * ~/.cache/loupe/venvs/s3conformance-<hash of that file>. conformance/setup.sh creates it (this
 * runs that script, so a person can run it by hand too).
 */
const run = promisify(execFile);
const here = () => join(projectRoot, 'test', 'objectstore', 'conformance');

export function s3ConformancePython(): string {
  const h = sha256(readFileSync(join(here(), 'requirements.txt'))).slice(0, 12);
  return join(cacheDir(), 'venvs', `s3conformance-${h}`, 'bin', 'python');
}

export function s3ConformanceReady(): boolean {
  return existsSync(s3ConformancePython());
}

export async function ensureS3Conformance(log: Logger): Promise<string> {
  if (s3ConformanceReady()) return s3ConformancePython();
  log.info('creating the S3 conformance venv (boto3, pytest, requests from PyPI)');
  const { stdout } = await run('bash', [join(here(), 'setup.sh')], {
    env: { ...process.env, LOUPE_CACHE: cacheDir() },
    maxBuffer: 16 * 1024 * 1024,
  });
  return stdout.trim();
}
