import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { projectRoot } from '../../lib/paths.js';
import { keysPath, readKeysFile, startObjectStore } from '../../embedded/objectstore/index.js';
import { ensureBuilt, until } from '../helpers/edge.js';

/**
 * kill -9 of the object store in the middle of many PUTs (new keys and overwrites), then a
 * restart on the same folder: every object is one complete body that was sent for its key, every
 * PUT that was acknowledged is there (or a later write of the same key), and no temp or orphan
 * data files are left behind.
 */
let dir: string;
beforeAll(async () => {
  ensureBuilt();
  dir = await mkdtemp(join(tmpdir(), 'loupe-os-crash-'));
}, 300_000);
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const body = (key: string, gen: number) => Buffer.concat([Buffer.from(`${key}#${gen}#`), Buffer.alloc(200_000 + gen * 1000, gen % 251)]);

describe('object store durability', () => {
  it('survives kill -9 mid-write with no torn objects and no acknowledged write lost', async () => {
    const script = `const { startObjectStore } = await import(${JSON.stringify(join(projectRoot, 'dist', 'embedded', 'objectstore', 'index.js'))});
const s = await startObjectStore({ dir: ${JSON.stringify(dir)}, buckets: ['crash'] });
console.log(s.port);`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    const port = Number(await new Promise<string>((res) => createInterface({ input: child.stdout! }).once('line', res)));
    const s3 = new S3Client({
      endpoint: `http://127.0.0.1:${port}`,
      region: 'us-east-1',
      forcePathStyle: true,
      credentials: readKeysFile(keysPath(dir)),
      maxAttempts: 1,
    });
    const keys = Array.from({ length: 12 }, (_, i) => `k/${i}`);
    const acked = new Map<string, number>(); // key -> highest generation acknowledged
    let gen = 0;
    let stop = false;
    const writers = keys.map(async (key) => {
      while (!stop) {
        const g = ++gen;
        try {
          await s3.send(new PutObjectCommand({ Bucket: 'crash', Key: key, Body: body(key, g) }));
          acked.set(key, Math.max(acked.get(key) ?? 0, g));
        } catch {
          return; // the server is gone
        }
      }
    });
    // Kill once writes are flowing: at least 1.5 s and half the keys acknowledged (a fixed sleep
    // alone could kill a store that a loaded machine had not yet let answer anything).
    await new Promise((r) => setTimeout(r, 1500));
    await until(
      () => acked.size >= keys.length / 2,
      60_000,
      () => `half the keys acknowledged (have ${acked.size})`,
    );
    child.kill('SIGKILL');
    stop = true;
    await Promise.all(writers);
    s3.destroy();
    expect(acked.size).toBeGreaterThan(0);

    const store = await startObjectStore({ dir });
    const c = new S3Client(store.clientConfig);
    try {
      const listed = (await c.send(new ListObjectsV2Command({ Bucket: 'crash' }))).Contents ?? [];
      for (const key of keys) {
        const entry = listed.find((o) => o.Key === key);
        if (!acked.has(key)) continue;
        expect(entry, `${key} was acknowledged`).toBeDefined();
        const got = Buffer.from(await (await c.send(new GetObjectCommand({ Bucket: 'crash', Key: key }))).Body!.transformToByteArray());
        const g = Number(got.toString('latin1', 0, 40).split('#')[1]);
        expect(g).toBeGreaterThanOrEqual(acked.get(key)!);
        expect(got.equals(body(key, g)), `${key} holds a complete body`).toBe(true);
        expect(entry!.ETag).toBe(`"${createHash('md5').update(got).digest('hex')}"`);
      }
      expect(await readdir(join(dir, 'tmp'))).toEqual([]);
      for (const h2 of await readdir(join(dir, 'buckets', 'crash', 'objects'))) {
        const files = await readdir(join(dir, 'buckets', 'crash', 'objects', h2));
        expect(files.filter((f) => f.endsWith('.data')).length).toBe(files.filter((f) => f.endsWith('.json')).length);
        expect(files.some((f) => f.endsWith('.tmp'))).toBe(false);
      }
    } finally {
      c.destroy();
      await store.stop();
    }
  });
});
