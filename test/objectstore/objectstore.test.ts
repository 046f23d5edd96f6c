import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListBucketsCommand,
  ListObjectsCommand,
  ListObjectsV2Command,
  ListPartsCommand,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
  UploadPartCommand,
  paginateListObjectsV2,
} from '@aws-sdk/client-s3';
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { crc32 } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startObjectStore, type ObjectStore } from '../../embedded/objectstore/index.js';
import { rawS3 } from './signing.js';

const md5hex = (b: Buffer | string) => createHash('md5').update(b).digest('hex');
const crc32b64 = (b: Buffer) => {
  const o = Buffer.alloc(4);
  o.writeUInt32BE(crc32(b) >>> 0);
  return o.toString('base64');
};

async function s3Error(p: Promise<unknown>): Promise<{ name: string; status?: number; message: string }> {
  try {
    await p;
  } catch (e) {
    const ex = e as S3ServiceException;
    return { name: ex.name, status: ex.$metadata?.httpStatusCode, message: ex.message };
  }
  throw new Error('expected the call to fail');
}

let dir: string;
let store: ObjectStore;
let s3: S3Client;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'loupe-os-'));
  store = await startObjectStore({ dir, minPartSize: 1024 });
  s3 = new S3Client(store.clientConfig);
  await s3.send(new CreateBucketCommand({ Bucket: 'test-bucket' }));
});

afterAll(async () => {
  s3?.destroy();
  await store?.stop();
  await rm(dir, { recursive: true, force: true });
});

describe('buckets', () => {
  it('creates, lists and heads buckets; rejects bad names and duplicates', async () => {
    await s3.send(new CreateBucketCommand({ Bucket: 'second.bucket-1' }));
    const list = await s3.send(new ListBucketsCommand({}));
    expect(list.Buckets?.map((b) => b.Name)).toEqual(['second.bucket-1', 'test-bucket']);
    expect(list.Buckets?.[0]?.CreationDate).toBeInstanceOf(Date);
    await s3.send(new HeadBucketCommand({ Bucket: 'test-bucket' }));
    expect((await s3Error(s3.send(new HeadBucketCommand({ Bucket: 'nope-nope' })))).status).toBe(404);
    expect((await s3Error(s3.send(new CreateBucketCommand({ Bucket: 'Bad_Name' })))).name).toBe('InvalidBucketName');
    // re-creating one's own bucket: 200 in us-east-1 (S3's legacy region), 409 elsewhere
    await s3.send(new CreateBucketCommand({ Bucket: 'test-bucket' }));
    expect((await s3Error(s3.send(new PutObjectCommand({ Bucket: 'no-such', Key: 'k', Body: 'x' })))).name).toBe('NoSuchBucket');
  });
});

describe('objects', () => {
  it('round-trips a buffer body with its CRC32 checksum, metadata and MD5 ETag', async () => {
    const body = Buffer.from('hello, loupe');
    const put = await s3.send(
      new PutObjectCommand({
        Bucket: 'test-bucket',
        Key: 'a/hello.txt',
        Body: body,
        ContentType: 'text/plain',
        Metadata: { camera: 'cam-1' },
      }),
    );
    expect(put.ETag).toBe(`"${md5hex(body)}"`);
    expect(put.ChecksumCRC32).toBe(crc32b64(body));
    const got = await s3.send(new GetObjectCommand({ Bucket: 'test-bucket', Key: 'a/hello.txt', ChecksumMode: 'ENABLED' }));
    expect(await got.Body!.transformToString()).toBe('hello, loupe');
    expect(got.ContentType).toBe('text/plain');
    expect(got.Metadata).toEqual({ camera: 'cam-1' });
    expect(got.ChecksumCRC32).toBe(crc32b64(body));
    expect(got.ContentLength).toBe(body.length);
  });

  it('decodes aws-chunked streamed uploads (trailer checksum) instead of storing the framing', async () => {
    const parts = [Buffer.alloc(70_000, 1), Buffer.alloc(5, 2), Buffer.from('end')];
    const all = Buffer.concat(parts);
    await s3.send(
      new PutObjectCommand({ Bucket: 'test-bucket', Key: 'streamed.bin', Body: Readable.from(parts), ContentLength: all.length }),
    );
    const got = await s3.send(new GetObjectCommand({ Bucket: 'test-bucket', Key: 'streamed.bin', ChecksumMode: 'ENABLED' }));
    const bytes = Buffer.from(await got.Body!.transformToByteArray());
    expect(bytes.equals(all)).toBe(true);
    expect(got.ChecksumCRC32).toBe(crc32b64(all));
    expect(got.ETag).toBe(`"${md5hex(all)}"`);
  });

  it('rejects a body whose stated checksum, MD5 or decoded length does not match, keeping the old object', async () => {
    await s3.send(new PutObjectCommand({ Bucket: 'test-bucket', Key: 'guarded', Body: 'original' }));
    const e = await s3Error(
      s3.send(
        new PutObjectCommand({ Bucket: 'test-bucket', Key: 'guarded', Body: 'tampered', ChecksumCRC32: crc32b64(Buffer.from('other')) }),
      ),
    );
    expect(e.name).toBe('BadDigest');
    expect(e.status).toBe(400);
    const md5 = await rawRequest('PUT', '/test-bucket/guarded', Buffer.from('tampered'), {
      'content-md5': createHash('md5').update('x').digest('base64'),
    });
    expect(md5.status).toBe(400);
    expect(md5.body).toContain('<Code>BadDigest</Code>');
    const short = await rawRequest('PUT', '/test-bucket/guarded', Buffer.from('3\r\nabc\r\n0\r\n\r\n'), {
      'x-amz-content-sha256': 'STREAMING-UNSIGNED-PAYLOAD-TRAILER',
      'content-encoding': 'aws-chunked',
      'x-amz-decoded-content-length': '10',
    });
    expect(short.body).toContain('<Code>IncompleteBody</Code>');
    const got = await s3.send(new GetObjectCommand({ Bucket: 'test-bucket', Key: 'guarded' }));
    expect(await got.Body!.transformToString()).toBe('original');
  });

  it('serves byte ranges, HEAD, conditional GETs and 404s', async () => {
    await s3.send(new PutObjectCommand({ Bucket: 'test-bucket', Key: 'range.txt', Body: '0123456789' }));
    const r = await s3.send(new GetObjectCommand({ Bucket: 'test-bucket', Key: 'range.txt', Range: 'bytes=2-5' }));
    expect(await r.Body!.transformToString()).toBe('2345');
    expect(r.ContentRange).toBe('bytes 2-5/10');
    const tail = await s3.send(new GetObjectCommand({ Bucket: 'test-bucket', Key: 'range.txt', Range: 'bytes=-3' }));
    expect(await tail.Body!.transformToString()).toBe('789');
    expect((await s3Error(s3.send(new GetObjectCommand({ Bucket: 'test-bucket', Key: 'range.txt', Range: 'bytes=20-' })))).name).toBe(
      'InvalidRange',
    );
    const head = await s3.send(new HeadObjectCommand({ Bucket: 'test-bucket', Key: 'range.txt' }));
    expect(head.ContentLength).toBe(10);
    expect(head.ETag).toBe(`"${md5hex('0123456789')}"`);
    expect((await s3Error(s3.send(new GetObjectCommand({ Bucket: 'test-bucket', Key: 'range.txt', IfNoneMatch: head.ETag })))).status).toBe(
      304,
    );
    expect((await s3Error(s3.send(new GetObjectCommand({ Bucket: 'test-bucket', Key: 'range.txt', IfMatch: '"abc"' })))).status).toBe(412);
    expect((await s3Error(s3.send(new GetObjectCommand({ Bucket: 'test-bucket', Key: 'missing' })))).name).toBe('NoSuchKey');
    expect((await s3Error(s3.send(new HeadObjectCommand({ Bucket: 'test-bucket', Key: 'missing' })))).name).toBe('NotFound');
  });

  it('keeps keys with any characters, including .. and //', async () => {
    const keys = ['odd/../key', 'a//b', 'space and+plus%25.txt', 'ünïcødé/日本.jpg', '?weird#&='];
    for (const k of keys) await s3.send(new PutObjectCommand({ Bucket: 'test-bucket', Key: `keys/${k}`, Body: k }));
    for (const k of keys) {
      const got = await s3.send(new GetObjectCommand({ Bucket: 'test-bucket', Key: `keys/${k}` }));
      expect(await got.Body!.transformToString()).toBe(k);
    }
    const list = await s3.send(new ListObjectsV2Command({ Bucket: 'test-bucket', Prefix: 'keys/' }));
    expect(list.Contents?.map((c) => c.Key).sort()).toEqual(keys.map((k) => `keys/${k}`).sort());
    const encoded = await s3.send(new ListObjectsV2Command({ Bucket: 'test-bucket', Prefix: 'keys/', EncodingType: 'url' }));
    // SDK v3 hands url-encoded keys back as sent (it does not decode them): decode here.
    expect(encoded.Contents?.map((c) => decodeURIComponent(c.Key!)).sort()).toEqual(keys.map((k) => `keys/${k}`).sort());
    expect(encoded.Contents?.some((c) => c.Key!.includes('%3F'))).toBe(true);
  });

  it('conditional create (If-None-Match: *) refuses to overwrite', async () => {
    await s3.send(new PutObjectCommand({ Bucket: 'test-bucket', Key: 'once', Body: 'first', IfNoneMatch: '*' }));
    const e = await s3Error(s3.send(new PutObjectCommand({ Bucket: 'test-bucket', Key: 'once', Body: 'second', IfNoneMatch: '*' })));
    expect(e.status).toBe(412);
    const got = await s3.send(new GetObjectCommand({ Bucket: 'test-bucket', Key: 'once' }));
    expect(await got.Body!.transformToString()).toBe('first');
  });

  it('copies objects keeping or replacing metadata, and deletes one or many', async () => {
    await s3.send(
      new PutObjectCommand({
        Bucket: 'test-bucket',
        Key: 'src.json',
        Body: '{"a":1}',
        ContentType: 'application/json',
        Metadata: { k: 'v' },
      }),
    );
    const c1 = await s3.send(new CopyObjectCommand({ Bucket: 'test-bucket', Key: 'copy1.json', CopySource: 'test-bucket/src.json' }));
    expect(c1.CopyObjectResult?.ETag).toBe(`"${md5hex('{"a":1}')}"`);
    const h1 = await s3.send(new HeadObjectCommand({ Bucket: 'test-bucket', Key: 'copy1.json' }));
    expect(h1.ContentType).toBe('application/json');
    expect(h1.Metadata).toEqual({ k: 'v' });
    await s3.send(
      new CopyObjectCommand({
        Bucket: 'test-bucket',
        Key: 'copy2.json',
        CopySource: encodeURIComponent('test-bucket/src.json'),
        MetadataDirective: 'REPLACE',
        ContentType: 'text/plain',
        Metadata: { n: '2' },
      }),
    );
    const h2 = await s3.send(new HeadObjectCommand({ Bucket: 'test-bucket', Key: 'copy2.json' }));
    expect(h2.ContentType).toBe('text/plain');
    expect(h2.Metadata).toEqual({ n: '2' });
    await s3.send(new DeleteObjectCommand({ Bucket: 'test-bucket', Key: 'copy1.json' }));
    await s3.send(new DeleteObjectCommand({ Bucket: 'test-bucket', Key: 'never-existed' }));
    const del = await s3.send(
      new DeleteObjectsCommand({ Bucket: 'test-bucket', Delete: { Objects: [{ Key: 'copy2.json' }, { Key: 'src.json' }] } }),
    );
    expect(del.Deleted?.map((d) => d.Key).sort()).toEqual(['copy2.json', 'src.json']);
    const rest = await s3.send(new ListObjectsV2Command({ Bucket: 'test-bucket', Prefix: 'src' }));
    expect(rest.KeyCount).toBe(0);
    expect((await s3Error(s3.send(new HeadObjectCommand({ Bucket: 'test-bucket', Key: 'copy1.json' })))).status).toBe(404);
  });

  it('last writer wins under concurrent PUTs to one key, never a torn object', async () => {
    const bodies = Array.from({ length: 8 }, (_, i) => Buffer.alloc(50_000 + i, 65 + i));
    await Promise.all(bodies.map((b) => s3.send(new PutObjectCommand({ Bucket: 'test-bucket', Key: 'contended', Body: b }))));
    const got = Buffer.from(
      await (await s3.send(new GetObjectCommand({ Bucket: 'test-bucket', Key: 'contended' }))).Body!.transformToByteArray(),
    );
    expect(bodies.some((b) => b.equals(got))).toBe(true);
  });
});

describe('listing', () => {
  beforeAll(async () => {
    await s3.send(new CreateBucketCommand({ Bucket: 'list-bucket' }));
    const keys = ['top.txt'];
    for (const d of ['2024/01', '2024/02', '2025/01']) for (let i = 0; i < 4; i++) keys.push(`incoming/${d}/f${i}.jpg`);
    keys.push('incoming/readme.md');
    await Promise.all(keys.map((k) => s3.send(new PutObjectCommand({ Bucket: 'list-bucket', Key: k, Body: k }))));
  });

  it('lists with prefix and delimiter as common prefixes', async () => {
    const r = await s3.send(new ListObjectsV2Command({ Bucket: 'list-bucket', Prefix: 'incoming/', Delimiter: '/' }));
    expect(r.CommonPrefixes?.map((p) => p.Prefix)).toEqual(['incoming/2024/', 'incoming/2025/']);
    expect(r.Contents?.map((c) => c.Key)).toEqual(['incoming/readme.md']);
    expect(r.KeyCount).toBe(3);
    expect(r.IsTruncated).toBe(false);
    const top = await s3.send(new ListObjectsV2Command({ Bucket: 'list-bucket', Delimiter: '/' }));
    expect(top.CommonPrefixes?.map((p) => p.Prefix)).toEqual(['incoming/']);
    expect(top.Contents?.map((c) => c.Key)).toEqual(['top.txt']);
  });

  it('pages with continuation tokens without gaps or repeats, also across common prefixes', async () => {
    const keys: string[] = [];
    for await (const page of paginateListObjectsV2({ client: s3, pageSize: 5 }, { Bucket: 'list-bucket', Prefix: 'incoming/' })) {
      expect((page.Contents ?? []).length).toBeLessThanOrEqual(5);
      keys.push(...(page.Contents ?? []).map((c) => c.Key!));
    }
    expect(keys).toHaveLength(13);
    expect(new Set(keys).size).toBe(13);
    expect(keys).toEqual([...keys].sort());

    const items: string[] = [];
    for await (const page of paginateListObjectsV2(
      { client: s3, pageSize: 1 },
      { Bucket: 'list-bucket', Prefix: 'incoming/20', Delimiter: '/' },
    )) {
      items.push(...(page.CommonPrefixes ?? []).map((p) => p.Prefix!), ...(page.Contents ?? []).map((c) => c.Key!));
    }
    expect(items).toEqual(['incoming/2024/', 'incoming/2025/']);

    const after = await s3.send(new ListObjectsV2Command({ Bucket: 'list-bucket', StartAfter: 'incoming/2025/01/f1.jpg' }));
    expect(after.Contents?.map((c) => c.Key)).toEqual([
      'incoming/2025/01/f2.jpg',
      'incoming/2025/01/f3.jpg',
      'incoming/readme.md',
      'top.txt',
    ]);
    const v1 = await s3.send(new ListObjectsCommand({ Bucket: 'list-bucket', Prefix: 'incoming/2024/01/', MaxKeys: 2 }));
    expect(v1.Contents?.map((c) => c.Key)).toEqual(['incoming/2024/01/f0.jpg', 'incoming/2024/01/f1.jpg']);
    expect(v1.IsTruncated).toBe(true);
  });
});

describe('multipart uploads', () => {
  it('assembles parts, with multipart ETag and composite CRC32 checksum', async () => {
    const parts = [Buffer.alloc(2048, 'a'), Buffer.alloc(3000, 'b'), Buffer.from('tail')];
    const { UploadId } = await s3.send(
      new CreateMultipartUploadCommand({
        Bucket: 'test-bucket',
        Key: 'big.bin',
        ChecksumAlgorithm: 'CRC32',
        ContentType: 'application/x-test',
      }),
    );
    const done = [];
    for (let i = 0; i < parts.length; i++) {
      const r = await s3.send(
        new UploadPartCommand({
          Bucket: 'test-bucket',
          Key: 'big.bin',
          UploadId,
          PartNumber: i + 1,
          Body: parts[i],
          ChecksumAlgorithm: 'CRC32',
        }),
      );
      expect(r.ChecksumCRC32).toBe(crc32b64(parts[i]!));
      done.push({ PartNumber: i + 1, ETag: r.ETag, ChecksumCRC32: r.ChecksumCRC32 });
    }
    const listed = await s3.send(new ListPartsCommand({ Bucket: 'test-bucket', Key: 'big.bin', UploadId }));
    expect(listed.Parts?.map((p) => p.Size)).toEqual([2048, 3000, 4]);
    const c = await s3.send(
      new CompleteMultipartUploadCommand({ Bucket: 'test-bucket', Key: 'big.bin', UploadId, MultipartUpload: { Parts: done } }),
    );
    const etag = createHash('md5')
      .update(Buffer.concat(parts.map((p) => createHash('md5').update(p).digest())))
      .digest('hex');
    expect(c.ETag).toBe(`"${etag}-3"`);
    const comp = Buffer.concat(parts.map((p) => Buffer.from(crc32b64(p), 'base64')));
    expect(c.ChecksumCRC32).toBe(`${crc32b64(comp)}-3`);
    const got = await s3.send(new GetObjectCommand({ Bucket: 'test-bucket', Key: 'big.bin' }));
    expect(Buffer.from(await got.Body!.transformToByteArray()).equals(Buffer.concat(parts))).toBe(true);
    expect(got.ContentType).toBe('application/x-test');
    expect((await s3Error(s3.send(new ListPartsCommand({ Bucket: 'test-bucket', Key: 'big.bin', UploadId })))).name).toBe('NoSuchUpload');
  });

  it('rejects wrong ETags, out-of-order and too-small parts; aborts', async () => {
    const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: 'test-bucket', Key: 'bad.bin' }));
    const p1 = await s3.send(
      new UploadPartCommand({ Bucket: 'test-bucket', Key: 'bad.bin', UploadId, PartNumber: 1, Body: Buffer.alloc(100) }),
    );
    const p2 = await s3.send(
      new UploadPartCommand({ Bucket: 'test-bucket', Key: 'bad.bin', UploadId, PartNumber: 2, Body: Buffer.alloc(100) }),
    );
    const complete = (Parts: { PartNumber: number; ETag?: string }[]) =>
      s3Error(s3.send(new CompleteMultipartUploadCommand({ Bucket: 'test-bucket', Key: 'bad.bin', UploadId, MultipartUpload: { Parts } })));
    expect((await complete([{ PartNumber: 1, ETag: '"0000"' }])).name).toBe('InvalidPart');
    expect(
      (
        await complete([
          { PartNumber: 2, ETag: p2.ETag },
          { PartNumber: 1, ETag: p1.ETag },
        ])
      ).name,
    ).toBe('InvalidPartOrder');
    expect(
      (
        await complete([
          { PartNumber: 1, ETag: p1.ETag },
          { PartNumber: 2, ETag: p2.ETag },
        ])
      ).name,
    ).toBe('EntityTooSmall');
    await s3.send(new AbortMultipartUploadCommand({ Bucket: 'test-bucket', Key: 'bad.bin', UploadId }));
    expect(
      (await s3Error(s3.send(new UploadPartCommand({ Bucket: 'test-bucket', Key: 'bad.bin', UploadId, PartNumber: 3, Body: 'x' })))).name,
    ).toBe('NoSuchUpload');
    expect((await s3Error(s3.send(new HeadObjectCommand({ Bucket: 'test-bucket', Key: 'bad.bin' })))).status).toBe(404);
  });
});

describe('persistence and access', () => {
  it('keeps buckets and objects across a restart on the same folder and port', async () => {
    const d = await mkdtemp(join(tmpdir(), 'loupe-os2-'));
    const a = await startObjectStore({ dir: d, buckets: ['keep'] });
    const c1 = new S3Client(a.clientConfig);
    await c1.send(new PutObjectCommand({ Bucket: 'keep', Key: 'x/y.txt', Body: 'survives', Metadata: { m: '1' } }));
    await a.stop();
    expect((await s3Error(c1.send(new GetObjectCommand({ Bucket: 'keep', Key: 'x/y.txt' })))).message).toMatch(/ECONNREFUSED|connect/i);
    const b = await startObjectStore({ dir: d, port: a.port });
    const got = await c1.send(new GetObjectCommand({ Bucket: 'keep', Key: 'x/y.txt' }));
    expect(await got.Body!.transformToString()).toBe('survives');
    expect(got.Metadata).toEqual({ m: '1' });
    c1.destroy();
    await b.stop();
    await rm(d, { recursive: true, force: true });
  });
});

/** A raw request signed with the store's keys (the SDK's signer), for bodies the S3 client will not send. */
async function rawRequest(
  method: string,
  path: string,
  body: Buffer,
  headers: Record<string, string>,
): Promise<{ status: number; body: string }> {
  const r = await rawS3(store.endpoint, { method, path, body, headers, keys: store.credentials });
  return { status: r.status, body: r.body };
}
