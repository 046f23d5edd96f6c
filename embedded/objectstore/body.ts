import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { open, readFile, rm } from 'node:fs/promises';
import type { IncomingMessage } from 'node:http';
import { Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { AwsChunkedDecoder } from './chunked.js';
import { checksumFromHeaders, headerName, newHasher, parseAlgorithm, type ChecksumAlgorithm, type StoredChecksum } from './checksums.js';
import { badDigest, S3Error } from './errors.js';
import type { ReceivedBody } from './store.js';

/** S3's single-PUT limit. */
const MAX_OBJECT = 5 * 1024 ** 3;

const h1 = (req: IncomingMessage, name: string): string | undefined => {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
};

/** Whether the body is framed with aws-chunked (streamed SDK uploads, signed chunk uploads). */
export function isAwsChunked(req: IncomingMessage): boolean {
  const sha = h1(req, 'x-amz-content-sha256') ?? '';
  const enc = (h1(req, 'content-encoding') ?? '').toLowerCase();
  return sha.startsWith('STREAMING-') || enc.split(',').some((e) => e.trim() === 'aws-chunked');
}

/**
 * Receive a request body into a temp file, decoding aws-chunked framing, and verify everything
 * the request states about it: decoded length, Content-MD5, a hex x-amz-content-sha256, and
 * the flexible checksum from a header or a trailer. The file is fsynced before returning; on
 * any failure it is removed.
 */
export async function receiveBody(req: IncomingMessage, tmpPath: string, opts: { computeAlgorithm?: ChecksumAlgorithm } = {}): Promise<ReceivedBody> {
  const chunked = isAwsChunked(req);
  const declared = checksumFromHeaders(req.headers);
  const trailerName = (h1(req, 'x-amz-trailer') ?? '').trim().toLowerCase() || undefined;
  const trailerAlg = trailerName?.startsWith('x-amz-checksum-') ? parseAlgorithm(trailerName.slice('x-amz-checksum-'.length), 'x-amz-trailer') : undefined;
  const sdkAlg = parseAlgorithm(h1(req, 'x-amz-sdk-checksum-algorithm') ?? h1(req, 'x-amz-checksum-algorithm'), 'x-amz-sdk-checksum-algorithm');
  const alg = declared?.algorithm ?? trailerAlg ?? sdkAlg ?? opts.computeAlgorithm;
  const contentSha = h1(req, 'x-amz-content-sha256');
  const wantSha = contentSha && /^[0-9a-f]{64}$/i.test(contentSha) ? contentSha.toLowerCase() : undefined;

  const md5 = createHash('md5');
  const sha = wantSha ? createHash('sha256') : undefined;
  const hasher = alg ? newHasher(alg) : undefined;
  let size = 0;
  const tap = new Transform({
    transform(chunk: Buffer, _e, cb: TransformCallback) {
      size += chunk.length;
      if (size > MAX_OBJECT) return cb(new S3Error('EntityTooLarge', 400, 'Your proposed upload exceeds the maximum allowed size'));
      md5.update(chunk);
      sha?.update(chunk);
      hasher?.update(chunk);
      cb(null, chunk);
    },
  });
  const decoder = chunked ? new AwsChunkedDecoder() : undefined;
  try {
    // Node's http parser already holds the body to Content-Length; a short body errors as 'aborted'.
    const stages = decoder ? [req, decoder, tap] : [req, tap];
    await pipeline([...stages, createWriteStream(tmpPath)] as unknown as [NodeJS.ReadableStream, NodeJS.WritableStream]);
    const fh = await open(tmpPath, 'r+');
    await fh.sync();
    await fh.close();

    if (chunked) {
      const decodedLen = h1(req, 'x-amz-decoded-content-length');
      if (decodedLen !== undefined && Number(decodedLen) !== size) {
        throw new S3Error('IncompleteBody', 400, `You did not provide the number of bytes specified by x-amz-decoded-content-length (${decodedLen}, got ${size})`);
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
        if (!stated) throw new S3Error('InvalidRequest', 400, `The request declared trailer ${trailerName} but the body carried no such trailer`);
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
export async function readSmallBody(req: IncomingMessage, tmpPath: string, limit = 2 * 1024 * 1024): Promise<string> {
  const len = Number(h1(req, 'content-length') ?? 0);
  if (len > limit) throw new S3Error('MaxMessageLengthExceeded', 400, 'Your request was too big.');
  const body = await receiveBody(req, tmpPath);
  try {
    return await readFile(tmpPath, 'utf8');
  } finally {
    await rm(body.tmpPath, { force: true });
  }
}
