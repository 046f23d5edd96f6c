import { GetObjectCommand, PutObjectCommand, S3Client, S3ServiceException } from '@aws-sdk/client-s3';
import { createHash, createHmac } from 'node:crypto';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import type { IncomingMessage } from 'node:http';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AwsChunkedDecoder } from '../../embedded/objectstore/chunked.js';
import { startObjectStore, type ObjectStore } from '../../embedded/objectstore/index.js';
import { chunkSignature, trailerSignature, verifySigV4, type Authorized } from '../../embedded/objectstore/sigv4.js';
import { errorCode, rawS3, s3Signer } from './signing.js';

/**
 * SigV4 on the object store (issue 14, item 7). Known answers first: AWS's own worked examples
 * for S3 (a GET with a Range header, a presigned URL, a chunked upload with chunk signatures),
 * then the live store against the SDK's signer: wrong keys, unsigned, skewed clocks, expired and
 * tampered presigned URLs, a foreign Host, signed aws-chunked bodies, and the key file.
 */
const EXAMPLE = { accessKeyId: 'AKIAIOSFODNN7EXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY' };
const T0 = Date.UTC(2013, 4, 24);

function fakeRequest(method: string, url: string, headers: [string, string][]): IncomingMessage {
  const h: Record<string, string> = {};
  for (const [k, v] of headers) h[k.toLowerCase()] = v;
  return { method, url, headers: h, rawHeaders: headers.flat() } as unknown as IncomingMessage;
}

describe('SigV4 known answers (AWS S3 documentation examples)', () => {
  const opts = { keys: EXAMPLE, hostAllowed: () => true, now: () => T0 };

  it('verifies the GET-with-Range example and rejects it with another secret or a changed header', () => {
    const headers: [string, string][] = [
      ['Host', 'examplebucket.s3.amazonaws.com'],
      ['Range', 'bytes=0-9'],
      ['x-amz-content-sha256', 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'],
      ['x-amz-date', '20130524T000000Z'],
      [
        'Authorization',
        'AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41',
      ],
    ];
    expect(verifySigV4(fakeRequest('GET', '/test.txt', headers), '/test.txt', '', opts).form).toBe('header');
    expect(() =>
      verifySigV4(fakeRequest('GET', '/test.txt', headers), '/test.txt', '', {
        ...opts,
        keys: { ...EXAMPLE, secretAccessKey: 'x'.repeat(40) },
      }),
    ).toThrow(/signature we calculated/);
    const ranged = headers.map(([k, v]) => [k, k === 'Range' ? 'bytes=0-99' : v] as [string, string]);
    expect(() => verifySigV4(fakeRequest('GET', '/test.txt', ranged), '/test.txt', '', opts)).toThrow(/signature we calculated/);
    // 16 minutes later the same request is too old
    expect(() => verifySigV4(fakeRequest('GET', '/test.txt', headers), '/test.txt', '', { ...opts, now: () => T0 + 16 * 60_000 })).toThrow(
      /too large/,
    );
  });

  it('verifies the presigned-URL example inside its 86400 s, not after', () => {
    const q =
      'X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404';
    const req = () => fakeRequest('GET', `/test.txt?${q}`, [['Host', 'examplebucket.s3.amazonaws.com']]);
    expect(verifySigV4(req(), '/test.txt', q, { ...opts, now: () => T0 + 3600_000 }).form).toBe('presigned');
    expect(() => verifySigV4(req(), '/test.txt', q, { ...opts, now: () => T0 + 86_400_000 })).toThrow(/expired/);
    expect(() =>
      verifySigV4(req(), '/test.txt', q.replace('Expires=86400', 'Expires=86401'), { ...opts, now: () => T0 + 3600_000 }),
    ).toThrow(/signature we calculated/);
  });

  it('verifies the chunked-upload example: seed signature, each chunk, the final chunk; a changed byte fails', async () => {
    const headers: [string, string][] = [
      ['Host', 's3.amazonaws.com'],
      ['x-amz-date', '20130524T000000Z'],
      ['x-amz-storage-class', 'REDUCED_REDUNDANCY'],
      [
        'Authorization',
        'AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,SignedHeaders=content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;x-amz-storage-class,Signature=4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9',
      ],
      ['x-amz-content-sha256', 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD'],
      ['Content-Encoding', 'aws-chunked'],
      ['x-amz-decoded-content-length', '66560'],
      ['Content-Length', '66824'],
    ];
    const auth = verifySigV4(fakeRequest('PUT', '/examplebucket/chunkObject.txt', headers), '/examplebucket/chunkObject.txt', '', opts);
    const body = Buffer.concat([
      Buffer.from('10000;chunk-signature=ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648\r\n'),
      Buffer.alloc(65536, 'a'),
      Buffer.from('\r\n400;chunk-signature=0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497\r\n'),
      Buffer.alloc(1024, 'a'),
      Buffer.from('\r\n0;chunk-signature=b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9\r\n\r\n'),
    ]);
    expect(body.length).toBe(66824);
    expect(await decode(body, auth)).toBe(66560);
    const tampered = Buffer.from(body);
    tampered[66000] = 0x62;
    await expect(decode(tampered, auth)).rejects.toThrow(/chunk signature/);
  });
});

async function decode(body: Buffer, auth: Authorized, trailer = false): Promise<number> {
  let n = 0;
  await pipeline(
    Readable.from([body.subarray(0, 1000), body.subarray(1000)]),
    new AwsChunkedDecoder({ auth, trailer }),
    new Writable({
      write(c: Buffer, _e, cb) {
        n += c.length;
        cb();
      },
    }),
  );
  return n;
}

let dir: string;
let store: ObjectStore;
let s3: S3Client;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'loupe-os-sig-'));
  store = await startObjectStore({ dir, buckets: ['sig'] });
  s3 = new S3Client({ ...store.clientConfig, maxAttempts: 1 });
  await s3.send(new PutObjectCommand({ Bucket: 'sig', Key: 'k', Body: 'secret bytes' }));
});

afterAll(async () => {
  s3?.destroy();
  await store?.stop();
  await rm(dir, { recursive: true, force: true });
});

async function sdkError(p: Promise<unknown>): Promise<{ name: string; status?: number }> {
  try {
    await p;
  } catch (e) {
    return { name: (e as S3ServiceException).name, status: (e as S3ServiceException).$metadata?.httpStatusCode };
  }
  throw new Error('expected the call to fail');
}

function get(url: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
    });
    req.on('error', reject);
    req.end();
  });
}

async function presign(path: string, expiresIn: number, signingDate?: Date, method = 'GET'): Promise<string> {
  const u = new URL(store.endpoint);
  const signed = await s3Signer(store.credentials).presign(
    // as @aws-sdk/s3-request-presigner does: the payload is UNSIGNED-PAYLOAD, only Host is signed
    {
      method,
      protocol: 'http:',
      hostname: u.hostname,
      port: Number(u.port),
      path,
      query: {},
      headers: { host: u.host, 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD' },
    },
    { expiresIn, signingDate, unsignableHeaders: new Set(['x-amz-content-sha256']), unhoistableHeaders: new Set(['x-amz-content-sha256']) },
  );
  const qs = Object.entries(signed.query ?? {})
    .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(String(v))}`)
    .join('&');
  return `${store.endpoint}${path}?${qs}`;
}

describe('the live store checks every signature', () => {
  it('refuses a wrong secret, an unknown key id, the old public constant key and unsigned requests', async () => {
    const wrongSecret = new S3Client({
      ...store.clientConfig,
      credentials: { ...store.credentials, secretAccessKey: 'not-the-secret-0000' },
      maxAttempts: 1,
    });
    expect(await sdkError(wrongSecret.send(new GetObjectCommand({ Bucket: 'sig', Key: 'k' })))).toMatchObject({
      name: 'SignatureDoesNotMatch',
      status: 403,
    });
    const oldConstant = new S3Client({
      ...store.clientConfig,
      credentials: { accessKeyId: 'loupe-local', secretAccessKey: 'loupe-local-secret' },
      maxAttempts: 1,
    });
    expect(await sdkError(oldConstant.send(new GetObjectCommand({ Bucket: 'sig', Key: 'k' })))).toMatchObject({
      name: 'InvalidAccessKeyId',
      status: 403,
    });
    wrongSecret.destroy();
    oldConstant.destroy();
    const unsigned = await rawS3(store.endpoint, { method: 'GET', path: '/sig/k' });
    expect(unsigned.status).toBe(403);
    expect(errorCode(unsigned)).toBe('AccessDenied');
    const v2 = await get(`${store.endpoint}/sig/k`, { authorization: `AWS ${store.credentials.accessKeyId}:c2lnbmF0dXJl` });
    expect(v2.status).toBe(400);
    // a presigned-looking query without a valid signature
    const fake = await get(
      `${store.endpoint}/sig/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=${store.credentials.accessKeyId}%2F20300101%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20300101T000000Z&X-Amz-Expires=60&X-Amz-SignedHeaders=host&X-Amz-Signature=${'0'.repeat(64)}`,
    );
    expect(fake.status).toBe(403);
  });

  it('refuses a request signed 20 minutes ago (clock skew) and accepts one signed now', async () => {
    const old = await rawS3(store.endpoint, {
      method: 'GET',
      path: '/sig/k',
      keys: store.credentials,
      signingDate: new Date(Date.now() - 20 * 60_000),
    });
    expect(errorCode(old)).toBe('RequestTimeTooSkewed');
    const ok = await rawS3(store.endpoint, { method: 'GET', path: '/sig/k', keys: store.credentials });
    expect(ok.status).toBe(200);
    expect(ok.body).toBe('secret bytes');
  });

  it('serves presigned GET and PUT URLs until they expire; a changed path or expiry fails', async () => {
    const first = await presign('/sig/k', 60);
    expect(await get(first), first).toEqual({ status: 200, body: 'secret bytes' });
    const expired = await get(await presign('/sig/k', 60, new Date(Date.now() - 120_000)));
    expect(expired.status).toBe(403);
    expect(expired.body).toContain('expired');
    const url = await presign('/sig/k', 60);
    expect((await get(url.replace('/sig/k?', '/sig/other?'))).status).toBe(403);
    expect((await get(url.replace('X-Amz-Expires=60', 'X-Amz-Expires=600'))).status).toBe(403);
    const putUrl = await presign('/sig/presigned-put', 60, undefined, 'PUT');
    const put = await new Promise<number>((resolve, reject) => {
      const req = request(putUrl, { method: 'PUT', headers: { 'content-length': 5 } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      req.end('hello');
    });
    expect(put).toBe(200);
    expect(await (await s3.send(new GetObjectCommand({ Bucket: 'sig', Key: 'presigned-put' }))).Body!.transformToString()).toBe('hello');
  });

  it('refuses a correctly signed request that names another Host (DNS rebinding)', async () => {
    const port = new URL(store.endpoint).port;
    const r = await rawS3(store.endpoint, {
      method: 'GET',
      path: '/sig/k',
      keys: store.credentials,
      headers: { host: `attacker.example:${port}` },
    });
    expect(r.status).toBe(403);
    expect(r.body).toContain('does not name this object store');
    const local = await rawS3(store.endpoint, {
      method: 'GET',
      path: '/sig/k',
      keys: store.credentials,
      headers: { host: `localhost:${port}` },
    });
    expect(local.status).toBe(200);
  });

  it('accepts a signed aws-chunked upload (chunk and trailer signatures) and refuses one with a forged chunk', async () => {
    const data = [Buffer.alloc(70_000, 7), Buffer.from('tail')];
    const crc = '9fN2Eg=='; // not checked here: the trailer is signed, the checksum itself is verified elsewhere
    for (const mode of ['payload', 'trailer', 'forged'] as const) {
      const key = `chunked-${mode}`;
      const trailer = mode === 'trailer';
      const headers: Record<string, string> = {
        'content-encoding': 'aws-chunked',
        'x-amz-content-sha256': trailer ? 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER' : 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD',
        'x-amz-decoded-content-length': String(70_004),
        ...(trailer ? { 'x-amz-trailer': 'x-amz-meta-note' } : {}),
      };
      // The seed signature comes from the SDK's signer; the chain is what a streaming client adds.
      const u = new URL(store.endpoint);
      const signingDate = new Date();
      const signed = await s3Signer(store.credentials).sign(
        {
          method: 'PUT',
          protocol: 'http:',
          hostname: u.hostname,
          port: Number(u.port),
          path: `/sig/${key}`,
          query: {},
          headers: { host: u.host, ...headers },
        },
        { signingDate },
      );
      const authz = String(signed.headers.authorization);
      const amzDate = String(signed.headers['x-amz-date']);
      const seed = /Signature=([0-9a-f]+)/.exec(authz)![1]!;
      const a = {
        amzDate,
        scope: `${amzDate.slice(0, 8)}/us-east-1/s3/aws4_request`,
        signingKey: signingKeyOf(store.credentials.secretAccessKey, amzDate.slice(0, 8)),
      } as Authorized;
      let prev = seed;
      const parts: Buffer[] = [];
      for (const d of [...data, Buffer.alloc(0)]) {
        let sig = chunkSignature(a, prev, createHash('sha256').update(d).digest('hex'));
        prev = sig;
        if (mode === 'forged' && d.length === 4) sig = sig.replace(/^./, (c) => (c === '0' ? '1' : '0'));
        parts.push(Buffer.from(`${d.length.toString(16)};chunk-signature=${sig}\r\n`), d, Buffer.from(d.length ? '\r\n' : ''));
      }
      if (trailer) {
        const block = `x-amz-meta-note:${crc}\n`;
        parts.push(Buffer.from(`x-amz-meta-note:${crc}\r\nx-amz-trailer-signature:${trailerSignature(a, prev, block)}\r\n\r\n`));
      } else parts.push(Buffer.from('\r\n'));
      const body = Buffer.concat(parts);
      const r = await new Promise<{ status: number; body: string }>((resolve, reject) => {
        const req = request(
          {
            host: u.hostname,
            port: u.port,
            method: 'PUT',
            path: `/sig/${key}`,
            headers: { ...(signed.headers as Record<string, string>), 'content-length': body.length },
          },
          (res) => {
            const c: Buffer[] = [];
            res.on('data', (x: Buffer) => c.push(x));
            res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(c).toString() }));
          },
        );
        req.on('error', reject);
        req.end(body);
      });
      if (mode === 'forged') {
        expect(r.status).toBe(403);
        expect(await sdkError(s3.send(new GetObjectCommand({ Bucket: 'sig', Key: key })))).toMatchObject({ name: 'NoSuchKey' });
      } else {
        expect(r.status, r.body).toBe(200);
        const got = Buffer.from(await (await s3.send(new GetObjectCommand({ Bucket: 'sig', Key: key }))).Body!.transformToByteArray());
        expect(got.equals(Buffer.concat(data))).toBe(true);
      }
    }
  });

  it('keeps a random key pair per installation in <dir>/credentials.json, mode 0600, across restarts', async () => {
    const st = await stat(store.keysFile);
    expect(st.mode & 0o777).toBe(0o600);
    expect(JSON.parse(await readFile(store.keysFile, 'utf8'))).toMatchObject(store.credentials);
    expect(store.credentials.accessKeyId).toMatch(/^LOUPE[A-Z2-7]{15}$/);
    const d2 = await mkdtemp(join(tmpdir(), 'loupe-os-sig2-'));
    const other = await startObjectStore({ dir: d2 });
    expect(other.credentials.accessKeyId).not.toBe(store.credentials.accessKeyId);
    expect(other.credentials.secretAccessKey).not.toBe(store.credentials.secretAccessKey);
    const keys = other.credentials;
    await other.stop();
    const again = await startObjectStore({ dir: d2 });
    expect(again.credentials).toEqual(keys);
    await again.stop();
    await rm(d2, { recursive: true, force: true });
  });
});

function signingKeyOf(secret: string, date: string): Buffer {
  const h = (k: Buffer | string, s: string) => createHmac('sha256', k).update(s).digest();
  return h(h(h(h(`AWS4${secret}`, date), 'us-east-1'), 's3'), 'aws4_request');
}
