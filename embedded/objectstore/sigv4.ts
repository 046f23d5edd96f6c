import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { S3Error } from './errors.js';

/**
 * AWS Signature Version 4 as S3 checks it, on the server side: the Authorization header form,
 * the presigned query form (X-Amz-Algorithm ... X-Amz-Signature, with its date and expiry), and
 * the signatures of aws-chunked streaming uploads (per chunk and the trailer).
 *
 * Hand-written because the npm packages for SigV4 (@smithy/signature-v4, aws4) sign outgoing
 * requests: they canonicalise a request they built, and cannot re-derive the canonical request
 * from raw wire bytes (raw path, repeated headers, unencoded query) the way a server must. The
 * crypto is node:crypto; the tests sign with the SDK's own signer, boto3 and AWS's published
 * examples, so the canonicalisation here is checked against independent implementations.
 *
 * Deliberate leniencies of a local store: any region in the credential scope is accepted (the
 * signing key is derived from it, so it still needs the secret), and the canonical path may be
 * either the path as sent or its strict re-encoding (clients differ in which characters they
 * escape; both forms are still signed with the secret).
 */
export interface Keys {
  accessKeyId: string;
  secretAccessKey: string;
}

export interface SigV4Options {
  keys: Keys;
  /** whether a Host header value (host[:port]) names this store */
  hostAllowed(host: string): boolean;
  /** ms since the epoch; tests move the clock */
  now?: () => number;
  /** told the canonical requests tried when a signature does not match (debug logs) */
  onMismatch?: (canonicalRequests: string[]) => void;
}

/** What a verified request carries on to its body (aws-chunked chunk signatures chain from it). */
export interface Authorized {
  form: 'header' | 'presigned';
  accessKeyId: string;
  amzDate: string;
  scope: string;
  signingKey: Buffer;
  signature: string;
  /** x-amz-content-sha256 as signed (UNSIGNED-PAYLOAD for presigned URLs) */
  payload: string;
}

const ALGORITHM = 'AWS4-HMAC-SHA256';
export const EMPTY_SHA256 = createHash('sha256').digest('hex');
/** S3's limits: header-signed requests within 15 minutes of the server clock; presigned URLs live at most 7 days. */
const MAX_SKEW_MS = 15 * 60 * 1000;
const MAX_EXPIRES_S = 7 * 24 * 3600;

const sha256hex = (s: string | Buffer): string => createHash('sha256').update(s).digest('hex');
const hmac = (key: Buffer | string, s: string): Buffer => createHmac('sha256', key).update(s, 'utf8').digest();

function signingKey(secret: string, date: string, region: string, service: string): Buffer {
  return hmac(hmac(hmac(hmac(`AWS4${secret}`, date), region), service), 'aws4_request');
}

/** RFC 3986 encoding as SigV4 wants it: everything but A-Z a-z 0-9 - _ . ~ as %XX (upper case). */
export function uriEncode(s: string, keepSlash = false): string {
  let out = '';
  for (const b of Buffer.from(s, 'utf8')) {
    const c = String.fromCharCode(b);
    if (/[A-Za-z0-9\-_.~]/.test(c) || (keepSlash && c === '/')) out += c;
    else out += `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

function decodeLoose(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

function canonicalQuery(rawQuery: string, drop?: string): string {
  const pairs: [string, string][] = [];
  for (const part of rawQuery.split('&')) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    const k = decodeLoose(eq === -1 ? part : part.slice(0, eq));
    if (k === drop) continue;
    const v = eq === -1 ? '' : decodeLoose(part.slice(eq + 1));
    pairs.push([uriEncode(k), uriEncode(v)]);
  }
  pairs.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0));
  return pairs.map(([k, v]) => `${k}=${v}`).join('&');
}

/**
 * Signed headers as the client hashed them. Node hands header values over as latin1 strings of
 * the wire bytes; clients hash the bytes they sent (botocore sends and signs UTF-8), so the
 * values are turned back into those bytes and read as UTF-8 before hashing.
 */
function canonicalHeaders(req: IncomingMessage, signed: string[]): string {
  const values = new Map<string, string[]>();
  for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) {
    const name = req.rawHeaders[i]!.toLowerCase();
    const list = values.get(name) ?? [];
    const raw = req.rawHeaders[i + 1]!;
    // eslint-disable-next-line no-control-regex
    const value = /[^\x00-\x7f]/.test(raw) ? Buffer.from(raw, 'latin1').toString('utf8') : raw;
    list.push(value.trim().replace(/\s+/g, ' '));
    values.set(name, list);
  }
  return signed.map((h) => `${h}:${(values.get(h) ?? []).join(',')}\n`).join('');
}

function denied(message: string, code = 'AccessDenied', status = 403): S3Error {
  return new S3Error(code, status, message);
}

function parseAmzDate(v: string | undefined): number | undefined {
  const m = v ? /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(v) : null;
  if (!m) return undefined;
  return Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6]));
}

function toAmzDate(ms: number): string {
  return new Date(ms)
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d{3}/, '');
}

function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

interface Parsed {
  form: 'header' | 'presigned';
  credential: string;
  signedHeaders: string[];
  signature: string;
  amzDate: string;
  payload: string;
  /** canonical query without the signature (presigned) */
  query: string;
}

function parseRequest(req: IncomingMessage, rawQuery: string, now: number): Parsed | undefined {
  const auth = header(req, 'authorization');
  const q = new URLSearchParams(rawQuery);
  if (auth !== undefined) {
    if (/^AWS /.test(auth))
      throw denied('The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256.', 'InvalidRequest', 400);
    if (!auth.startsWith(`${ALGORITHM} `))
      throw denied(`Unsupported Authorization type (expected ${ALGORITHM})`, 'AuthorizationHeaderMalformed', 400);
    const fields = new Map<string, string>();
    for (const part of auth.slice(ALGORITHM.length + 1).split(',')) {
      const eq = part.indexOf('=');
      if (eq > 0) fields.set(part.slice(0, eq).trim(), part.slice(eq + 1).trim());
    }
    const credential = fields.get('Credential');
    const signed = fields.get('SignedHeaders');
    const signature = fields.get('Signature');
    if (!credential || !signed || !signature) {
      throw denied(
        'The authorization header is malformed; it needs Credential, SignedHeaders and Signature.',
        'AuthorizationHeaderMalformed',
        400,
      );
    }
    const payload = header(req, 'x-amz-content-sha256');
    if (payload === undefined) throw denied('Missing required header for this request: x-amz-content-sha256', 'InvalidRequest', 400);
    if (!/^([0-9a-fA-F]{64}|UNSIGNED-PAYLOAD|STREAMING-[A-Z0-9-]+)$/.test(payload))
      throw denied('x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-... or a SHA-256 hex digest', 'InvalidArgument', 400);
    const xDate = header(req, 'x-amz-date');
    let amzDate = xDate;
    if (amzDate === undefined) {
      const d = Date.parse(header(req, 'date') ?? '');
      if (Number.isNaN(d)) throw denied('AWS authentication requires a valid Date or x-amz-date header');
      amzDate = toAmzDate(d);
    }
    const t = parseAmzDate(amzDate);
    if (t === undefined) throw denied(`Invalid x-amz-date ${JSON.stringify(amzDate)}`, 'AccessDenied');
    if (Math.abs(now - t) > MAX_SKEW_MS) {
      throw denied('The difference between the request time and the current time is too large.', 'RequestTimeTooSkewed');
    }
    return { form: 'header', credential, signedHeaders: signed.split(';'), signature, amzDate, payload, query: canonicalQuery(rawQuery) };
  }
  if (q.has('X-Amz-Algorithm') || q.has('X-Amz-Signature') || q.has('X-Amz-Credential')) {
    if (q.get('X-Amz-Algorithm') !== ALGORITHM)
      throw denied(`X-Amz-Algorithm only supports "${ALGORITHM}"`, 'AuthorizationQueryParametersError', 400);
    const credential = q.get('X-Amz-Credential');
    const signed = q.get('X-Amz-SignedHeaders');
    const signature = q.get('X-Amz-Signature');
    const amzDate = q.get('X-Amz-Date');
    const expires = q.get('X-Amz-Expires');
    if (!credential || !signed || !signature || !amzDate || expires === null) {
      throw denied(
        'Query-string authentication version 4 requires the X-Amz-Algorithm, X-Amz-Credential, X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and X-Amz-Expires parameters.',
        'AuthorizationQueryParametersError',
        400,
      );
    }
    const t = parseAmzDate(amzDate);
    if (t === undefined) throw denied(`Invalid X-Amz-Date ${JSON.stringify(amzDate)}`, 'AuthorizationQueryParametersError', 400);
    if (!/^-?\d+$/.test(expires) || Number(expires) < 0) throw denied('X-Amz-Expires must be non-negative');
    if (Number(expires) > MAX_EXPIRES_S) throw denied('X-Amz-Expires must be less than a week (in seconds) that is; 604800');
    if (t - now > MAX_SKEW_MS) throw denied('Request is not valid yet');
    if (now >= t + Number(expires) * 1000) throw denied('Request has expired');
    return {
      form: 'presigned',
      credential,
      signedHeaders: signed.split(';'),
      signature,
      amzDate,
      payload: q.get('X-Amz-Content-Sha256') ?? 'UNSIGNED-PAYLOAD',
      query: canonicalQuery(rawQuery, 'X-Amz-Signature'),
    };
  }
  return undefined;
}

/**
 * Verify a request's SigV4 signature; throws the S3 error a client would get from S3
 * (AccessDenied, SignatureDoesNotMatch, InvalidAccessKeyId, RequestTimeTooSkewed, ...).
 */
export function verifySigV4(req: IncomingMessage, rawPath: string, rawQuery: string, opts: SigV4Options): Authorized {
  const now = (opts.now ?? Date.now)();
  const p = parseRequest(req, rawQuery, now);
  if (!p) throw denied('Access Denied: requests to the loupe object store must be signed (AWS Signature Version 4)');
  const [akid, date, region, service, terminator, ...rest] = p.credential.split('/');
  if (!akid || !date || !region || service === undefined || terminator !== 'aws4_request' || rest.length > 0) {
    throw denied(
      `The credential ${JSON.stringify(p.credential)} is malformed; expected "<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request".`,
      p.form === 'header' ? 'AuthorizationHeaderMalformed' : 'AuthorizationQueryParametersError',
      400,
    );
  }
  if (service !== 's3')
    throw denied(
      `The credential scope names service ${JSON.stringify(service)}; expected "s3".`,
      p.form === 'header' ? 'AuthorizationHeaderMalformed' : 'AuthorizationQueryParametersError',
      400,
    );
  if (date !== p.amzDate.slice(0, 8))
    throw denied(
      `Invalid credential date "${date}". This date is not the same as X-Amz-Date: "${p.amzDate.slice(0, 8)}".`,
      p.form === 'header' ? 'AuthorizationHeaderMalformed' : 'AuthorizationQueryParametersError',
      400,
    );
  if (akid !== opts.keys.accessKeyId)
    throw new S3Error('InvalidAccessKeyId', 403, 'The AWS Access Key Id you provided does not exist in our records.', akid);
  const signed = p.signedHeaders.map((h) => h.toLowerCase());
  if (!signed.includes('host'))
    throw denied(
      'The Host header must be among the signed headers',
      p.form === 'header' ? 'AuthorizationHeaderMalformed' : 'AuthorizationQueryParametersError',
      400,
    );
  const host = header(req, 'host') ?? '';
  if (!opts.hostAllowed(host)) throw denied(`The Host header ${JSON.stringify(host)} does not name this object store`);
  const scope = `${date}/${region}/${service}/aws4_request`;
  const key = signingKey(opts.keys.secretAccessKey, date, region, service);
  const headersPart = canonicalHeaders(req, signed);
  const method = req.method ?? 'GET';
  const want = Buffer.from(p.signature.toLowerCase(), 'utf8');
  const paths = [rawPath === '' ? '/' : rawPath];
  const reencoded = uriEncode(decodeLoose(rawPath), true);
  if (reencoded !== paths[0]) paths.push(reencoded);
  const tried: string[] = [];
  for (const path of paths) {
    const canonical = [method, path, p.query, headersPart, signed.join(';'), p.payload].join('\n');
    tried.push(canonical);
    const toSign = [ALGORITHM, p.amzDate, scope, sha256hex(canonical)].join('\n');
    const sig = hmac(key, toSign).toString('hex');
    const got = Buffer.from(sig, 'utf8');
    if (got.length === want.length && timingSafeEqual(got, want)) {
      return { form: p.form, accessKeyId: akid, amzDate: p.amzDate, scope, signingKey: key, signature: sig, payload: p.payload };
    }
  }
  opts.onMismatch?.(tried);
  throw new S3Error(
    'SignatureDoesNotMatch',
    403,
    'The request signature we calculated does not match the signature you provided. Check your key and signing method.',
  );
}

/** The signature of one aws-chunked chunk (STREAMING-AWS4-HMAC-SHA256-PAYLOAD[-TRAILER]). */
export function chunkSignature(a: Authorized, previous: string, chunkSha256Hex: string): string {
  return hmac(a.signingKey, ['AWS4-HMAC-SHA256-PAYLOAD', a.amzDate, a.scope, previous, EMPTY_SHA256, chunkSha256Hex].join('\n')).toString(
    'hex',
  );
}

/** The signature of the trailer block (`name:value\n` lines) that ends a signed aws-chunked body. */
export function trailerSignature(a: Authorized, previous: string, trailerBlock: string): string {
  return hmac(a.signingKey, ['AWS4-HMAC-SHA256-TRAILER', a.amzDate, a.scope, previous, sha256hex(trailerBlock)].join('\n')).toString('hex');
}

export function sameSignature(a: string, b: string): boolean {
  const x = Buffer.from(a.toLowerCase(), 'utf8');
  const y = Buffer.from(b.toLowerCase(), 'utf8');
  return x.length === y.length && timingSafeEqual(x, y);
}
