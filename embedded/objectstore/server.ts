import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, rm } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { isOversize, receiveBody, readSmallBody, requestAuth } from './body.js';
import { checksumFromHeaders, headerName, newHasher, parseAlgorithm, xmlName, type StoredChecksum } from './checksums.js';
import { invalidArgument, S3Error } from './errors.js';
import { listSorted } from './list.js';
import { verifySigV4, type Keys } from './sigv4.js';
import type { ObjectInput, ObjectRecord, ObjectStoreState } from './store.js';
import { document, parseXml, type XmlValue } from './xml.js';

/**
 * The S3 REST API (path-style) over the persisted state. Requests are routed on method, bucket,
 * key and sub-resource the way S3 does. Every request must carry a valid SigV4 signature for
 * the store's key pair (sigv4.ts) and a Host naming this store.
 */
export interface ServerConfig {
  region: string;
  minPartSize: number;
  keys: Keys;
  hostAllowed(host: string): boolean;
  now?: () => number;
  log: Logger;
}

type Q = URLSearchParams;

const OWNER = { ID: 'loupe', DisplayName: 'loupe' };
const PASSTHROUGH_HEADERS = ['content-disposition', 'content-language', 'cache-control', 'expires'];

function hdr(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

function validBucketName(name: string): boolean {
  return /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(name) && !/\.\./.test(name) && !/^\d+\.\d+\.\d+\.\d+$/.test(name);
}

function objectInput(req: IncomingMessage): ObjectInput {
  const headers: Record<string, string> = {};
  for (const h of PASSTHROUGH_HEADERS) {
    const v = hdr(req, h);
    if (v !== undefined) headers[h] = v;
  }
  // aws-chunked is transport framing, not a property of the object.
  const enc = (hdr(req, 'content-encoding') ?? '')
    .split(',')
    .map((e) => e.trim())
    .filter((e) => e !== '' && e !== 'aws-chunked')
    .join(', ');
  if (enc) headers['content-encoding'] = enc;
  const metadata: Record<string, string> = {};
  for (const [k, v] of Object.entries(req.headers)) {
    if (k.startsWith('x-amz-meta-') && v !== undefined) metadata[k.slice('x-amz-meta-'.length)] = Array.isArray(v) ? v.join(',') : v;
  }
  return { contentType: hdr(req, 'content-type') ?? 'binary/octet-stream', headers, metadata };
}

function checksumXml(c: StoredChecksum | undefined): [string, XmlValue][] {
  return c
    ? [
        [xmlName(c.algorithm), c.value],
        ['ChecksumType', c.type],
      ]
    : [];
}

function httpDate(iso: string): string {
  return new Date(iso).toUTCString();
}

function sendXml(res: ServerResponse, status: number, body: string): void {
  res.writeHead(status, { 'content-type': 'application/xml', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

/** ETags of an If-Match / If-None-Match list, bare. */
const etagList = (v: string): string[] => v.split(',').map((t) => t.trim().replace(/^W\//, '').replace(/"/g, ''));
const bareEtag = (e: string): string => e.replace(/"/g, '');
const preconditionFailed = (what: string) =>
  new S3Error('PreconditionFailed', 412, 'At least one of the pre-conditions you specified did not hold', what);

/**
 * S3's conditional-copy rules for x-amz-copy-source-if-*: If-Match wins over
 * If-Unmodified-Since, If-None-Match over If-Modified-Since; dates that do not parse are ignored.
 */
function checkCopyConditions(req: IncomingMessage, from: ObjectRecord): void {
  const etag = bareEtag(from.etag);
  const modified = Math.floor(Date.parse(from.lastModified) / 1000) * 1000;
  const ifMatch = hdr(req, 'x-amz-copy-source-if-match');
  const ifNoneMatch = hdr(req, 'x-amz-copy-source-if-none-match');
  const ifUnmod = Date.parse(hdr(req, 'x-amz-copy-source-if-unmodified-since') ?? '');
  const ifMod = Date.parse(hdr(req, 'x-amz-copy-source-if-modified-since') ?? '');
  if (ifMatch !== undefined) {
    if (!etagList(ifMatch).some((t) => t === '*' || t === etag)) throw preconditionFailed('x-amz-copy-source-if-match');
  } else if (!Number.isNaN(ifUnmod) && modified > ifUnmod) throw preconditionFailed('x-amz-copy-source-if-unmodified-since');
  if (ifNoneMatch !== undefined) {
    if (etagList(ifNoneMatch).some((t) => t === '*' || t === etag)) throw preconditionFailed('x-amz-copy-source-if-none-match');
  } else if (!Number.isNaN(ifMod) && modified <= ifMod) throw preconditionFailed('x-amz-copy-source-if-modified-since');
}

/**
 * `x-amz-copy-source`: URL-encoded `bucket/key`, optionally `?versionId=...`. The query is split
 * off BEFORE decoding, so a key holding an encoded `?versionId=` stays whole (decoding first made
 * "src%3FversionId%3D7" copy "src"). The store keeps one version per key, S3's "null" version.
 */
function parseCopySource(raw: string): { bucket: string; key: string } {
  const qi = raw.indexOf('?');
  const versionId = qi === -1 ? undefined : new URLSearchParams(raw.slice(qi + 1)).get('versionId');
  let src: string;
  try {
    src = decodeURIComponent(qi === -1 ? raw : raw.slice(0, qi)).replace(/^\//, '');
  } catch {
    throw invalidArgument('Invalid percent-encoding in x-amz-copy-source', 'x-amz-copy-source');
  }
  if (versionId !== undefined && versionId !== null && versionId !== 'null')
    throw invalidArgument('Invalid version id specified', 'x-amz-copy-source');
  const slash = src.indexOf('/');
  if (slash <= 0 || slash === src.length - 1)
    throw invalidArgument('Copy Source must mention the source bucket and key: sourcebucket/sourcekey', 'x-amz-copy-source');
  return { bucket: src.slice(0, slash), key: src.slice(slash + 1) };
}

/**
 * ACLs are off, as on S3 buckets with Object Ownership "bucket owner enforced" (S3's default):
 * everything belongs to the one key pair. Canned ACLs that say just that are accepted; any
 * other grant is refused rather than silently ignored.
 */
function checkAcl(req: IncomingMessage): void {
  const acl = hdr(req, 'x-amz-acl');
  const grants = Object.keys(req.headers).some((h) => h.startsWith('x-amz-grant-'));
  if (grants || (acl !== undefined && acl !== 'private' && acl !== 'bucket-owner-full-control')) {
    throw new S3Error(
      'AccessControlListNotSupported',
      400,
      'The bucket does not allow ACLs (the loupe object store has one owner; only the private ACL applies)',
    );
  }
}

/** The query parameters ListObjects (v1, v2) and ListObjectVersions share. */
function listParams(q: Q) {
  const encodingType = q.get('encoding-type');
  if (encodingType !== null && encodingType !== 'url')
    throw invalidArgument('Invalid Encoding Method specified in Request', 'encoding-type');
  return {
    prefix: q.get('prefix') ?? '',
    delimiter: q.get('delimiter') || undefined,
    max: maxKeys(q),
    encodingType,
    enc: (s: string) => (encodingType === 'url' ? encodeURIComponent(s).replace(/%2F/g, '/') : s),
  };
}

function listToken(s: string): string {
  return Buffer.from(s, 'utf8').toString('base64url');
}

function fromToken(t: string): string {
  const s = Buffer.from(t, 'base64url').toString('utf8');
  if (listToken(s) !== t.replace(/=+$/, '')) throw invalidArgument('The continuation token provided is incorrect', 'continuation-token');
  return s;
}

function maxKeys(q: Q, name = 'max-keys'): number {
  const v = q.get(name);
  if (v === null) return 1000;
  if (!/^\d+$/.test(v)) throw invalidArgument(`Provided ${name} not an integer or within integer range`, name);
  return Math.min(Number(v), 1000);
}

export function createHandler(state: ObjectStoreState, cfg: ServerConfig) {
  return async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const requestId = randomBytes(8).toString('hex').toUpperCase();
    res.setHeader('x-amz-request-id', requestId);
    res.setHeader('x-amz-id-2', requestId);
    res.setHeader('server', 'loupe-objectstore');
    const rawUrl = req.url ?? '/';
    const qi = rawUrl.indexOf('?');
    // No URL normalisation: S3 keys may contain `..` and `//`.
    const rawPath = qi === -1 ? rawUrl : rawUrl.slice(0, qi);
    const rawQuery = qi === -1 ? '' : rawUrl.slice(qi + 1);
    const q = new URLSearchParams(rawQuery);
    let bucket = '';
    let key = '';
    try {
      const m = /^\/([^/]*)(?:\/(.*))?$/s.exec(rawPath);
      if (!m) throw invalidArgument('Invalid request path', rawPath);
      bucket = decodeURIComponent(m[1]!);
      key = decodeURIComponent(m[2] ?? '');
      requestAuth.set(
        req,
        verifySigV4(req, rawPath, rawQuery, {
          ...cfg,
          onMismatch: (c) => cfg.log.debug({ canonicalRequests: c }, 'objectstore: signature does not match'),
        }),
      );
      await route(req, res, q, bucket, key);
    } catch (e) {
      const err =
        e instanceof S3Error
          ? e
          : e instanceof URIError
            ? invalidArgument('Invalid percent-encoding in the request path', rawPath)
            : new S3Error('InternalError', 500, `We encountered an internal error: ${(e as Error).message}`);
      if (!(e instanceof S3Error)) cfg.log.error({ err: e, method: req.method, url: rawUrl }, 'objectstore internal error');
      else cfg.log.debug({ code: err.code, method: req.method, url: rawUrl }, 'objectstore error');
      if (res.headersSent) {
        res.destroy();
        return;
      }
      if (isOversize(err)) {
        // Do not read the rest of an oversized body: answer, then close the connection.
        res.setHeader('connection', 'close');
        res.once('finish', () => req.socket.destroySoon?.());
      } else if (!req.complete) {
        // Drain what the client is still sending so it reads the error instead of EPIPE.
        req.resume();
      }
      if (req.method === 'HEAD') {
        res.writeHead(err.status, { 'x-amz-error-code': err.code });
        res.end();
        return;
      }
      sendXml(
        res,
        err.status,
        document('Error', [
          ['Code', err.code],
          ['Message', err.message],
          ['Resource', err.resource ?? `/${bucket}${key ? '/' + key : ''}`],
          ['RequestId', requestId],
        ]).replace(' xmlns="http://s3.amazonaws.com/doc/2006-03-01/"', ''),
      );
    }
  };

  async function route(req: IncomingMessage, res: ServerResponse, q: Q, bucket: string, key: string): Promise<void> {
    const method = req.method ?? 'GET';
    if (bucket === '') {
      if (method === 'GET') return listBuckets(res, q);
      throw new S3Error('MethodNotAllowed', 405, 'The specified method is not allowed against this resource.');
    }
    if (key === '') {
      switch (method) {
        case 'PUT':
          if (q.has('acl')) return putAcl(req, res, bucket);
          // Any other sub-resource (versioning, policy, ...) is not a CreateBucket: refuse it
          // rather than answer 200 for a setting the store does not keep.
          for (const sub of q.keys()) throw notImplemented(`bucket sub-resource ?${sub}`);
          return createBucket(req, res, bucket);
        case 'DELETE':
          await state.deleteBucket(bucket);
          res.writeHead(204).end();
          return;
        case 'HEAD':
          if (!state.hasBucket(bucket)) throw new S3Error('NotFound', 404, 'Not Found', bucket);
          res.writeHead(200, { 'x-amz-bucket-region': cfg.region }).end();
          return;
        case 'GET':
          if (!state.hasBucket(bucket)) throw new S3Error('NoSuchBucket', 404, 'The specified bucket does not exist', bucket);
          if (q.has('location'))
            return sendXml(
              res,
              200,
              document('LocationConstraint', []).replace(
                '></LocationConstraint>',
                `>${cfg.region === 'us-east-1' ? '' : cfg.region}</LocationConstraint>`,
              ),
            );
          if (q.has('versioning')) return sendXml(res, 200, document('VersioningConfiguration', []));
          if (q.has('uploads')) return listUploads(res, q, bucket);
          if (q.has('versions')) return listVersions(res, q, bucket);
          if (q.has('acl')) return sendAcl(res);
          for (const sub of [
            'policy',
            'cors',
            'lifecycle',
            'tagging',
            'website',
            'notification',
            'replication',
            'encryption',
            'logging',
            'ownershipControls',
            'publicAccessBlock',
            'object-lock',
            'accelerate',
            'requestPayment',
            'analytics',
            'metrics',
            'inventory',
            'intelligent-tiering',
          ]) {
            if (q.has(sub)) throw notImplemented(`bucket sub-resource ?${sub}`);
          }
          return q.get('list-type') === '2' ? listObjects(res, q, bucket, 2) : listObjects(res, q, bucket, 1);
        case 'POST':
          if (q.has('delete')) return deleteObjects(req, res, bucket);
          throw notImplemented('POST on a bucket other than ?delete');
        default:
          throw new S3Error('MethodNotAllowed', 405, 'The specified method is not allowed against this resource.');
      }
    }
    if (!state.hasBucket(bucket)) throw new S3Error('NoSuchBucket', 404, 'The specified bucket does not exist', bucket);
    if (q.has('acl') && (method === 'GET' || method === 'PUT')) {
      state.getObject(bucket, key);
      return method === 'GET' ? sendAcl(res) : putAcl(req, res, bucket);
    }
    if (q.has('attributes') && method === 'GET') return objectAttributes(req, res, bucket, key);
    for (const sub of ['tagging', 'acl', 'retention', 'legal-hold', 'torrent', 'restore', 'select', 'attributes']) {
      if (q.has(sub)) throw notImplemented(`object sub-resource ?${sub}`);
    }
    switch (method) {
      case 'PUT':
        if (q.has('uploadId') && hdr(req, 'x-amz-copy-source')) return uploadPartCopy(req, res, q, bucket, key);
        if (q.has('uploadId')) return uploadPart(req, res, q, bucket, key);
        if (hdr(req, 'x-amz-copy-source')) return copyObject(req, res, bucket, key);
        return putObject(req, res, bucket, key);
      case 'GET':
        if (q.has('uploadId')) return listParts(res, q, bucket, key);
        return getObject(req, res, q, bucket, key, false);
      case 'HEAD':
        return getObject(req, res, q, bucket, key, true);
      case 'DELETE':
        if (q.has('uploadId')) {
          await state.abortUpload(await state.getUpload(bucket, key, q.get('uploadId')!));
          res.writeHead(204).end();
          return;
        }
        await state.deleteObject(bucket, key);
        res.writeHead(204).end();
        return;
      case 'POST':
        if (q.has('uploads')) return createUpload(req, res, bucket, key);
        if (q.has('uploadId')) return completeUpload(req, res, q, bucket, key);
        throw notImplemented('POST on an object other than ?uploads / ?uploadId');
      default:
        throw new S3Error('MethodNotAllowed', 405, 'The specified method is not allowed against this resource.');
    }
  }

  /** ListBuckets, with S3's optional prefix, max-buckets and continuation-token paging. */
  function listBuckets(res: ServerResponse, q: Q): void {
    const prefix = q.get('prefix') ?? '';
    const token = q.get('continuation-token');
    const after = token !== null ? fromToken(token) : '';
    const maxRaw = q.get('max-buckets');
    if (maxRaw !== null && (!/^\d+$/.test(maxRaw) || Number(maxRaw) < 1 || Number(maxRaw) > 10000))
      throw invalidArgument('max-buckets must be an integer between 1 and 10000', 'max-buckets');
    const all = state.listBuckets().filter((b) => b.name.startsWith(prefix) && b.name > after);
    const shown = maxRaw === null ? all : all.slice(0, Number(maxRaw));
    const truncated = shown.length < all.length;
    sendXml(
      res,
      200,
      document('ListAllMyBucketsResult', [
        ['Owner', OWNER],
        ['Buckets', shown.map((b) => ['Bucket', { Name: b.name, CreationDate: b.created }] as [string, XmlValue])],
        ['ContinuationToken', truncated ? listToken(shown[shown.length - 1]!.name) : undefined],
        ['Prefix', q.has('prefix') ? prefix : undefined],
      ]),
    );
  }

  async function createBucket(req: IncomingMessage, res: ServerResponse, bucket: string): Promise<void> {
    await readSmallBody(req, state.tmpPath()); // CreateBucketConfiguration (region): accepted, not needed
    if (!validBucketName(bucket)) throw new S3Error('InvalidBucketName', 400, 'The specified bucket is not valid.', bucket);
    checkAcl(req);
    // Re-creating one's own bucket: 200 in us-east-1, BucketAlreadyOwnedByYou elsewhere (as S3).
    if (state.hasBucket(bucket) && cfg.region === 'us-east-1') {
      res.writeHead(200, { location: `/${bucket}` }).end();
      return;
    }
    await state.createBucket(bucket);
    res.writeHead(200, { location: `/${bucket}` }).end();
  }

  async function putObject(req: IncomingMessage, res: ServerResponse, bucket: string, key: string): Promise<void> {
    if (key.length > 1024) throw new S3Error('KeyTooLongError', 400, 'Your key is too long', key);
    checkAcl(req);
    const ifNoneMatch = hdr(req, 'if-none-match');
    const ifMatch = hdr(req, 'if-match');
    // Fail early (before the body is sent) when a condition already fails; checked again at commit.
    if (ifMatch !== undefined) state.checkIfMatch(bucket, key, ifMatch);
    if (ifNoneMatch !== undefined) state.checkIfNoneMatch(bucket, key, ifNoneMatch);
    const input = objectInput(req);
    const body = await receiveBody(req, state.tmpPath());
    const rec = await state.putObject(bucket, key, body, input, { ifNoneMatch, ifMatch });
    const h: Record<string, string> = { etag: rec.etag };
    if (rec.checksum) {
      h[headerName(rec.checksum.algorithm)] = rec.checksum.value;
      h['x-amz-checksum-type'] = rec.checksum.type;
    }
    res.writeHead(200, h).end();
  }

  async function copyObject(req: IncomingMessage, res: ServerResponse, bucket: string, key: string): Promise<void> {
    const { bucket: srcBucket, key: srcKey } = parseCopySource(hdr(req, 'x-amz-copy-source')!);
    if (!state.hasBucket(srcBucket)) throw new S3Error('NoSuchBucket', 404, 'The specified bucket does not exist', srcBucket);
    checkAcl(req);
    req.resume();
    const replace = (hdr(req, 'x-amz-metadata-directive') ?? 'COPY').toUpperCase() === 'REPLACE';
    if (srcBucket === bucket && srcKey === key && !replace) {
      throw new S3Error(
        'InvalidRequest',
        400,
        "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes.",
      );
    }
    checkCopyConditions(req, state.getObject(srcBucket, srcKey));
    const { rec: from, tmpPath } = await state.copyToTmp(srcBucket, srcKey);
    try {
      checkCopyConditions(req, from); // the bytes copied are those of this record
    } catch (e) {
      await rm(tmpPath, { force: true });
      throw e;
    }
    const input: ObjectInput = replace
      ? objectInput(req)
      : { contentType: from.contentType, headers: from.headers, metadata: from.metadata };
    const wantAlg = parseAlgorithm(hdr(req, 'x-amz-checksum-algorithm'), 'x-amz-checksum-algorithm');
    let checksum: StoredChecksum | undefined = from.checksum?.type === 'FULL_OBJECT' ? from.checksum : undefined;
    const alg = wantAlg ?? from.checksum?.algorithm;
    if (alg && checksum?.algorithm !== alg) {
      const h = newHasher(alg);
      for await (const b of createReadStream(tmpPath)) h.update(b as Buffer);
      checksum = { algorithm: alg, value: (await h.digest()).toString('base64'), type: 'FULL_OBJECT' };
    }
    // A copied single-part object keeps its MD5 ETag; a multipart source's ETag is not an MD5, so recompute.
    let md5 = from.parts ? undefined : Buffer.from(from.etag.replace(/"/g, ''), 'hex');
    if (!md5) {
      const h = createHash('md5');
      for await (const b of createReadStream(tmpPath)) h.update(b as Buffer);
      md5 = h.digest();
    }
    const rec = await state.putObject(bucket, key, { tmpPath, size: from.size, md5, checksum }, input, {
      ifMatch: hdr(req, 'if-match'),
      ifNoneMatch: hdr(req, 'if-none-match'),
    });
    sendXml(res, 200, document('CopyObjectResult', [['LastModified', rec.lastModified], ['ETag', rec.etag], ...checksumXml(rec.checksum)]));
  }

  async function getObject(req: IncomingMessage, res: ServerResponse, q: Q, bucket: string, key: string, head: boolean): Promise<void> {
    // Open the data first: a concurrent PUT may replace (and unlink) the file named by the record.
    let rec: ObjectRecord | undefined;
    let fh: Awaited<ReturnType<typeof open>> | undefined;
    for (let attempt = 0; !fh; attempt++) {
      rec = state.getObject(bucket, key);
      try {
        fh = await open(state.dataPath(bucket, rec), 'r');
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT' || attempt >= 3) throw e;
      }
    }
    const r = rec!;
    try {
      const etagBare = r.etag.replace(/"/g, '');
      const ifMatch = hdr(req, 'if-match');
      const ifNoneMatch = hdr(req, 'if-none-match');
      const ifModSince = hdr(req, 'if-modified-since');
      const ifUnmodSince = hdr(req, 'if-unmodified-since');
      const tags = (v: string) => v.split(',').map((t) => t.trim().replace(/^W\//, '').replace(/"/g, ''));
      const modified = Math.floor(Date.parse(r.lastModified) / 1000) * 1000;
      if (ifMatch !== undefined && !tags(ifMatch).some((t) => t === '*' || t === etagBare)) {
        throw new S3Error('PreconditionFailed', 412, 'At least one of the pre-conditions you specified did not hold', 'If-Match');
      }
      if (ifMatch === undefined && ifUnmodSince !== undefined && modified > Date.parse(ifUnmodSince)) {
        throw new S3Error(
          'PreconditionFailed',
          412,
          'At least one of the pre-conditions you specified did not hold',
          'If-Unmodified-Since',
        );
      }
      const notModified =
        (ifNoneMatch !== undefined && tags(ifNoneMatch).some((t) => t === '*' || t === etagBare)) ||
        (ifNoneMatch === undefined && ifModSince !== undefined && modified <= Date.parse(ifModSince));
      const headers: Record<string, string | number> = {
        etag: r.etag,
        'last-modified': httpDate(r.lastModified),
        'accept-ranges': 'bytes',
        'content-type': q.get('response-content-type') ?? r.contentType,
      };
      for (const [k, v] of Object.entries(r.headers)) headers[k] = v;
      for (const [qk, hk] of [
        ['response-content-disposition', 'content-disposition'],
        ['response-content-encoding', 'content-encoding'],
        ['response-content-language', 'content-language'],
        ['response-cache-control', 'cache-control'],
        ['response-expires', 'expires'],
      ] as const) {
        const v = q.get(qk);
        if (v !== null) headers[hk] = v;
      }
      for (const [k, v] of Object.entries(r.metadata)) headers[`x-amz-meta-${k}`] = v;
      if (r.parts) headers['x-amz-mp-parts-count'] = r.parts;
      if (notModified) {
        res.writeHead(304, { etag: r.etag, 'last-modified': httpDate(r.lastModified) }).end();
        return;
      }
      let start = 0;
      let end = r.size - 1;
      let status = 200;
      const range = hdr(req, 'range');
      const m = range ? /^bytes=(\d*)-(\d*)$/.exec(range.trim()) : null;
      const pn = q.get('partNumber');
      if (pn !== null) {
        // GET/HEAD ?partNumber=N: the bytes of part N of a multipart object (1 = all of a plain one).
        if (!/^\d+$/.test(pn) || Number(pn) < 1 || Number(pn) > 10000)
          throw invalidArgument('Part number must be an integer between 1 and 10000, inclusive', 'partNumber');
        if (range !== undefined)
          throw new S3Error('InvalidRequest', 400, 'Cannot specify both Range header and partNumber query parameter');
        const n = Number(pn);
        const notSatisfiable = () => new S3Error('InvalidPart', 400, 'The requested partnumber is not satisfiable', pn);
        if (!r.parts) {
          if (n !== 1) throw notSatisfiable();
        } else {
          if (!r.partList)
            throw new S3Error(
              'InvalidRequest',
              400,
              'This object was stored before the store recorded part boundaries; GET ?partNumber is not available for it',
            );
          if (n > r.partList.length) throw notSatisfiable();
          start = r.partList.slice(0, n - 1).reduce((a, p) => a + p.size, 0);
          end = start + r.partList[n - 1]!.size - 1;
          status = 206;
          headers['content-range'] = `bytes ${start}-${end}/${r.size}`;
          const c = r.partList[n - 1]!.checksum;
          if (c && r.checksum) {
            headers[headerName(r.checksum.algorithm)] = c;
            headers['x-amz-checksum-type'] = r.checksum.type;
          }
        }
      } else if (m && (m[1] !== '' || m[2] !== '')) {
        if (m[1] === '') {
          start = Math.max(0, r.size - Number(m[2]));
        } else {
          start = Number(m[1]);
          if (m[2] !== '') end = Math.min(end, Number(m[2]));
        }
        if (start >= r.size || start > end) {
          res.setHeader('content-range', `bytes */${r.size}`);
          throw new S3Error('InvalidRange', 416, 'The requested range is not satisfiable', range);
        }
        status = 206;
        headers['content-range'] = `bytes ${start}-${end}/${r.size}`;
      } else if (r.checksum && (hdr(req, 'x-amz-checksum-mode') ?? '').toUpperCase() === 'ENABLED') {
        // Whole-object reads only: a range has no stored checksum (S3 behaves the same).
        headers[headerName(r.checksum.algorithm)] = r.checksum.value;
        headers['x-amz-checksum-type'] = r.checksum.type;
      }
      headers['content-length'] = r.size === 0 ? 0 : Math.max(0, end - start + 1);
      res.writeHead(status, headers);
      if (head || r.size === 0 || end < start) {
        res.end();
        return;
      }
      const stream = createReadStream('', { fd: fh.fd, start, end, autoClose: false } as never);
      await new Promise<void>((resolve, reject) => {
        stream.on('error', reject);
        res.on('close', resolve);
        stream.pipe(res);
      });
    } finally {
      await fh!.close();
    }
  }

  async function listObjects(res: ServerResponse, q: Q, bucket: string, version: 1 | 2): Promise<void> {
    const { prefix, delimiter, max, encodingType, enc } = listParams(q);
    const token = q.get('continuation-token');
    const startAfter = q.get('start-after') ?? undefined;
    const marker = version === 1 ? (q.get('marker') ?? undefined) : token !== null ? fromToken(token) : startAfter;
    const r = listSorted(state.sortedKeys(bucket), { prefix, delimiter, after: marker, max });
    const contents = r.keys.map((k) => {
      const o = state.getObject(bucket, k);
      const c: [string, XmlValue][] = [
        ['Key', enc(k)],
        ['LastModified', o.lastModified],
        ['ETag', o.etag],
      ];
      if (o.checksum) c.push(['ChecksumAlgorithm', o.checksum.algorithm], ['ChecksumType', o.checksum.type]);
      c.push(['Size', o.size], ['StorageClass', 'STANDARD']);
      if (version === 1 || q.get('fetch-owner') === 'true') c.push(['Owner', OWNER]);
      return ['Contents', c] as [string, XmlValue];
    });
    const prefixes = r.prefixes.map((p) => ['CommonPrefixes', { Prefix: enc(p) }] as [string, XmlValue]);
    const head: [string, XmlValue][] =
      version === 2
        ? [
            ['Name', bucket],
            ['Prefix', enc(prefix)],
            ['Delimiter', delimiter && enc(delimiter)],
            ['MaxKeys', max],
            ['EncodingType', encodingType ?? undefined],
            ['KeyCount', r.keys.length + r.prefixes.length],
            ['IsTruncated', r.truncated],
            ['ContinuationToken', token ?? undefined],
            ['NextContinuationToken', r.truncated && r.last !== undefined ? listToken(r.last) : undefined],
            ['StartAfter', startAfter && enc(startAfter)],
          ]
        : [
            // ListObjects (v1) echoes Prefix as given even with encoding-type=url (S3 and
            // botocore agree: only Delimiter, Marker, NextMarker, keys and prefixes are encoded).
            ['Name', bucket],
            ['Prefix', prefix],
            ['Marker', enc(marker ?? '')],
            ['Delimiter', delimiter && enc(delimiter)],
            ['MaxKeys', max],
            ['EncodingType', encodingType ?? undefined],
            ['IsTruncated', r.truncated],
            ['NextMarker', r.truncated && r.last !== undefined ? enc(r.last) : undefined],
          ];
    sendXml(res, 200, document('ListBucketResult', [...head, ...contents, ...prefixes]));
  }

  async function deleteObjects(req: IncomingMessage, res: ServerResponse, bucket: string): Promise<void> {
    const body = parseXml(await readSmallBody(req, state.tmpPath()));
    const del = body.Delete as { Object?: { Key?: unknown }[]; Quiet?: unknown } | undefined;
    const malformed = (why: string) =>
      new S3Error('MalformedXML', 400, `The XML you provided was not well-formed or did not validate against our published schema: ${why}`);
    if (!del || typeof del !== 'object' || !Array.isArray(del.Object)) throw malformed('expected <Delete><Object><Key>');
    if (del.Object.length > 1000) throw malformed('a delete request may name at most 1000 objects');
    // Keys are taken exactly as written (spaces and newlines are part of a key); a <Key> that is
    // not plain text is refused as a whole before anything is deleted.
    const names = del.Object.map((o) => {
      const k = o && typeof o === 'object' ? o.Key : undefined;
      if (k !== undefined && typeof k !== 'string') throw malformed('<Key> must hold text only');
      return k ?? '';
    });
    if (del.Quiet !== undefined && typeof del.Quiet !== 'string') throw malformed('<Quiet> must be true or false');
    const quiet = String(del.Quiet ?? '').trim() === 'true';
    const out: [string, XmlValue][] = [];
    for (const k of names) {
      if (k === '') {
        out.push(['Error', { Key: k, Code: 'InvalidArgument', Message: 'Key is empty' }]);
        continue;
      }
      await state.deleteObject(bucket, k);
      if (!quiet) out.push(['Deleted', { Key: k }]);
    }
    sendXml(res, 200, document('DeleteResult', out));
  }

  async function createUpload(req: IncomingMessage, res: ServerResponse, bucket: string, key: string): Promise<void> {
    req.resume();
    const alg = parseAlgorithm(hdr(req, 'x-amz-checksum-algorithm'), 'x-amz-checksum-algorithm');
    const typeH = hdr(req, 'x-amz-checksum-type')?.toUpperCase();
    if (typeH !== undefined && typeH !== 'FULL_OBJECT' && typeH !== 'COMPOSITE')
      throw invalidArgument(`Value for x-amz-checksum-type header is invalid: ${typeH}`, 'x-amz-checksum-type');
    const up = await state.createUpload(bucket, key, objectInput(req), alg, typeH as 'FULL_OBJECT' | 'COMPOSITE' | undefined);
    const h: Record<string, string> = {};
    if (alg) {
      h['x-amz-checksum-algorithm'] = alg;
      h['x-amz-checksum-type'] = up.checksumType!;
    }
    res.writeHead(200, { ...h, 'content-type': 'application/xml' });
    res.end(
      document('InitiateMultipartUploadResult', [
        ['Bucket', bucket],
        ['Key', key],
        ['UploadId', up.uploadId],
      ]),
    );
  }

  async function uploadPart(req: IncomingMessage, res: ServerResponse, q: Q, bucket: string, key: string): Promise<void> {
    const up = await state.getUpload(bucket, key, q.get('uploadId')!);
    const pn = q.get('partNumber') ?? '';
    if (!/^\d+$/.test(pn) || Number(pn) < 1 || Number(pn) > 10000)
      throw invalidArgument('Part number must be an integer between 1 and 10000, inclusive', 'partNumber');
    const stated = checksumFromHeaders(req.headers);
    if (up.checksumAlgorithm && stated && stated.algorithm !== up.checksumAlgorithm) {
      throw invalidArgument(
        `Checksum Type mismatch occurred, expected checksum Type: ${up.checksumAlgorithm.toLowerCase()}, actual checksum Type: ${stated.algorithm.toLowerCase()}`,
        headerName(stated.algorithm),
      );
    }
    const body = await receiveBody(req, state.tmpPath(), { computeAlgorithm: up.checksumAlgorithm });
    const part = await state.putPart(up, Number(pn), body);
    const h: Record<string, string> = { etag: part.etag };
    if (part.checksum) h[headerName(part.checksum.algorithm)] = part.checksum.value;
    res.writeHead(200, h).end();
  }

  async function completeUpload(req: IncomingMessage, res: ServerResponse, q: Q, bucket: string, key: string): Promise<void> {
    const id = q.get('uploadId')!;
    const result = (r: { etag: string; checksum?: StoredChecksum }) =>
      sendXml(
        res,
        200,
        document('CompleteMultipartUploadResult', [
          ['Location', `/${bucket}/${encodeURIComponent(key)}`],
          ['Bucket', bucket],
          ['Key', key],
          ['ETag', r.etag],
          ...checksumXml(r.checksum),
        ]),
      );
    // A retry of a Complete that already succeeded (its answer was lost) gets the same answer.
    const prior = await state.completedUpload(bucket, key, id);
    if (prior) {
      await readSmallBody(req, state.tmpPath(), { headerChecksums: false });
      return result(prior);
    }
    const up = await state.getUpload(bucket, key, id);
    // x-amz-checksum-<alg> on Complete states the object's checksum, not the XML body's.
    const body = parseXml(await readSmallBody(req, state.tmpPath(), { headerChecksums: false }));
    const cmu = body.CompleteMultipartUpload as { Part?: Record<string, unknown>[] } | undefined;
    const malformed = (why: string) =>
      new S3Error('MalformedXML', 400, `The XML you provided was not well-formed or did not validate against our published schema: ${why}`);
    if (!cmu || typeof cmu !== 'object' || !Array.isArray(cmu.Part)) throw malformed('expected <CompleteMultipartUpload><Part>');
    const text = (v: unknown, what: string): string | undefined => {
      if (v === undefined) return undefined;
      if (typeof v !== 'string') throw malformed(`<${what}> must hold text only`);
      return v.trim();
    };
    const chosen = cmu.Part.map((p) => {
      const pn = text(p?.PartNumber, 'PartNumber') ?? '';
      if (!/^\d+$/.test(pn)) throw malformed(`invalid PartNumber ${JSON.stringify(pn)}`);
      return {
        partNumber: Number(pn),
        etag: text(p.ETag, 'ETag') ?? '',
        checksum: up.checksumAlgorithm ? text(p[xmlName(up.checksumAlgorithm)], xmlName(up.checksumAlgorithm)) : undefined,
      };
    });
    const stated = checksumFromHeaders(req.headers);
    const rec = await state.completeUpload(up, chosen, cfg.minPartSize, stated, {
      ifMatch: hdr(req, 'if-match'),
      ifNoneMatch: hdr(req, 'if-none-match'),
    });
    result(rec);
  }

  async function listParts(res: ServerResponse, q: Q, bucket: string, key: string): Promise<void> {
    const up = await state.getUpload(bucket, key, q.get('uploadId')!);
    const max = maxKeys(q, 'max-parts');
    const marker = Number(q.get('part-number-marker') ?? 0);
    const all = (await state.listParts(up)).filter((p) => p.partNumber > marker);
    const parts = all.slice(0, max);
    const truncated = all.length > parts.length;
    sendXml(
      res,
      200,
      document('ListPartsResult', [
        ['Bucket', bucket],
        ['Key', key],
        ['UploadId', up.uploadId],
        ['PartNumberMarker', marker],
        ['NextPartNumberMarker', parts.length ? parts[parts.length - 1]!.partNumber : marker],
        ['MaxParts', max],
        ['IsTruncated', truncated],
        ['ChecksumAlgorithm', up.checksumAlgorithm],
        ...parts.map(
          (p) =>
            [
              'Part',
              [
                ['PartNumber', p.partNumber],
                ['LastModified', p.lastModified],
                ['ETag', p.etag],
                ['Size', p.size],
                ...(p.checksum ? [[xmlName(p.checksum.algorithm), p.checksum.value] as [string, XmlValue]] : []),
              ],
            ] as [string, XmlValue],
        ),
      ]),
    );
  }

  /** The store keeps one version per key: ListObjectVersions lists each object as its "null" version. */
  async function listVersions(res: ServerResponse, q: Q, bucket: string): Promise<void> {
    const { prefix, delimiter, max, encodingType, enc } = listParams(q);
    const keyMarker = q.get('key-marker') ?? undefined;
    const r = listSorted(state.sortedKeys(bucket), { prefix, delimiter, after: keyMarker, max });
    const versions = r.keys.map((k) => {
      const o = state.getObject(bucket, k);
      return [
        'Version',
        [
          ['Key', enc(k)],
          ['VersionId', 'null'],
          ['IsLatest', true],
          ['LastModified', o.lastModified],
          ['ETag', o.etag],
          ['Size', o.size],
          ['StorageClass', 'STANDARD'],
          ['Owner', OWNER],
        ],
      ] as [string, XmlValue];
    });
    sendXml(
      res,
      200,
      document('ListVersionsResult', [
        ['Name', bucket],
        ['Prefix', enc(prefix)],
        ['KeyMarker', enc(keyMarker ?? '')],
        ['VersionIdMarker', q.get('version-id-marker') ?? ''],
        ['MaxKeys', max],
        ['Delimiter', delimiter && enc(delimiter)],
        ['EncodingType', encodingType ?? undefined],
        ['IsTruncated', r.truncated],
        ['NextKeyMarker', r.truncated && r.last !== undefined ? enc(r.last) : undefined],
        ['NextVersionIdMarker', r.truncated ? 'null' : undefined],
        ...versions,
        ...r.prefixes.map((p) => ['CommonPrefixes', { Prefix: enc(p) }] as [string, XmlValue]),
      ]),
    );
  }

  /** ACLs are off (see checkAcl): every resource is the owner's alone, FULL_CONTROL. */
  function sendAcl(res: ServerResponse): void {
    sendXml(
      res,
      200,
      document('AccessControlPolicy', [
        ['Owner', OWNER],
        [
          'AccessControlList',
          [
            [
              'Grant',
              [
                ['Grantee', { ID: OWNER.ID, DisplayName: OWNER.DisplayName }],
                ['Permission', 'FULL_CONTROL'],
              ],
            ],
          ],
        ],
      ]).replace('<Grantee>', '<Grantee xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="CanonicalUser">'),
    );
  }

  async function putAcl(req: IncomingMessage, res: ServerResponse, bucket: string): Promise<void> {
    if (!state.hasBucket(bucket)) throw new S3Error('NoSuchBucket', 404, 'The specified bucket does not exist', bucket);
    checkAcl(req);
    const body = await readSmallBody(req, state.tmpPath());
    if (body.trim() !== '')
      throw new S3Error(
        'AccessControlListNotSupported',
        400,
        'The bucket does not allow ACLs (the loupe object store has one owner; only the private canned ACL applies)',
      );
    res.writeHead(200).end();
  }

  /** GetObjectAttributes: ETag, Checksum, ObjectParts, StorageClass, ObjectSize, as asked. */
  async function objectAttributes(req: IncomingMessage, res: ServerResponse, bucket: string, key: string): Promise<void> {
    const r = state.getObject(bucket, key);
    const want = new Set(
      (hdr(req, 'x-amz-object-attributes') ?? '')
        .split(',')
        .map((a) => a.trim())
        .filter(Boolean),
    );
    if (want.size === 0) throw invalidArgument('x-amz-object-attributes must name at least one attribute', 'x-amz-object-attributes');
    const out: [string, XmlValue][] = [];
    if (want.has('ETag')) out.push(['ETag', bareEtag(r.etag)]);
    if (want.has('Checksum') && r.checksum)
      out.push([
        'Checksum',
        [
          [xmlName(r.checksum.algorithm), r.checksum.value],
          ['ChecksumType', r.checksum.type],
        ],
      ]);
    if (want.has('ObjectParts') && r.parts) out.push(['ObjectParts', [['TotalPartsCount', r.parts]]]);
    if (want.has('StorageClass')) out.push(['StorageClass', 'STANDARD']);
    if (want.has('ObjectSize')) out.push(['ObjectSize', r.size]);
    res.setHeader('last-modified', httpDate(r.lastModified));
    sendXml(res, 200, document('GetObjectAttributesResponse', out));
  }

  /** UploadPartCopy: a part made of (a byte range of) an existing object, streamed. */
  async function uploadPartCopy(req: IncomingMessage, res: ServerResponse, q: Q, bucket: string, key: string): Promise<void> {
    const up = await state.getUpload(bucket, key, q.get('uploadId')!);
    const pn = q.get('partNumber') ?? '';
    if (!/^\d+$/.test(pn) || Number(pn) < 1 || Number(pn) > 10000)
      throw invalidArgument('Part number must be an integer between 1 and 10000, inclusive', 'partNumber');
    const src = parseCopySource(hdr(req, 'x-amz-copy-source')!);
    if (!state.hasBucket(src.bucket)) throw new S3Error('NoSuchBucket', 404, 'The specified bucket does not exist', src.bucket);
    req.resume();
    const rangeH = hdr(req, 'x-amz-copy-source-range');
    let m: RegExpExecArray | null = null;
    if (rangeH !== undefined) {
      m = /^bytes=(\d+)-(\d+)$/.exec(rangeH.trim());
      if (!m)
        throw invalidArgument(
          'The x-amz-copy-source-range value must be of the form bytes=first-last where first and last are the zero-based offsets of the first and last bytes to copy',
          'x-amz-copy-source-range',
        );
    }
    const { body } = await state.copyRangeToTmp(
      src.bucket,
      src.key,
      (rec) => {
        checkCopyConditions(req, rec);
        if (!m) return { start: 0, end: rec.size - 1 };
        const start = Number(m[1]);
        const end = Number(m[2]);
        if (start > end || end >= rec.size)
          throw new S3Error('InvalidRange', 416, `Range specified is not valid for source object of size: ${rec.size}`, rangeH);
        return { start, end };
      },
      up.checksumAlgorithm,
    );
    const part = await state.putPart(up, Number(pn), body);
    const h: Record<string, string> = {};
    if (part.checksum) h[headerName(part.checksum.algorithm)] = part.checksum.value;
    res.setHeader('x-amz-copy-source-version-id', 'null');
    for (const [k, v] of Object.entries(h)) res.setHeader(k, v);
    sendXml(
      res,
      200,
      document('CopyPartResult', [
        ['LastModified', part.lastModified],
        ['ETag', part.etag],
        ...(part.checksum ? [[xmlName(part.checksum.algorithm), part.checksum.value] as [string, XmlValue]] : []),
      ]),
    );
  }

  async function listUploads(res: ServerResponse, q: Q, bucket: string): Promise<void> {
    const prefix = q.get('prefix') ?? '';
    const ups = (await state.listUploads(bucket)).filter((u) => u.key.startsWith(prefix));
    const max = maxKeys(q, 'max-uploads');
    const shown = ups.slice(0, max);
    sendXml(
      res,
      200,
      document('ListMultipartUploadsResult', [
        ['Bucket', bucket],
        ['Prefix', prefix],
        ['MaxUploads', max],
        ['IsTruncated', ups.length > shown.length],
        ...shown.map(
          (u) =>
            [
              'Upload',
              {
                Key: u.key,
                UploadId: u.uploadId,
                Initiated: u.initiated,
                StorageClass: 'STANDARD',
                ChecksumAlgorithm: u.checksumAlgorithm,
              },
            ] as [string, XmlValue],
        ),
      ]),
    );
  }
}

function notImplemented(what: string): S3Error {
  return new S3Error(
    'NotImplemented',
    501,
    `A header or query you provided implies functionality that is not implemented by the loupe object store: ${what}`,
  );
}
