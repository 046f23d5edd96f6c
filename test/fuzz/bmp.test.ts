import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeBmp } from '../../lib/bmp.js';
import { FUZZ_SECONDS, fuzz, mutated } from './harness.js';

/**
 * Fuzz target: loupe's BMP decoder (lib/bmp.ts), which reads camera frames.
 * Inputs: BMPs whose header fields are drawn at random around the legal values (header kinds,
 * sizes including negative and huge ones, bits per pixel, compressions, palettes, masks, data
 * offsets) with bodies of random length, and byte mutations of valid BMPs of every depth.
 */
interface Header {
  hdr: number;
  width: number;
  height: number;
  bpp: number;
  compression: number;
  colorsUsed: number;
  dataOffset: number | null;
  masks: [number, number, number];
  body: Uint8Array;
}

function build(h: Header): Uint8Array {
  const headLen = 14 + (h.hdr === 12 ? 12 : Math.max(40, Math.min(h.hdr, 124)));
  const paletteLen = h.bpp <= 8 ? (h.colorsUsed || 1 << Math.min(h.bpp, 8)) * (h.hdr === 12 ? 3 : 4) : 0;
  const maskLen = h.compression === 3 || h.compression === 6 ? 12 : 0;
  const b = Buffer.alloc(headLen + maskLen + Math.min(paletteLen, 4096));
  b.write('BM', 0, 'latin1');
  b.writeUInt32LE(b.length + h.body.length, 2);
  b.writeUInt32LE(h.dataOffset ?? b.length, 10);
  b.writeUInt32LE(h.hdr >>> 0, 14);
  if (h.hdr === 12) {
    b.writeUInt16LE(h.width & 0xffff, 18);
    b.writeUInt16LE(h.height & 0xffff, 20);
    b.writeUInt16LE(1, 22);
    b.writeUInt16LE(h.bpp & 0xffff, 24);
  } else {
    b.writeInt32LE(h.width | 0, 18);
    b.writeInt32LE(h.height | 0, 22);
    b.writeUInt16LE(1, 26);
    b.writeUInt16LE(h.bpp & 0xffff, 28);
    b.writeUInt32LE(h.compression >>> 0, 30);
    b.writeUInt32LE(h.colorsUsed >>> 0, 46);
    if (maskLen) for (let i = 0; i < 3; i++) b.writeUInt32LE(h.masks[i]! >>> 0, 54 + i * 4);
  }
  return new Uint8Array(Buffer.concat([b, h.body]));
}

const size = fc.oneof(
  fc.integer({ min: -4, max: 40 }),
  fc.constantFrom(0, 1, -1, 65535, 65536, -65536, 2 ** 31 - 1, -(2 ** 31), 16384, 20000),
);
const header = fc.record({
  hdr: fc.oneof(
    { weight: 6, arbitrary: fc.constantFrom(12, 40, 52, 56, 108, 124) },
    { weight: 1, arbitrary: fc.integer({ min: 0, max: 300 }) },
  ),
  width: size,
  height: size,
  bpp: fc.oneof(
    { weight: 6, arbitrary: fc.constantFrom(1, 4, 8, 16, 24, 32) },
    { weight: 1, arbitrary: fc.integer({ min: 0, max: 65535 }) },
  ),
  compression: fc.oneof(
    { weight: 4, arbitrary: fc.constant(0) },
    { weight: 2, arbitrary: fc.constantFrom(1, 2, 3, 6) },
    { weight: 1, arbitrary: fc.nat() },
  ),
  colorsUsed: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 300 }), fc.nat()),
  dataOffset: fc.option(fc.nat({ max: 5000 }), { freq: 3 }),
  masks: fc.tuple(fc.nat(), fc.nat(), fc.nat()).map(([a, b, c]) => [a, b, c] as [number, number, number]),
  body: fc.uint8Array({ maxLength: 6000 }),
});

/** Valid seeds: a small image at every depth, bottom-up and top-down, with bit-field masks. */
const seeds: Uint8Array[] = [];
for (const bpp of [1, 4, 8, 16, 24, 32]) {
  for (const height of [5, -5]) {
    const width = 7;
    const stride = Math.floor((bpp * width + 31) / 32) * 4;
    const body = new Uint8Array(stride * 5).map((_, i) => (i * 29) % 256);
    const compression = bpp === 16 || bpp === 32 ? 3 : 0;
    const masks: [number, number, number] = bpp === 16 ? [0xf800, 0x07e0, 0x001f] : [0xff0000, 0xff00, 0xff];
    seeds.push(build({ hdr: 40, width, height, bpp, compression, colorsUsed: 0, dataOffset: null, masks, body }));
  }
}

describe('fuzz: BMP decoder', () => {
  it('the seeds decode (they are valid BMPs of every depth)', () => {
    for (const s of seeds) expect(decodeBmp(s, 'seed.bmp')).toMatchObject({ width: 7, height: 5 });
  });

  it(
    'never crashes, hangs or allocates beyond its input: an image or a LoupeError',
    () => {
      const input = fc.oneof(
        { weight: 3, arbitrary: header.map(build) },
        { weight: 3, arbitrary: mutated(seeds) },
        { weight: 1, arbitrary: fc.uint8Array({ maxLength: 256 }) },
      );
      const r = fuzz('bmp-decoder', input, (bytes, stats) =>
        stats.check(
          () => decodeBmp(bytes, 'fuzz.bmp'),
          (img) => {
            if (img.data.length !== img.width * img.height * 3) return `${img.data.length} bytes for ${img.width}x${img.height} RGB`;
            // 1 bit per pixel is the densest input: 8 pixels (24 output bytes) per input byte
            return img.data.length > 24 * bytes.length + 1024 ? `${img.data.length} output bytes from ${bytes.length}` : null;
          },
        ),
      );
      expect(r.iterations).toBeGreaterThanOrEqual(20); // the budget is time: a loaded machine runs fewer
    },
    FUZZ_SECONDS * 1000 + 60_000,
  );
});
