import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { open, readFile, rm } from 'node:fs/promises';
import type { IncomingMessage } from 'node:http';
import { Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { AwsChunkedDecoder } from './chunked.js';
import { checksumFromHeaders, headerName, newHasher, parseAlgorithm, type ChecksumAlgorithm, type StoredChecksum } from './checksums.js';
import { badDigest, S3Error } from './errors.js';
import type { Authorized } from './sigv4.js';
import type { ReceivedBody } from './store.js';

/** S3's single-PUT limit. */
const MAX_OBJECT = 5 * 1024 ** 3;

const h1 = (req: IncomingMessage, name: string): string | undefined => {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
};

/**
 * Whether the body is framed with aws-chunked (streamed SDK uploads, signed chunk uploads): the
 * payload hash says STREAMING-..., or Content-Encoding says aws-chunked together with the
 * decoded length. `Content-Encoding: gzip, aws-chunked` on a plain body (a client passing the
 * header through) is not framing; aws-chunked is dropped from the stored encoding either way.
 */
export function isAwsChunked(req: IncomingMessage): boolean {
  const sha = h1(req, 'x-amz-content-sha256') ?? '';
  const enc = (h1(req, 'content-encoding') ?? '').toLowerCase();
  if (sha.startsWith('STREAMING-')) return true;
  return /^[0-9a-f]{64}$/i.test(sha)
    ? false
    : enc.split(',').some((e) => e.trim() === 'aws-chunked') && h1(req, 'x-amz-decoded-content-length') !== undefined;
}

/** The verified signature of each request, for the chunk signatures of its body (set by the server). */
export const requestAuth = new WeakMap<IncomingMessage, Authorized>();

/** A body refused for its size: the connection is closed rather than the rest read. */
export function isOversize(e: unknown): boolean {
  return e instanceof S3Error && (e.code === 'MaxMessageLengthExceeded' || e.code === 'EntityTooLarge');
}

export interface ReceiveOptions {
  /** the checksum to compute when the request states none (UploadPart of a checksummed upload) */
  computeAlgorithm?: ChecksumAlgorithm;
  /** most decoded bytes accepted; default S3's single-PUT limit (5 GiB) */
  limit?: number;
  /** error code past the limit (MaxMessageLengthExceeded for XML requests) */
  limitCode?: 'EntityTooLarge' | 'MaxMessageLengthExceeded';
  /** false: x-amz-checksum-* headers describe something else (CompleteMultipartUpload: the object) */
  headerChecksums?: boolean;
}

/** Counts bytes as they pass and fails the stream past `max`, before they are buffered anywhere. */
function counter(max: number, fail: () => S3Error): Transform {
  let n = 0;
  return new Transform({
    transform(chunk: Buffer, _e, cb: TransformCallback) {
      n += chunk.length;
      if (n > max) return cb(fail());
      cb(null, chunk);
    },
  });
}

/**
 * Receive a request body into a temp file, decoding aws-chunked framing, and verify everything
 * the request states about it: decoded length, Content-MD5, a hex x-amz-content-sha256, chunk
 * signatures, and the flexible checksum from a header or a trailer. Bytes are counted as they
 * arrive, whatever the framing (Content-Length, HTTP chunked, aws-chunked), so a body past its
 * limit is refused after at most `limit` bytes. The file is fsynced before returning; on any
 * failure it is removed.
 */
export async function receiveBody(req: IncomingMessage, tmpPath: string, opts: ReceiveOptions = {}): Promise<ReceivedBody> {
  const chunked = isAwsChunked(req);
  const declared = opts.headerChecksums === false ? undefined : checksumFromHeaders(req.headers);
  const trailerName = (h1(req, 'x-amz-trailer') ?? '').trim().toLowerCase() || undefined;
  const trailerAlg = trailerName?.startsWith('x-amz-checksum-')
    ? parseAlgorithm(trailerName.slice('x-amz-checksum-'.length), 'x-amz-trailer')
    : undefined;
  const sdkAlg = parseAlgorithm(
    h1(req, 'x-amz-sdk-checksum-algorithm') ?? h1(req, 'x-amz-checksum-algorithm'),
    'x-amz-sdk-checksum-algorithm',
  );
  const alg = declared?.algorithm ?? trailerAlg ?? sdkAlg ?? opts.computeAlgorithm;
  const contentSha = h1(req, 'x-amz-content-sha256');
  const wantSha = contentSha && /^[0-9a-f]{64}$/i.test(contentSha) ? contentSha.toLowerCase() : undefined;
  const limit = opts.limit ?? MAX_OBJECT;
  const tooBig = () =>
    opts.limitCode === 'MaxMessageLengthExceeded'
      ? new S3Error('MaxMessageLengthExceeded', 400, `Your request was too big (more than ${limit} bytes).`)
      : new S3Error('EntityTooLarge', 400, 'Your proposed upload exceeds the maximum allowed size');

  const md5 = createHash('md5');
  const sha = wantSha ? createHash('sha256') : undefined;
  const hasher = alg ? newHasher(alg) : undefined;
  let size = 0;
  const tap = counter(limit, tooBig);
  const hashes = new Transform({
    transform(chunk: Buffer, _e, cb: TransformCallback) {
      size += chunk.length;
      md5.update(chunk);
      sha?.update(chunk);
      hasher?.update(chunk);
      cb(null, chunk);
    },
  });
  const auth = requestAuth.get(req);
  const signedChunks =
    auth && contentSha?.startsWith('STREAMING-AWS4-HMAC-SHA256-PAYLOAD') ? { auth, trailer: contentSha.endsWith('-TRAILER') } : undefined;
  const decoder = chunked ? new AwsChunkedDecoder(signedChunks) : undefined;
  // Framing may add to the wire bytes (chunk headers), never without bound.
  const wire = counter(chunked ? 2 * limit + 1024 * 1024 : limit, tooBig);
  // The request is piped in, not part of the pipeline: a refused body must not destroy the
  // socket before the error response is written.
  const onClose = () => {
    if (!req.complete) wire.destroy(Object.assign(new Error('aborted'), { code: 'ECONNRESET' }));
  };
  req.once('close', onClose);
  try {
    const stages = decoder ? [wire, decoder, tap, hashes] : [wire, tap, hashes];
    const done = pipeline([...stages, createWriteStream(tmpPath)] as unknown as [NodeJS.ReadableStream, NodeJS.WritableStream]);
    req.pipe(wire);
    try {
      await done;
    } finally {
      req.unpipe(wire);
      req.off('close', onClose);
    }
    const fh = await open(tmpPath, 'r+');
    await fh.sync();
    await fh.close();

    if (chunked) {
      const decodedLen = h1(req, 'x-amz-decoded-content-length');
      if (decodedLen !== undefined && Number(decodedLen) !== size) {
        throw new S3Error(
          'IncompleteBody',
          400,
          `You did not provide the number of bytes specified by x-amz-decoded-content-length (${decodedLen}, got ${size})`,
        );
      }
    }
    const md5Digest = md5.digest();
    const contentMd5 = h1(req, 'content-md5');
    if (contentMd5 !== undefined && contentMd5 !== md5Digest.toString('base64')) {
      throw badDigest('The Content-MD5 you specified did not match what we received.');
    }
    if (sha && wantSha !== sha.digest('hex')) {
      throw new S3Error('XAmzContentSHA256Mismatch', 400, "The provided 'x-amz-content-sha256' header does not match what was computed.");
    }
    let checksum: StoredChecksum | undefined;
    if (alg && hasher) {
      const value = (await hasher.digest()).toString('base64');
      let stated = declared?.value;
      if (!stated && trailerAlg) {
        stated = decoder?.trailers[headerName(trailerAlg)];
        if (!stated)
          throw new S3Error('InvalidRequest', 400, `The request declared trailer ${trailerName} but the body carried no such trailer`);
      }
      if (stated !== undefined && stated !== value) {
        throw badDigest(`The ${alg} you specified did not match the calculated checksum.`);
      }
      checksum = { algorithm: alg, value, type: 'FULL_OBJECT' };
    }
    return { tmpPath, size, md5: md5Digest, checksum };
  } catch (e) {
    await rm(tmpPath, { force: true });
    if (e instanceof S3Error) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ERR_STREAM_PREMATURE_CLOSE' || code === 'ECONNRESET' || (e as Error).message === 'aborted') {
      throw new S3Error('IncompleteBody', 400, 'You did not provide the number of bytes specified by the Content-Length HTTP header');
    }
    throw e;
  }
}

/** A small body (XML requests) as text, aws-chunked decoded, with its stated checksums verified. */
export async function readSmallBody(
  req: IncomingMessage,
  tmpPath: string,
  opts: { limit?: number; headerChecksums?: boolean } = {},
): Promise<string> {
  const limit = opts.limit ?? 2 * 1024 * 1024;
  const len = Number(h1(req, 'content-length') ?? 0);
  if (len > (isAwsChunked(req) ? 2 * limit + 1024 * 1024 : limit))
    throw new S3Error('MaxMessageLengthExceeded', 400, `Your request was too big (more than ${limit} bytes).`);
  const body = await receiveBody(req, tmpPath, { limit, limitCode: 'MaxMessageLengthExceeded', headerChecksums: opts.headerChecksums });
  try {
    return await readFile(tmpPath, 'utf8');
  } finally {
    await rm(body.tmpPath, { force: true });
  }
}
