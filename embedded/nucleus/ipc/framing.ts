import { crc32 } from 'node:zlib';
import { EventStreamCodec, type Message, type MessageHeaders } from '@smithy/eventstream-codec';

/**
 * AWS event-stream framing for the IPC socket. Encoding and whole-message decoding (both CRCs,
 * header parsing) are done by `@smithy/eventstream-codec`; this file only cuts the byte stream
 * into messages the way aws-c-event-stream's channel handler does: read the 12-byte prelude,
 * check its CRC *before* trusting the length (so a flipped bit cannot make us buffer gigabytes),
 * enforce the 24 MiB limit, then hand the complete message to the codec.
 */
export const MAX_MESSAGE_SIZE = 24 * 1024 * 1024;
const PRELUDE = 12;
const MIN_MESSAGE = 16;

const utf8 = new TextDecoder();
const codec = new EventStreamCodec(
  (bytes: Uint8Array) => utf8.decode(bytes),
  (s: string) => Buffer.from(s, 'utf8'),
);

export type { Message, MessageHeaders };

export class FramingError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FramingError';
  }
}

export function encodeMessage(headers: MessageHeaders, body: Uint8Array): Buffer {
  const out = codec.encode({ headers, body });
  return Buffer.from(out.buffer, out.byteOffset, out.byteLength);
}

/**
 * Incremental splitter: feed() socket chunks, get whole decoded messages back. Throws
 * FramingError on a bad prelude CRC, an impossible length, a bad message CRC or undecodable
 * headers; the caller closes the connection then (as the real server does).
 */
export class FrameReader {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private expected = 0; // total length of the message being read, once the prelude is checked
  /** The largest message accepted now (the RPC layer keeps it small until Connect is accepted). */
  maxMessageSize = MAX_MESSAGE_SIZE;

  feed(chunk: Buffer): Message[] {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    const out: Message[] = [];
    for (;;) {
      if (this.expected === 0) {
        if (this.buffered < PRELUDE) break;
        const prelude = this.peek(PRELUDE);
        const total = prelude.readUInt32BE(0);
        const crc = prelude.readUInt32BE(8);
        if (crc32(prelude.subarray(0, 8)) !== crc) throw new FramingError('prelude CRC mismatch');
        if (total > this.maxMessageSize) throw new FramingError(`message length ${total} exceeds the ${this.maxMessageSize}-byte limit`);
        if (total < MIN_MESSAGE) throw new FramingError(`message length ${total} is shorter than the 16-byte framing`);
        const headersLen = prelude.readUInt32BE(4);
        if (headersLen > total - MIN_MESSAGE)
          throw new FramingError(`headers length ${headersLen} does not fit in a ${total}-byte message`);
        this.expected = total;
      }
      if (this.buffered < this.expected) break;
      const bytes = this.take(this.expected);
      this.expected = 0;
      try {
        out.push(codec.decode(bytes));
      } catch (e) {
        throw new FramingError(`undecodable message: ${(e as Error).message}`);
      }
    }
    return out;
  }

  private peek(n: number): Buffer {
    if (this.chunks[0]!.length >= n) return this.chunks[0]!.subarray(0, n);
    const joined = Buffer.concat(this.chunks);
    this.chunks = [joined];
    return joined.subarray(0, n);
  }

  private take(n: number): Buffer {
    let head = this.chunks[0]!;
    if (head.length < n) {
      head = Buffer.concat(this.chunks);
      this.chunks = [head];
    }
    const msg = head.subarray(0, n);
    if (head.length === n) this.chunks.shift();
    else this.chunks[0] = head.subarray(n);
    this.buffered -= n;
    // The codec's decode() views the whole underlying ArrayBuffer; give it an exact copy.
    return Buffer.from(msg);
  }
}

// --- header helpers -------------------------------------------------------------------------

export function headerInt(h: MessageHeaders, name: string): number | undefined {
  const v = h[name];
  if (!v) return undefined;
  if (v.type === 'integer' || v.type === 'short' || v.type === 'byte') return v.value;
  return undefined;
}

export function headerString(h: MessageHeaders, name: string): string | undefined {
  const v = h[name];
  return v && v.type === 'string' ? v.value : undefined;
}
