import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { s3ConformancePython } from '../../cli/setup/s3conformance.js';
import { projectRoot } from '../../lib/paths.js';
import { startObjectStoreProcess, type ObjectStoreProcess } from '../../embedded/objectstore/process.js';
import { ensureBuilt } from '../helpers/edge.js';

/**
 * loupe's S3 conformance suite (test/objectstore/conformance/*.py, modelled on the core object
 * cases of ceph/s3-tests) run with boto3, an independent client and SigV4 signer, against
 * `loupe objectstore serve`. The Python venv comes from `loupe setup s3conformance` (part of
 * `loupe setup all`, which .ci/run runs).
 */
const here = join(projectRoot, 'test', 'objectstore', 'conformance');
const python = process.env.LOUPE_S3CONF_PYTHON ?? s3ConformancePython();

let dir: string;
let store: ObjectStoreProcess;

beforeAll(async () => {
  ensureBuilt();
  dir = await mkdtemp(join(tmpdir(), 'loupe-s3conf-'));
  store = await startObjectStoreProcess({ dir: join(dir, 'store') });
}, 300_000);

afterAll(async () => {
  await store?.stop();
  await rm(dir, { recursive: true, force: true });
});

describe('S3 conformance (boto3, pytest)', () => {
  it('passes every case of the suite', async () => {
    if (!existsSync(python))
      throw new Error(`the conformance venv is missing (${python}): run \`node bin/loupe.js setup s3conformance\` (or setup all)`);
    const out = await new Promise<{ code: number; text: string }>((resolve, reject) => {
      const p = spawn(python, ['-m', 'pytest', '-q', '-p', 'no:cacheprovider', '--tb=short', '-rf', here], {
        cwd: dir,
        env: {
          ...process.env,
          PYTHONDONTWRITEBYTECODE: '1',
          S3CONF_ENDPOINT: store.endpoint,
          S3CONF_ACCESS_KEY: store.credentials.accessKeyId,
          S3CONF_SECRET_KEY: store.credentials.secretAccessKey,
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let text = '';
      p.stdout.on('data', (b: Buffer) => (text += b.toString()));
      p.stderr.on('data', (b: Buffer) => (text += b.toString()));
      p.on('error', reject);
      p.on('close', (code) => resolve({ code: code ?? -1, text }));
    });
    const summary = /(\d+) passed/.exec(out.text);
    expect(out.code, out.text.slice(-6000)).toBe(0);
    expect(Number(summary?.[1] ?? 0)).toBeGreaterThanOrEqual(60);
  }, 600_000);
});
