import { GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { projectRoot } from '../../lib/paths.js';
import { startObjectStoreProcess } from '../../embedded/objectstore/process.js';
import { ensureBuilt } from '../helpers/edge.js';

/**
 * Issue 14 item 2, second half: the object store runs in its own supervised process for the
 * stack, so a crash of the store does not take the process holding the nucleus and broker;
 * the supervisor brings it back on the same port and folder; the child does not outlive the
 * stack (kill -9 of the parent).
 */
const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

async function until(cond: () => boolean | Promise<boolean>, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

let dir: string;
beforeAll(async () => {
  ensureBuilt();
  dir = await mkdtemp(join(tmpdir(), 'loupe-os-proc-'));
}, 300_000);
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('object store as a supervised child process', () => {
  it('survives kill -9 of the store: restarted on the same port, data and keys intact, this process untouched', async () => {
    const store = await startObjectStoreProcess({ dir: join(dir, 'a'), buckets: ['b'] });
    const s3 = new S3Client({ ...store.clientConfig, maxAttempts: 1 });
    try {
      await s3.send(new PutObjectCommand({ Bucket: 'b', Key: 'k', Body: 'kept' }));
      const pid = store.pid()!;
      expect(pid).not.toBe(process.pid);
      process.kill(pid, 'SIGKILL');
      await until(() => store.pid() !== undefined && store.pid() !== pid, 30_000, 'the store to be restarted');
      await store.ready();
      expect(store.restarts()).toBe(1);
      const got = await s3.send(new GetObjectCommand({ Bucket: 'b', Key: 'k' }));
      expect(await got.Body!.transformToString()).toBe('kept');
      await s3.send(new PutObjectCommand({ Bucket: 'b', Key: 'k2', Body: 'after' }));
    } finally {
      s3.destroy();
      await store.stop();
    }
    expect(store.pid()).toBeUndefined();
  }, 60_000);

  it('does not outlive its parent (kill -9 of the stack process)', async () => {
    const script = `const { startObjectStoreProcess } = await import(${JSON.stringify(join(projectRoot, 'dist', 'embedded', 'objectstore', 'process.js'))});
const s = await startObjectStoreProcess({ dir: ${JSON.stringify(join(dir, 'b'))} });
console.log(s.pid());
setInterval(() => {}, 1000);`;
    const parent = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    const childPid = Number(await new Promise<string>((res) => createInterface({ input: parent.stdout! }).once('line', res)));
    expect(alive(childPid)).toBe(true);
    parent.kill('SIGKILL');
    await until(() => !alive(childPid), 15_000, `object store ${childPid} to exit after its parent died`);
  }, 60_000);
});
