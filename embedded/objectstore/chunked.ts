import { Transform, type TransformCallback } from 'node:stream';
import { S3Error } from './errors.js';

/**
 * Decoder for the `aws-chunked` content encoding the SDK v3 uses for streamed uploads
 * (flexible checksums): `<hex-size>[;chunk-signature=...]\r\n<bytes>\r\n` ... `0\r\n`, then
 * trailer lines `name:value\r\n` and an empty line. Passes the payload bytes through and
 * collects the trailers (`x-amz-checksum-crc32: ...`). Hand-written because no maintained
 * npm package decodes this format; it is a small state machine. Chunk signatures are not
 * verified (the store does not verify SigV4 signatures at all, see server.ts).
 */
export class AwsChunkedDecoder extends Transform {
  readonly trailers: Record<string, string> = {};
  private state: 'size' | 'data' | 'data-crlf' | 'trailer' | 'done' = 'size';
  private line = '';
  private remaining = 0;
  private static readonly maxLine = 8192;

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    try {
      let i = 0;
      while (i < chunk.length) {
        if (this.state === 'data') {
          const n = Math.min(this.remaining, chunk.length - i);
          this.push(chunk.subarray(i, i + n));
          i += n;
          this.remaining -= n;
          if (this.remaining === 0) this.state = 'data-crlf';
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
      this.state = 'done';
    }
    cb(this.state === 'done' ? null : this.bad('body ended before the final chunk'));
  }

  private onLine(line: string): void {
    switch (this.state) {
      case 'size': {
        const hex = line.split(';', 1)[0]!.trim();
        if (!/^[0-9a-fA-F]{1,16}$/.test(hex)) throw this.bad(`invalid chunk size ${JSON.stringify(hex.slice(0, 40))}`);
        const size = parseInt(hex, 16);
        if (size === 0) this.state = 'trailer';
        else {
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
          this.state = 'done';
          return;
        }
        const c = line.indexOf(':');
        if (c <= 0) throw this.bad(`invalid trailer line ${JSON.stringify(line.slice(0, 60))}`);
        this.trailers[line.slice(0, c).trim().toLowerCase()] = line.slice(c + 1).trim();
        return;
      }
      default:
        throw this.bad('unexpected state');
    }
  }

  private bad(what: string): S3Error {
    return new S3Error('IncompleteBody', 400, `Malformed aws-chunked body: ${what}`);
  }
}
