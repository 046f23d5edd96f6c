import { SignatureV4 } from '@smithy/signature-v4';
import { createHash, createHmac, type Hash, type Hmac } from 'node:crypto';
import { request } from 'node:http';
import type { Readable } from 'node:stream';

/**
 * Raw HTTP requests to the object store, signed by the AWS SDK's own SigV4 signer
 * (@smithy/signature-v4, as @aws-sdk/client-s3 configures it for S3: no double path encoding,
 * the payload hash taken from x-amz-content-sha256). Tests use it for requests the S3 client
 * will not send (oversized or malformed bodies, odd XML), so that what they exercise is the
 * request handling, not the signature check.
 */
const bytes = (d: string | ArrayBuffer | ArrayBufferView): string | Buffer =>
  typeof d === 'string' ? d : d instanceof ArrayBuffer ? Buffer.from(d) : Buffer.from(d.buffer, d.byteOffset, d.byteLength);

class Sha256 {
  private readonly h: Hash | Hmac;
  constructor(secret?: string | ArrayBuffer | ArrayBufferView) {
    this.h = secret === undefined ? createHash('sha256') : createHmac('sha256', bytes(secret));
  }
  update(d: string | ArrayBuffer | ArrayBufferView): void {
    this.h.update(bytes(d));
  }
  async digest(): Promise<Uint8Array> {
    return this.h.digest();
  }
}

export interface Keys {
  accessKeyId: string;
  secretAccessKey: string;
}

export function s3Signer(credentials: Keys, region = 'us-east-1'): SignatureV4 {
  return new SignatureV4({ credentials, region, service: 's3', sha256: Sha256, uriEscapePath: false, applyChecksum: true });
}

export interface RawResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

export interface RawRequest {
  method: string;
  /** the path exactly as sent (already percent-encoded) */
  path: string;
  query?: Record<string, string>;
  headers?: Record<string, string>;
  /** a Buffer is sent with Content-Length; a stream with Transfer-Encoding: chunked */
  body?: Buffer | Readable;
  /** sign with these keys; leave out for an unsigned request */
  keys?: Keys;
  region?: string;
  signingDate?: Date;
}

export async function rawS3(endpoint: string, r: RawRequest): Promise<RawResponse> {
  const u = new URL(endpoint);
  const headers: Record<string, string> = { host: u.host, ...r.headers };
  const body = r.body;
  if (Buffer.isBuffer(body)) {
    headers['content-length'] = String(body.length);
    headers['x-amz-content-sha256'] ??= createHash('sha256').update(body).digest('hex');
  } else if (body) {
    headers['transfer-encoding'] = 'chunked';
    headers['x-amz-content-sha256'] ??= 'UNSIGNED-PAYLOAD';
  } else {
    headers['x-amz-content-sha256'] ??= createHash('sha256').digest('hex');
  }
  let signed = { headers, query: r.query ?? {} };
  if (r.keys) {
    const s = await s3Signer(r.keys, r.region).sign(
      { method: r.method, protocol: 'http:', hostname: u.hostname, port: Number(u.port), path: r.path, query: r.query ?? {}, headers },
      { signingDate: r.signingDate },
    );
    signed = { headers: s.headers as Record<string, string>, query: (s.query ?? {}) as Record<string, string> };
  }
  const qs = Object.entries(signed.query)
    .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`)
    .join('&');
  return new Promise((resolve, reject) => {
    const req = request(
      { host: u.hostname, port: u.port, method: r.method, path: qs ? `${r.path}?${qs}` : r.path, headers: signed.headers, setHost: false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    if (Buffer.isBuffer(body)) req.end(body);
    else if (body) {
      body.on('error', reject);
      body.pipe(req);
    } else req.end();
  });
}

/** The S3 error code in an XML error body ('' when none). */
export const errorCode = (r: RawResponse): string =>
  /<Code>([^<]*)<\/Code>/.exec(r.body)?.[1] ?? String(r.headers['x-amz-error-code'] ?? '');
