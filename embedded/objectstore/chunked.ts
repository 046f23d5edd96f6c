import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { S3Error } from './errors.js';
import { chunkSignature, sameSignature, trailerSignature, type Authorized } from './sigv4.js';

/**
 * Decoder for the `aws-chunked` content encoding the SDK v3 uses for streamed uploads
 * (flexible checksums): `<hex-size>[;chunk-signature=...]\r\n<bytes>\r\n` ... `0\r\n`, then
 * trailer lines `name:value\r\n` and an empty line. Passes the payload bytes through and
 * collects the trailers (`x-amz-checksum-crc32: ...`). Hand-written because no maintained
 * npm package decodes this format; it is a small state machine. With `signed` (the request's
 * x-amz-content-sha256 was STREAMING-AWS4-HMAC-SHA256-PAYLOAD[-TRAILER]) every chunk's
 * signature is checked against the chain that starts at the request's seed signature, and so
 * is the trailer's; a chunk without a valid signature fails the whole body.
 */
export class AwsChunkedDecoder extends Transform {
  readonly trailers: Record<string, string> = {};
  private state: 'size' | 'data' | 'data-crlf' | 'trailer' | 'done' = 'size';
  private line = '';
  private remaining = 0;
  private trailerBytes = 0;
  private trailerBlock = '';
  private trailerSig: string | undefined;
  private chunkSig = '';
  private chunkHash: Hash | undefined;
  private previous: string;
  private static readonly maxLine = 8192;
  /** trailers are a few checksum lines; more is an attempt to grow memory */
  private static readonly maxTrailerBytes = 16 * 1024;

  constructor(private readonly signed?: { auth: Authorized; trailer: boolean }) {
    super();
    this.previous = signed?.auth.signature ?? '';
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    try {
      let i = 0;
      while (i < chunk.length) {
        if (this.state === 'data') {
          const n = Math.min(this.remaining, chunk.length - i);
          const piece = chunk.subarray(i, i + n);
          this.chunkHash?.update(piece);
          this.push(piece);
          i += n;
          this.remaining -= n;
          if (this.remaining === 0) {
            this.endChunk();
            this.state = 'data-crlf';
          }
          continue;
        }
        if (this.state === 'done') {
          // Some clients end with an extra CRLF; anything else is malformed.
          if (chunk[i] !== 0x0d && chunk[i] !== 0x0a) throw this.bad('bytes after the final chunk');
          i++;
          continue;
        }
        const nl = chunk.indexOf(0x0a, i);
        const end = nl === -1 ? chunk.length : nl + 1;
        this.line += chunk.toString('latin1', i, end);
        i = end;
        if (this.line.length > AwsChunkedDecoder.maxLine) throw this.bad('chunk header line too long');
        if (nl === -1) continue;
        const line = this.line.replace(/\r?\n$/, '');
        this.line = '';
        this.onLine(line);
      }
      cb();
    } catch (e) {
      cb(e as Error);
    }
  }

  override _flush(cb: TransformCallback): void {
    if (this.state === 'trailer' && this.line === '') {
      // Tolerate a body that ends right after the trailers without the final empty line.
      this.finishTrailers();
      this.state = 'done';
    }
    cb(this.state === 'done' ? null : this.bad('body ended before the final chunk'));
  }

  private onLine(line: string): void {
    switch (this.state) {
      case 'size': {
        const [head, ...ext] = line.split(';');
        const hex = head!.trim();
        if (!/^[0-9a-fA-F]{1,16}$/.test(hex)) throw this.bad(`invalid chunk size ${JSON.stringify(hex.slice(0, 40))}`);
        const size = parseInt(hex, 16);
        if (this.signed) {
          const sig = ext
            .map((e) => e.trim())
            .find((e) => e.startsWith('chunk-signature='))
            ?.slice('chunk-signature='.length);
          if (!sig) throw this.denied('a chunk of a signed aws-chunked body has no chunk-signature');
          this.chunkSig = sig;
          this.chunkHash = createHash('sha256');
        }
        if (size === 0) {
          this.endChunk();
          this.state = 'trailer';
        } else {
          this.remaining = size;
          this.state = 'data';
        }
        return;
      }
      case 'data-crlf':
        if (line !== '') throw this.bad('missing CRLF after chunk data');
        this.state = 'size';
        return;
      case 'trailer': {
        if (line === '') {
          this.finishTrailers();
          this.state = 'done';
          return;
        }
        this.trailerBytes += line.length + 2;
        if (this.trailerBytes > AwsChunkedDecoder.maxTrailerBytes) throw this.bad('trailers too long');
        const c = line.indexOf(':');
        if (c <= 0) throw this.bad(`invalid trailer line ${JSON.stringify(line.slice(0, 60))}`);
        const name = line.slice(0, c).trim().toLowerCase();
        const value = line.slice(c + 1).trim();
        if (name === 'x-amz-trailer-signature') {
          this.trailerSig = value;
          return;
        }
        this.trailers[name] = value;
        this.trailerBlock += `${name}:${value}\n`;
        return;
      }
      default:
        throw this.bad('unexpected state');
    }
  }

  /** A chunk's bytes are all in: check its signature and move the chain on. */
  private endChunk(): void {
    if (!this.signed || !this.chunkHash) return;
    const want = chunkSignature(this.signed.auth, this.previous, this.chunkHash.digest('hex'));
    if (!sameSignature(want, this.chunkSig)) throw this.denied('a chunk signature of the aws-chunked body does not match');
    this.previous = want;
    this.chunkHash = undefined;
  }

  private finishTrailers(): void {
    if (!this.signed?.trailer) return;
    if (!this.trailerSig) throw this.denied('the signed aws-chunked body has no x-amz-trailer-signature');
    if (!sameSignature(trailerSignature(this.signed.auth, this.previous, this.trailerBlock), this.trailerSig)) {
      throw this.denied('the trailer signature of the aws-chunked body does not match');
    }
  }

  private denied(what: string): S3Error {
    return new S3Error(
      'SignatureDoesNotMatch',
      403,
      `The request signature we calculated does not match the signature you provided: ${what}`,
    );
  }

  private bad(what: string): S3Error {
    return new S3Error('IncompleteBody', 400, `Malformed aws-chunked body: ${what}`);
  }
}
