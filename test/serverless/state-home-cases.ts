import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { CreateBucketCommand, GetObjectCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { StateHome } from '../../cloud/serverless/state-home.js';
import { LoupeError } from '../../lib/errors.js';

/**
 * The loop home kept in S3 (cloud/serverless/state-home.ts), the same cases against any S3
 * implementation: a round trip, pushing only what changed, and the conditional writes that keep
 * two invocations from overwriting each other (If-Match on a pulled ETag, If-None-Match: * on a
 * new file), answered 412 by the server and reported as STATE_CONFLICT.
 */
export interface S3Under {
  clientConfig: ConstructorParameters<typeof S3Client>[0];
  stop(): Promise<void>;
}

export function stateHomeCases(name: string, start: () => Promise<S3Under>): void {
  describe(`the loop home in S3 (${name})`, () => {
    let s3: S3Client;
    let under: S3Under;
    const bucket = 'loupe-ml-test';
    let n = 0;
    const uri = () => `s3://${bucket}/loupe/home-${++n}/`;
    const homes: StateHome[] = [];
    const pull = async (u: string) => {
      const h = await StateHome.pull({ s3, uri: u });
      homes.push(h);
      return h;
    };
    const put = async (h: StateHome, rel: string, body: string) => {
      const f = join(h.dir, ...rel.split('/'));
      await mkdir(dirname(f), { recursive: true });
      await writeFile(f, body);
    };
    const remote = async (key: string) => {
      const r = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
      return r.Body!.transformToString();
    };

    beforeAll(async () => {
      under = await start();
      s3 = new S3Client({ ...under.clientConfig, forcePathStyle: true });
      await s3.send(new CreateBucketCommand({ Bucket: bucket }));
    });
    afterAll(async () => {
      for (const h of homes) await h.dispose();
      s3?.destroy();
      await under?.stop();
    });

    it('round trip: stores pushed in order, derived folders left out, artefacts fetched only when asked for', async () => {
      const u = uri();
      const a = await pull(u);
      await put(a, 'loop.db', 'steps');
      await put(a, 'labels.db', 'labels');
      await put(a, 'registry/artefacts/sha256/ab/abcd.pt', 'weights');
      await put(a, 'snapshots/s1/data.yaml', 'derived');
      await put(a, 'labels.db-wal', 'wal');
      const { pushed } = await a.push();
      expect(pushed).toEqual(['registry/artefacts/sha256/ab/abcd.pt', 'labels.db', 'loop.db']);
      const listed = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: u.slice(`s3://${bucket}/`.length) }));
      expect(listed.Contents!.map((c) => c.Key).sort()).toEqual([
        `loupe/home-${n}/labels.db`,
        `loupe/home-${n}/loop.db`,
        `loupe/home-${n}/registry/artefacts/sha256/ab/abcd.pt`,
      ]);

      const b = await pull(u);
      expect(await readFile(join(b.dir, 'loop.db'), 'utf8')).toBe('steps');
      expect(await readFile(join(b.dir, 'labels.db'), 'utf8')).toBe('labels');
      const artefact = join(b.dir, 'registry', 'artefacts', 'sha256', 'ab', 'abcd.pt');
      expect(existsSync(artefact)).toBe(false);
      await b.fetchArtefacts(['sha256/ab/abcd.pt']);
      expect(await readFile(artefact, 'utf8')).toBe('weights');
      await expect(b.fetchArtefacts(['sha256/cd/cdef.pt'])).rejects.toMatchObject({ code: 'STATE_NO_ARTEFACT' });
    });

    it('pushes only what changed since the pull, over the ETag it pulled', async () => {
      const u = uri();
      const a = await pull(u);
      await put(a, 'loop.db', 'v1');
      await put(a, 'labels.db', 'labels');
      await a.push();
      expect((await a.push()).pushed).toEqual([]);
      await put(a, 'loop.db', 'v2');
      expect((await a.push()).pushed).toEqual(['loop.db']);
      // A second push from the same pull uses the ETag of its own first push.
      await put(a, 'loop.db', 'v3');
      expect((await a.push()).pushed).toEqual(['loop.db']);
      expect(await remote(`loupe/home-${n}/loop.db`)).toBe('v3');
    });

    it('two invocations change the same file: the later push fails with STATE_CONFLICT and the earlier bytes stay', async () => {
      const u = uri();
      const seed = await pull(u);
      await put(seed, 'loop.db', 'v1');
      await seed.push();
      const a = await pull(u);
      const b = await pull(u);
      await put(a, 'loop.db', 'from a');
      await put(b, 'loop.db', 'from b');
      await a.push();
      const e = await b.push().catch((x: unknown) => x);
      expect(e).toBeInstanceOf(LoupeError);
      expect(e).toMatchObject({ code: 'STATE_CONFLICT' });
      expect(await remote(`loupe/home-${n}/loop.db`)).toBe('from a');
    });

    it('two invocations create the same new file: If-None-Match refuses the second', async () => {
      const u = uri();
      const a = await pull(u);
      const b = await pull(u);
      await put(a, 'fleet.db', 'from a');
      await put(b, 'fleet.db', 'from b');
      await a.push();
      await expect(b.push()).rejects.toMatchObject({ code: 'STATE_CONFLICT' });
      expect(await remote(`loupe/home-${n}/fleet.db`)).toBe('from a');
    });

    it('an artefact stored by someone else first is not a conflict (same digest, same bytes)', async () => {
      const u = uri();
      const a = await pull(u);
      const b = await pull(u);
      await put(a, 'registry/artefacts/sha256/ee/eeee.onnx', 'model');
      await put(b, 'registry/artefacts/sha256/ee/eeee.onnx', 'model');
      await a.push();
      expect((await b.push()).pushed).toEqual([]);
    });
  });
}
