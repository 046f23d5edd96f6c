import { describe, expect, it } from 'vitest';
import { crc32 } from 'node:zlib';
import { FrameReader, FramingError, MAX_MESSAGE_SIZE } from '../../embedded/nucleus/ipc/framing.js';
import { rpcFrame } from '../helpers/nucleus.js';

describe('event-stream framing', () => {
  it('splits a byte stream into messages wherever the chunks are cut', () => {
    const a = rpcFrame(4, 0, 0, { ':version': { type: 'string', value: '0.1.0' } }, '{"authToken":"x"}');
    const b = rpcFrame(2, 0, 0, { note: { type: 'string', value: 'ping' } }, 'hello');
    const all = Buffer.concat([a, b]);
    for (const cut of [1, 5, 11, 12, 13, a.length - 1, a.length, a.length + 3]) {
      const r = new FrameReader();
      const got = [...r.feed(all.subarray(0, cut)), ...r.feed(all.subarray(cut))];
      expect(got).toHaveLength(2);
      expect(got[0]!.headers[':message-type']).toEqual({ type: 'integer', value: 4 });
      expect(Buffer.from(got[0]!.body).toString()).toBe('{"authToken":"x"}');
      expect(got[1]!.headers.note).toEqual({ type: 'string', value: 'ping' });
      expect(Buffer.from(got[1]!.body).toString()).toBe('hello');
    }
  });

  it('byte-by-byte feeding yields exactly one message at the last byte', () => {
    const f = rpcFrame(0, 0, 1, {}, 'x'.repeat(100));
    const r = new FrameReader();
    for (let i = 0; i < f.length - 1; i++) expect(r.feed(f.subarray(i, i + 1))).toHaveLength(0);
    expect(r.feed(f.subarray(f.length - 1))).toHaveLength(1);
  });

  it('rejects a bad prelude CRC as soon as the 12-byte prelude is in', () => {
    const f = Buffer.from(rpcFrame(2, 0, 0));
    f[9] ^= 0xff; // prelude CRC
    expect(() => new FrameReader().feed(f.subarray(0, 12))).toThrow(/prelude CRC/);
  });

  it('rejects a bad message CRC and a corrupted payload', () => {
    const f = Buffer.from(rpcFrame(0, 0, 1, {}, 'payload'));
    f[f.length - 1] ^= 0x01;
    expect(() => new FrameReader().feed(f)).toThrow(FramingError);
    const g = Buffer.from(rpcFrame(0, 0, 1, {}, 'payload'));
    g[g.length - 6] ^= 0x20; // a payload byte: message CRC no longer matches
    expect(() => new FrameReader().feed(g)).toThrow(/checksum|CRC/i);
  });

  it('refuses lengths over 24 MiB and under 16 bytes before buffering the body', () => {
    const prelude = (total: number, headers = 0) => {
      const p = Buffer.alloc(12);
      p.writeUInt32BE(total, 0);
      p.writeUInt32BE(headers, 4);
      p.writeUInt32BE(crc32(p.subarray(0, 8)), 8);
      return p;
    };
    expect(() => new FrameReader().feed(prelude(MAX_MESSAGE_SIZE + 1))).toThrow(/exceeds/);
    expect(() => new FrameReader().feed(prelude(15))).toThrow(/shorter/);
    expect(() => new FrameReader().feed(prelude(100, 90))).toThrow(/headers length/);
    // exactly the limit is allowed: the reader just waits for the rest
    expect(new FrameReader().feed(prelude(MAX_MESSAGE_SIZE))).toEqual([]);
  });
});
