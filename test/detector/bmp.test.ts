import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeImage } from '../../components/detector/decode.js';
import { prepareImage } from '../../components/uploader/image.js';
import { dhash } from '../../components/uploader/dedup.js';

// Pixel agreement of BMP decoding with cv2 is in preprocess.test.ts; here: refusals, and the
// uploader taking BMP frames (re-encoded as JPEG for upload, hashed for de-duplication).

/** A 24-bit bottom-up BMP of interleaved RGB. */
function bmp24(rgb: Uint8Array, w: number, h: number, opts: { compression?: number } = {}): Buffer {
  const stride = Math.floor((24 * w + 31) / 32) * 4;
  const data = Buffer.alloc(stride * h);
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++) {
      const i = (y * w + x) * 3;
      const o = (h - 1 - y) * stride + x * 3;
      data[o] = rgb[i + 2];
      data[o + 1] = rgb[i + 1];
      data[o + 2] = rgb[i];
    }
  const head = Buffer.alloc(54);
  head.write('BM', 0, 'latin1');
  head.writeUInt32LE(54 + data.length, 2);
  head.writeUInt32LE(54, 10);
  head.writeUInt32LE(40, 14);
  head.writeInt32LE(w, 18);
  head.writeInt32LE(h, 22);
  head.writeUInt16LE(1, 26);
  head.writeUInt16LE(24, 28);
  head.writeUInt32LE(opts.compression ?? 0, 30);
  head.writeUInt32LE(data.length, 34);
  return Buffer.concat([head, data]);
}

let dir: string;
const W = 64;
const H = 40;
const rgb = new Uint8Array(W * H * 3).map((_, i) => (i * 37) % 251);
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'loupe-bmp-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('BMP frames', () => {
  it('decode to the encoded pixels', async () => {
    const img = await decodeImage(bmp24(rgb, W, H));
    expect([img.width, img.height]).toEqual([W, H]);
    expect(Buffer.from(img.data).equals(Buffer.from(rgb))).toBe(true);
  });

  it('refuses RLE, truncated and malformed files with IMAGE_UNREADABLE naming the file', async () => {
    const good = bmp24(rgb, W, H);
    const cases: [string, Buffer, RegExp][] = [
      ['rle.bmp', bmp24(rgb, W, H, { compression: 1 }), /RLE compression is not supported/],
      ['truncated.bmp', good.subarray(0, good.length - 100), /truncated pixel data/],
      ['header.bmp', good.subarray(0, 20), /truncated header/],
      ['zero.bmp', Buffer.concat([good.subarray(0, 18), Buffer.alloc(4), good.subarray(22)]), /size 0x40/],
    ];
    for (const [name, bytes, why] of cases) {
      const path = join(dir, name);
      await writeFile(path, bytes);
      const err = await decodeImage(path).then(
        () => undefined,
        (e: { code?: string; input?: string; message: string }) => e,
      );
      expect(err, name).toBeDefined();
      expect(err!.code, name).toBe('IMAGE_UNREADABLE');
      expect(`${err!.input} ${err!.message}`, name).toContain(path);
      expect(err!.message, name).toMatch(why);
    }
  });

  it('the uploader re-encodes a BMP frame as JPEG and hashes it like the same pixels as PNG', async () => {
    const path = join(dir, 'frame.bmp');
    await writeFile(path, bmp24(rgb, W, H));
    const img = await prepareImage(
      path,
      { width: W, height: H, detections: [] },
      { maxWidth: 4096, maxHeight: 4096, jpegQuality: 90, maxBytes: 1 << 20, reencode: false },
    );
    const meta = await sharp(img.data).metadata();
    expect([meta.format, meta.width, meta.height]).toEqual(['jpeg', W, H]);
    const png = await sharp(Buffer.from(rgb), { raw: { width: W, height: H, channels: 3 } })
      .png()
      .toBuffer();
    expect(await dhash(path)).toBe(await dhash(png));
  });
});
