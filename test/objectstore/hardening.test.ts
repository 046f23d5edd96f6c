import {
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
} from '@aws-sdk/client-s3';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isLoupeError } from '../../lib/errors.js';
import { startObjectStore, type ObjectStore } from '../../embedded/objectstore/index.js';
import { errorCode, rawS3 } from './signing.js';

/**
 * Issue 14's findings on the object store (items 2, 12 and 13's silent-loss cases): each test
 * here failed on the store before its fix.
 */
async function s3Error(p: Promise<unknown>): Promise<{ name: string; status?: number }> {
  try {
    await p;
  } catch (e) {
    const ex = e as S3ServiceException;
    return { name: ex.name, status: ex.$metadata?.httpStatusCode };
  }
  throw new Error('expected the call to fail');
}

let dir: string;
let store: ObjectStore;
let s3: S3Client;
const B = 'hard';

const text = async (key: string) => (await s3.send(new GetObjectCommand({ Bucket: B, Key: key }))).Body!.transformToString();
const keys = async () => ((await s3.send(new ListObjectsV2Command({ Bucket: B }))).Contents ?? []).map((o) => o.Key!);

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'loupe-os-hard-'));
  store = await startObjectStore({ dir, buckets: [B] });
  s3 = new S3Client({ ...store.clientConfig, maxAttempts: 1 });
});

afterAll(async () => {
  s3?.destroy();
  await store?.stop();
  await rm(dir, { recursive: true, force: true });
});

/** `n` bytes of filler, produced as it is read (never held whole). */
function filler(n: number, chunk = 64 * 1024): Readable {
  let sent = 0;
  const block = Buffer.alloc(chunk, 0x61);
  return new Readable({
    read() {
      if (sent >= n) return void this.push(null);
      const k = Math.min(chunk, n - sent);
      sent += k;
      this.push(k === chunk ? block : block.subarray(0, k));
    },
  });
}

describe('item 2: request bodies are counted as they arrive', () => {
  it('refuses a chunked POST ?delete past the small-body limit without reading it all', async () => {
    const r = await rawS3(store.endpoint, {
      method: 'POST',
      path: `/${B}`,
      query: { delete: '' },
      body: filler(64 * 1024 * 1024),
      keys: store.clientConfig.credentials,
    });
    expect(r.status).toBe(400);
    expect(errorCode(r)).toBe('MaxMessageLengthExceeded');
    expect(await readdir(join(dir, 'tmp'))).toEqual([]);
  });

  it('refuses an aws-chunked CompleteMultipartUpload body past the limit (decoded bytes counted)', async () => {
    // aws-chunked framing inside HTTP chunked transfer: no Content-Length to check up front.
    let left = 16 * 1024 * 1024;
    const frame = Buffer.concat([Buffer.from('10000\r\n'), Buffer.alloc(0x10000, 0x20), Buffer.from('\r\n')]);
    const body = new Readable({
      read() {
        if (left <= 0) {
          this.push('0\r\n\r\n');
          return void this.push(null);
        }
        left -= 0x10000;
        this.push(frame);
      },
    });
    const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: B, Key: 'mp' }));
    const r = await rawS3(store.endpoint, {
      method: 'POST',
      path: `/${B}/mp`,
      query: { uploadId: UploadId! },
      headers: { 'content-encoding': 'aws-chunked', 'x-amz-content-sha256': 'STREAMING-UNSIGNED-PAYLOAD-TRAILER' },
      body,
      keys: store.clientConfig.credentials,
    });
    expect(r.status).toBe(400);
    expect(errorCode(r)).toBe('MaxMessageLengthExceeded');
    expect(await readdir(join(dir, 'tmp'))).toEqual([]);
  });
});

describe('item 12/13: DeleteObjects deletes exactly the keys named', () => {
  it('refuses nested XML in <Key> instead of deleting "[object Object]"', async () => {
    await s3.send(new PutObjectCommand({ Bucket: B, Key: '[object Object]', Body: 'victim' }));
    const xml = '<Delete><Object><Key><a>x</a></Key></Object></Delete>';
    const r = await rawS3(store.endpoint, {
      method: 'POST',
      path: `/${B}`,
      query: { delete: '' },
      body: Buffer.from(xml),
      keys: store.clientConfig.credentials,
    });
    expect(r.status).toBe(400);
    expect(errorCode(r)).toBe('MalformedXML');
    expect(await text('[object Object]')).toBe('victim');
  });

  it('keeps leading/trailing spaces and newlines of keys (deleting " a" leaves "a")', async () => {
    for (const k of ['a', ' a', 'a\n', '\ta ']) await s3.send(new PutObjectCommand({ Bucket: B, Key: k, Body: JSON.stringify(k) }));
    const xml = '<Delete><Quiet>false</Quiet><Object><Key> a</Key></Object><Object><Key>a&#xA;</Key></Object></Delete>';
    const r = await rawS3(store.endpoint, {
      method: 'POST',
      path: `/${B}`,
      query: { delete: '' },
      body: Buffer.from(xml),
      keys: store.clientConfig.credentials,
    });
    expect(r.status).toBe(200);
    expect(r.body).toContain('<Key> a</Key>');
    const left = await keys();
    expect(left).toContain('a');
    expect(left).toContain('\ta ');
    expect(left).not.toContain(' a');
    expect(left).not.toContain('a\n');
    expect(await text('a')).toBe('"a"');
  });
});

describe('item 13: copy and put conditions are honoured (no silent overwrite)', () => {
  it('copies from a key that contains "?versionId=" (not from the key before it)', async () => {
    await s3.send(new PutObjectCommand({ Bucket: B, Key: 'src', Body: 'plain' }));
    await s3.send(new PutObjectCommand({ Bucket: B, Key: 'src?versionId=7', Body: 'with-query' }));
    await s3.send(new CopyObjectCommand({ Bucket: B, Key: 'dst-v', CopySource: `${B}/${encodeURIComponent('src?versionId=7')}` }));
    expect(await text('dst-v')).toBe('with-query');
    // a versionId on an unversioned store names the null version only
    const e = await s3Error(s3.send(new CopyObjectCommand({ Bucket: B, Key: 'dst-v2', CopySource: `${B}/src?versionId=7` })));
    expect(e.status).toBe(400);
  });

  it('honours x-amz-copy-source-if-none-match / -if-modified-since / -if-unmodified-since', async () => {
    const put = await s3.send(new PutObjectCommand({ Bucket: B, Key: 'c-src', Body: 'new-bytes' }));
    await s3.send(new PutObjectCommand({ Bucket: B, Key: 'c-dst', Body: 'keep-me' }));
    const copy = (extra: Record<string, unknown>) =>
      s3.send(new CopyObjectCommand({ Bucket: B, Key: 'c-dst', CopySource: `${B}/c-src`, ...extra }));
    expect((await s3Error(copy({ CopySourceIfNoneMatch: put.ETag }))).status).toBe(412);
    expect((await s3Error(copy({ CopySourceIfModifiedSince: new Date(Date.now() + 3600_000) }))).status).toBe(412);
    expect((await s3Error(copy({ CopySourceIfUnmodifiedSince: new Date(Date.now() - 3600_000) }))).status).toBe(412);
    expect((await s3Error(copy({ CopySourceIfMatch: '"00000000000000000000000000000000"' }))).status).toBe(412);
    expect(await text('c-dst')).toBe('keep-me');
    expect(await readdir(join(dir, 'tmp'))).toEqual([]);
    await copy({ CopySourceIfMatch: put.ETag, CopySourceIfUnmodifiedSince: new Date(Date.now() + 3600_000) });
    expect(await text('c-dst')).toBe('new-bytes');
  });

  it('honours If-Match on PUT (412 on a wrong ETag, 404 when absent)', async () => {
    const first = await s3.send(new PutObjectCommand({ Bucket: B, Key: 'im', Body: 'one' }));
    expect((await s3Error(s3.send(new PutObjectCommand({ Bucket: B, Key: 'im', Body: 'two', IfMatch: '"deadbeef"' })))).status).toBe(412);
    expect(await text('im')).toBe('one');
    expect((await s3Error(s3.send(new PutObjectCommand({ Bucket: B, Key: 'im-none', Body: 'x', IfMatch: '*' })))).status).toBe(404);
    await s3.send(new PutObjectCommand({ Bucket: B, Key: 'im', Body: 'three', IfMatch: first.ETag }));
    expect(await text('im')).toBe('three');
    expect((await s3Error(s3.send(new PutObjectCommand({ Bucket: B, Key: 'im', Body: 'four', IfNoneMatch: '*' })))).status).toBe(412);
    expect((await s3.send(new HeadObjectCommand({ Bucket: B, Key: 'im' }))).ContentLength).toBe(5);
  });
});

describe('item 12: one data folder, one store', () => {
  it('refuses a second store on the same folder, naming the holder', async () => {
    const d = await mkdtemp(join(tmpdir(), 'loupe-os-lock-'));
    const a = await startObjectStore({ dir: d });
    try {
      const err = await startObjectStore({ dir: d }).then(
        async (b) => {
          await b.stop();
          return undefined;
        },
        (e: unknown) => e,
      );
      expect(isLoupeError(err)).toBe(true);
      expect((err as Error).message).toMatch(new RegExp(`in use by process ${process.pid}`));
    } finally {
      await a.stop();
    }
    // released on stop
    const c = await startObjectStore({ dir: d });
    await c.stop();
    // a stale lock (its process is gone) is taken over
    await writeFile(join(d, 'LOCK'), JSON.stringify({ pid: 2 ** 22 + 17, started: 'x' }));
    const e = await startObjectStore({ dir: d });
    await e.stop();
    await rm(d, { recursive: true, force: true });
  });
});
