import {
  CreateMultipartUploadCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import fc from 'fast-check';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startObjectStore, type ObjectStore } from '../../embedded/objectstore/index.js';
import { errorCode, rawS3, type RawResponse } from '../objectstore/signing.js';
import { FUZZ_SECONDS, fuzzAsync, mutated } from './harness.js';

/**
 * Fuzz target: the object store's request parsing (embedded/objectstore), over HTTP, with
 * requests signed by the SDK's own SigV4 signer so that they get past the signature check and
 * reach the parsers: paths and percent-encodings, query strings and sub-resources, headers
 * (ranges, conditionals, copy sources, checksums, ACLs, metadata), XML bodies for DeleteObjects
 * and CompleteMultipartUpload (grammar-built: nested, repeated, entities, DOCTYPEs, CDATA; and
 * byte-mutated), and aws-chunked bodies (grammar-built and mutated framing, trailers).
 *
 * Properties: every request gets an answer that is not a 500 (501 only as NotImplemented); a
 * refusal carries an S3 error code; an aws-chunked PUT that is accepted stored exactly the
 * declared decoded length; a bucket the fuzzer never writes to keeps its object byte for byte;
 * the store keeps serving.
 */
let dir: string;
let store: ObjectStore;
let s3: S3Client;
let uploadId = '';
const B = 'fz';
const KEEP = 'keep';
const SENTINEL = Buffer.from('the sentinel: never written by the fuzzer\n');

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fuzz-os-'));
  store = await startObjectStore({ dir, buckets: [B, KEEP], minPartSize: 4 });
  s3 = new S3Client({ ...store.clientConfig, maxAttempts: 1 });
  await s3.send(new PutObjectCommand({ Bucket: KEEP, Key: 'sentinel', Body: SENTINEL }));
  for (const k of ['a', ' a', 'dir/b', 'dir/c d']) await s3.send(new PutObjectCommand({ Bucket: B, Key: k, Body: `body of ${k}` }));
  const up = await s3.send(new CreateMultipartUploadCommand({ Bucket: B, Key: 'mp' }));
  uploadId = up.UploadId!;
  for (const n of [1, 2])
    await s3.send(new UploadPartCommand({ Bucket: B, Key: 'mp', UploadId: uploadId, PartNumber: n, Body: `part ${n} bytes` }));
});

afterAll(async () => {
  s3?.destroy();
  await store?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

// --- XML bodies ------------------------------------------------------------------------------

const xmlText = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom('a', ' a', 'dir/b', 'missing', 'mp', '') },
  fc.string({ maxLength: 20 }).map((s) => s.replace(/[<&]/g, '')),
  fc.constantFrom(
    '&amp;',
    '&#xA;a',
    '&#0;',
    '&#x110000;',
    '&unknown;',
    '<![CDATA[a]]>',
    '<![CDATA[<Key>x</Key>]]>',
    '&lt;Key&gt;',
    '\u0000',
    '\ud800',
  ),
);
type XNode = { name: string; children: XNode[] | string };
const xmlName = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom('Object', 'Key', 'Quiet', 'VersionId', 'Part', 'PartNumber', 'ETag', 'ChecksumCRC32') },
  fc.constantFrom('__proto__', 'constructor', 'x:Key', 'Delete', 'CompleteMultipartUpload'),
  fc.stringMatching(/^[A-Za-z_][A-Za-z0-9_.-]{0,8}$/),
);
const { node: xmlNode } = fc.letrec<{ node: XNode }>((tie) => ({
  node: fc.record({
    name: xmlName,
    children: fc.oneof({ depthSize: 'small', withCrossShrink: true }, xmlText, fc.array(tie('node'), { maxLength: 4 })),
  }),
}));
const render = (n: XNode): string =>
  `<${n.name}>${typeof n.children === 'string' ? n.children : n.children.map(render).join('')}</${n.name}>`;
const prolog = fc.oneof(
  { weight: 6, arbitrary: fc.constant('') },
  fc.constantFrom(
    '<?xml version="1.0" encoding="UTF-8"?>',
    '<!DOCTYPE d [<!ENTITY x "xxxxxxxxxxxxxxxxxxxx"><!ENTITY y "&x;&x;&x;&x;&x;&x;&x;&x;&x;&x;"><!ENTITY z "&y;&y;&y;&y;&y;&y;&y;&y;&y;&y;">]>',
    '<!DOCTYPE d [<!ENTITY e SYSTEM "file:///etc/passwd">]>',
    '<?xml version="1.0" encoding="UTF-16"?>',
  ),
);
const deleteXml = fc
  .record({
    prolog,
    ns: fc.boolean(),
    quiet: fc.option(fc.constantFrom('true', 'false', 'TRUE', ' true ', '<a/>'), { nil: undefined }),
    objects: fc.array(
      fc.oneof(
        { weight: 4, arbitrary: xmlText.map((k) => `<Object><Key>${k}</Key></Object>`) },
        xmlNode.map((n) => `<Object>${render(n)}</Object>`),
        xmlNode.map(render),
      ),
      { maxLength: 8 },
    ),
  })
  .map(
    ({ prolog: p, ns, quiet, objects }) =>
      `${p}<Delete${ns ? ' xmlns="http://s3.amazonaws.com/doc/2006-03-01/"' : ''}>${quiet !== undefined ? `<Quiet>${quiet}</Quiet>` : ''}${objects.join('')}</Delete>`,
  );
const completeXml = fc
  .record({
    prolog,
    parts: fc.array(
      fc.oneof(
        {
          weight: 4,
          arbitrary: fc
            .record({
              n: fc.oneof(
                fc.constantFrom('1', '2', '3', '0', '-1', '10001', ' 1', '1e3', '99999999999999999999'),
                fc.string({ maxLength: 4 }),
              ),
              etag: fc.oneof(
                fc.constant('"ok"'),
                fc.string({ maxLength: 10 }).map((s) => s.replace(/[<&]/g, '')),
              ),
            })
            .map(({ n, etag }) => `<Part><PartNumber>${n}</PartNumber><ETag>${etag}</ETag></Part>`),
        },
        xmlNode.map((n) => `<Part>${render(n)}</Part>`),
        xmlNode.map(render),
      ),
      { maxLength: 5 },
    ),
  })
  .map(({ prolog: p, parts }) => `${p}<CompleteMultipartUpload>${parts.join('')}</CompleteMultipartUpload>`);
const xmlSeeds = [
  '<Delete><Object><Key>a</Key></Object><Object><Key> a</Key></Object><Quiet>false</Quiet></Delete>',
  '<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>"x"</ETag></Part><Part><PartNumber>2</PartNumber><ETag>"y"</ETag></Part></CompleteMultipartUpload>',
].map((s) => new Uint8Array(Buffer.from(s)));
const xmlBody = fc.oneof(
  { weight: 3, arbitrary: fc.oneof(deleteXml, completeXml).map((s) => Buffer.from(s)) },
  { weight: 2, arbitrary: mutated(xmlSeeds).map((b) => Buffer.from(b)) },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      Buffer.from(''),
      Buffer.from('<'),
      Buffer.from('<Delete>' + '<a>'.repeat(5000) + '</a>'.repeat(5000) + '</Delete>'),
    ),
  },
);

// --- aws-chunked bodies ----------------------------------------------------------------------

interface Chunked {
  body: Buffer;
  /** what the framing carries if it is intact, and the length the request declares */
  payload: Buffer;
  declared: string;
  trailer: string | null;
}
function frame(chunks: Buffer[], trailers: string): Buffer {
  return Buffer.concat([
    ...chunks.map((c) => Buffer.concat([Buffer.from(`${c.length.toString(16)}\r\n`), c, Buffer.from('\r\n')])),
    Buffer.from(`0\r\n${trailers}\r\n`),
  ]);
}
const crcB64 = (b: Buffer) => {
  const o = Buffer.alloc(4);
  o.writeUInt32BE(crc32(b));
  return o.toString('base64');
};
const chunkedArb: fc.Arbitrary<Chunked> = fc
  .record({
    chunks: fc.array(
      fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b)),
      { maxLength: 4 },
    ),
    trailer: fc.constantFrom('good', 'bad', 'none', 'junk'),
    declaredDelta: fc.oneof({ weight: 6, arbitrary: fc.constant(0) }, fc.constantFrom(-1, 1, 1e12, -1e6), fc.constant(NaN)),
    mutate: fc.option(
      fc.array(fc.record({ at: fc.nat(), kind: fc.constantFrom('size', 'crlf', 'ext', 'cut', 'byte'), v: fc.nat(255) }), {
        minLength: 1,
        maxLength: 3,
      }),
      { freq: 2 },
    ),
  })
  .map(({ chunks, trailer, declaredDelta, mutate }) => {
    const payload = Buffer.concat(chunks);
    const trailerLine =
      trailer === 'good'
        ? `x-amz-checksum-crc32:${crcB64(payload)}\r\n`
        : trailer === 'bad'
          ? 'x-amz-checksum-crc32:AAAAAA==\r\n'
          : trailer === 'junk'
            ? 'x-amz-checksum-crc32\r\n: :\r\n'
            : '';
    let body = frame(chunks, trailerLine);
    for (const m of mutate ?? []) {
      const at = body.length ? m.at % body.length : 0;
      if (m.kind === 'size') body = Buffer.concat([body.subarray(0, at), Buffer.from('ffffffffffff'), body.subarray(at)]);
      else if (m.kind === 'crlf') body = Buffer.concat([body.subarray(0, at), body.subarray(at + 2)]);
      else if (m.kind === 'ext')
        body = Buffer.concat([body.subarray(0, at), Buffer.from(';chunk-signature=' + 'a'.repeat(m.v)), body.subarray(at)]);
      else if (m.kind === 'cut') body = body.subarray(0, at);
      else body[at] = m.v;
    }
    const declared = Number.isNaN(declaredDelta) ? 'abc' : String(payload.length + declaredDelta);
    return { body, payload, declared, trailer: trailer === 'none' ? null : 'x-amz-checksum-crc32' };
  });

// --- everything else -------------------------------------------------------------------------

const keySeg = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom('a', '%20a', 'dir/b', 'dir/c%20d', 'mp', 'new', 'new/x') },
  fc.constantFrom('', '..', '../keep/sentinel', '%2E%2E/%2E%2E', '%zz', '%', '%E0%A4%A', 'a//b', '%00', 'x'.repeat(1100), '%2F'),
  fc.string({ maxLength: 12 }).map(encodeURIComponent),
);
const bucketSeg = fc.oneof(
  { weight: 8, arbitrary: fc.constant(B) },
  fc.constantFrom('', 'nobucket', 'FZ', '..', '%66z', 'a', '192.168.0.1', 'x'.repeat(70), '%zz'),
);
const SUBS = [
  'delete',
  'uploads',
  'uploadId',
  'partNumber',
  'versionId',
  'versions',
  'acl',
  'location',
  'versioning',
  'attributes',
  'tagging',
  'policy',
  'list-type',
  'prefix',
  'delimiter',
  'max-keys',
  'marker',
  'start-after',
  'continuation-token',
  'encoding-type',
  'max-parts',
  'part-number-marker',
  'key-marker',
  'upload-id-marker',
  'version-id-marker',
  'fetch-owner',
  'response-content-type',
  'x-id',
];
const queryVal = fc.oneof(
  fc.constantFrom('', '1', '2', '0', '-1', '1000', '10001', '2147483648', 'url', 'dir/', '/', 'null', 'abc', 'ZGlyL2I'),
  fc.string({ maxLength: 12 }),
);
const queryArb = fc.dictionary(
  fc.oneof({ weight: 8, arbitrary: fc.constantFrom(...SUBS) }, fc.string({ minLength: 1, maxLength: 8 })),
  queryVal,
  { maxKeys: 4 },
);
const HEADERS: [string, fc.Arbitrary<string>][] = [
  [
    'range',
    fc.constantFrom(
      'bytes=0-3',
      'bytes=-2',
      'bytes=5-',
      'bytes=3-1',
      'bytes=0-0,2-3',
      'bytes=99999999999999999999-',
      'chars=0-1',
      'bytes=-0',
      'bytes=',
    ),
  ],
  ['if-match', fc.constantFrom('*', '"x"', 'W/"x"', '', '"a", "b"')],
  ['if-none-match', fc.constantFrom('*', '"x"', '')],
  ['if-modified-since', fc.constantFrom('Thu, 01 Jan 1970 00:00:00 GMT', 'not a date', '')],
  [
    'x-amz-copy-source',
    fc.oneof(
      fc.constantFrom(
        `/${B}/a`,
        `${B}/%20a`,
        `${KEEP}/sentinel`,
        `${B}/a?versionId=7`,
        `${B}/a?versionId=null`,
        '%zz',
        '/',
        `${B}/`,
        `${B}/mp`,
        `${B}/dir%2Fb`,
      ),
      fc.string({ maxLength: 10 }),
    ),
  ],
  ['x-amz-copy-source-range', fc.constantFrom('bytes=0-1', 'bytes=5-1', 'bytes=0-99999', 'x')],
  ['x-amz-metadata-directive', fc.constantFrom('COPY', 'REPLACE', 'BOTH')],
  ['x-amz-checksum-crc32', fc.constantFrom('AAAAAA==', 'x', '')],
  ['x-amz-checksum-sha256', fc.constantFrom('AAAA', '47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=')],
  ['x-amz-checksum-algorithm', fc.constantFrom('CRC32', 'SHA1', 'crc64nvme', 'MD5', '')],
  ['x-amz-checksum-type', fc.constantFrom('FULL_OBJECT', 'COMPOSITE', 'x')],
  ['content-md5', fc.constantFrom('1B2M2Y8AsgTpgAmY7PhCfg==', 'x', '')],
  ['x-amz-acl', fc.constantFrom('private', 'public-read', '')],
  ['x-amz-grant-read', fc.constant('id=1')],
  ['x-amz-meta-note', fc.string({ maxLength: 20 })],
  ['content-type', fc.constantFrom('text/plain', '', 'application/xml')],
  ['x-amz-decoded-content-length', fc.constantFrom('0', '-1', 'x', '99999999999')],
  ['content-encoding', fc.constantFrom('gzip', 'aws-chunked', 'gzip, aws-chunked')],
];
const headersArb = fc
  .subarray(HEADERS, { maxLength: 4 })
  .chain((hs) =>
    hs.length
      ? fc.tuple(...hs.map(([, a]) => a)).map((vs) => Object.fromEntries(hs.map(([n], i) => [n, vs[i]!])))
      : fc.constant({} as Record<string, string>),
  );

type Req = {
  method: string;
  path: string;
  query: Record<string, string>;
  headers: Record<string, string>;
  body?: Buffer;
  chunked?: Chunked;
};
const generic: fc.Arbitrary<Req> = fc.record({
  method: fc.oneof({ weight: 8, arbitrary: fc.constantFrom('GET', 'PUT', 'POST', 'DELETE', 'HEAD') }, fc.constantFrom('OPTIONS', 'PATCH')),
  path: fc.oneof(
    { weight: 6, arbitrary: fc.tuple(bucketSeg, keySeg).map(([b, k]) => `/${b}/${k}`) },
    bucketSeg.map((b) => `/${b}`),
    fc.constantFrom('/', '//', '/fz//', '/fz/a?'),
  ),
  query: queryArb,
  headers: headersArb,
  body: fc.option(
    fc.oneof(
      fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b)),
      xmlBody,
    ),
    { nil: undefined, freq: 2 },
  ),
});
const deleteReq: fc.Arbitrary<Req> = fc
  .record({ body: xmlBody, headers: headersArb })
  .map(({ body, headers }) => ({ method: 'POST', path: `/${B}`, query: { delete: '' }, headers, body }));
const completeReq: fc.Arbitrary<Req> = fc
  .record({ body: xmlBody, id: fc.oneof({ weight: 4, arbitrary: fc.constant('UPLOAD') }, fc.string({ maxLength: 10 })) })
  .map(({ body, id }) => ({ method: 'POST', path: `/${B}/mp`, query: { uploadId: id }, headers: {}, body }));
const chunkedReq: fc.Arbitrary<Req> = fc
  .record({ c: chunkedArb, key: fc.constantFrom('up/1', 'up/2', 'mp'), part: fc.boolean() })
  .map(({ c, key, part }): Req => {
    const query: Record<string, string> = part && key === 'mp' ? { uploadId: 'UPLOAD', partNumber: '3' } : {};
    const headers: Record<string, string> = {
      'content-encoding': 'aws-chunked',
      'x-amz-content-sha256': 'STREAMING-UNSIGNED-PAYLOAD-TRAILER',
      'x-amz-decoded-content-length': c.declared,
    };
    if (c.trailer) headers['x-amz-trailer'] = c.trailer;
    return { method: 'PUT', path: `/${B}/${key}`, query, headers, chunked: c };
  });
const requestArb = fc.oneof(
  { weight: 4, arbitrary: generic },
  { weight: 2, arbitrary: deleteReq },
  { weight: 1, arbitrary: completeReq },
  { weight: 2, arbitrary: chunkedReq },
);

/** A request the fuzzer may not send: anything that writes to the sentinel's bucket. */
function touchesKeep(r: Req): boolean {
  let first = r.path.split('/')[1] ?? '';
  try {
    first = decodeURIComponent(first);
  } catch {
    /* left as is */
  }
  return first === KEEP && r.method !== 'GET' && r.method !== 'HEAD';
}

async function send(r: Req): Promise<RawResponse | null> {
  const query = Object.fromEntries(Object.entries(r.query).map(([k, v]) => [k, v === 'UPLOAD' ? uploadId : v]));
  try {
    return await rawS3(store.endpoint, {
      method: r.method,
      path: r.path,
      query,
      headers: r.headers,
      body: r.chunked?.body ?? r.body,
      keys: store.credentials,
    });
  } catch (e) {
    const m = `${(e as NodeJS.ErrnoException).code} ${(e as Error).message}`;
    // Requests Node itself will not send (bad header characters, a path it refuses) are not the store's business.
    if (/ERR_INVALID_CHAR|ERR_INVALID_HTTP_TOKEN|ERR_UNESCAPED_CHARACTERS|Invalid character|URI malformed/.test(m)) return null;
    // The store closes the connection after answering an oversized body; the client may see that as a reset.
    if (/ECONNRESET|EPIPE|socket hang up/.test(m)) return { status: 0, headers: {}, body: '' };
    throw e;
  }
}

describe('fuzz: object store request parsing', () => {
  it(
    'answers every request without a 500; refusals carry an S3 code; accepted aws-chunked bodies are stored whole; the sentinel is untouched',
    async () => {
      let chunkedAccepted = 0;
      const r = await fuzzAsync(
        'objectstore-requests',
        requestArb,
        async (req, stats) => {
          if (touchesKeep(req)) return;
          const t0 = performance.now();
          const res = await send(req);
          if (!res) return;
          stats.iterations++;
          stats.maxCallMs = Math.max(stats.maxCallMs, performance.now() - t0);
          const code = errorCode(res);
          if (res.status === 500 || (res.status > 500 && code !== 'NotImplemented'))
            throw new Error(
              `${req.method} ${req.path} ${JSON.stringify(req.query)} answered ${res.status} ${code}: ${res.body.slice(0, 300)}`,
            );
          if (res.status >= 400) {
            if (!code)
              throw new Error(`${req.method} ${req.path} answered ${res.status} without an S3 error code: ${res.body.slice(0, 200)}`);
            stats.note(code, false);
          } else stats.note(String(res.status), res.status > 0);
          if (req.chunked && res.status === 200 && req.query.uploadId === undefined) {
            // accepted: exactly the declared decoded length was stored (no silent truncation or framing kept)
            chunkedAccepted++;
            const key = decodeURIComponent(req.path.slice(`/${B}/`.length));
            const got = Buffer.from(await (await s3.send(new GetObjectCommand({ Bucket: B, Key: key }))).Body!.transformToByteArray());
            if (String(got.length) !== req.chunked.declared)
              throw new Error(`aws-chunked PUT declared ${req.chunked.declared} bytes and stored ${got.length}`);
            if (
              got.length === req.chunked.payload.length &&
              !got.equals(req.chunked.payload) &&
              req.chunked.trailer &&
              /crc32:[A-Za-z0-9+/]{6}==\r\n/.test(req.chunked.body.toString('latin1'))
            ) {
              // a mutated body with a checksum trailer that still passed: the checksum covered what was stored
              const stored = await s3.send(new GetObjectCommand({ Bucket: B, Key: key, ChecksumMode: 'ENABLED' }));
              if (stored.ChecksumCRC32 && stored.ChecksumCRC32 !== crcB64(got))
                throw new Error('stored checksum does not match the stored bytes');
            }
          }
          if (stats.iterations % 50 === 0) {
            const s = await s3.send(new GetObjectCommand({ Bucket: KEEP, Key: 'sentinel' }));
            if (!Buffer.from(await s.Body!.transformToByteArray()).equals(SENTINEL)) throw new Error('the sentinel object changed');
          }
        },
        { maxCallMs: 10_000 },
      );
      console.log(`fuzz objectstore-requests: ${chunkedAccepted} aws-chunked uploads accepted and checked`);
      expect(r.iterations).toBeGreaterThanOrEqual(20); // the budget is time: a loaded machine runs fewer
      expect(r.refused).toBeGreaterThan(0);
      expect(r.accepted).toBeGreaterThan(0);
      const s = await s3.send(new GetObjectCommand({ Bucket: KEEP, Key: 'sentinel' }));
      expect(Buffer.from(await s.Body!.transformToByteArray()).equals(SENTINEL)).toBe(true);
      expect(((await s3.send(new ListObjectsV2Command({ Bucket: KEEP }))).Contents ?? []).map((o) => o.Key)).toEqual(['sentinel']);
    },
    FUZZ_SECONDS * 1000 + 120_000,
  );
});
