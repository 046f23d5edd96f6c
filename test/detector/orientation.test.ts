import { readFile } from 'node:fs/promises';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { datasetDir } from '../../lib/paths.js';
import { decodeImage, jpegOrientation } from '../../components/detector/decode.js';

// decode.ts skips libvips' auto-orientation when its own read of the JPEG's Exif says
// "orientation 1". These cases check that read on crafted Exif blocks, and that the decoded pixels
// always equal what libvips' auto-orientation gives (which preprocess.test.ts checks against cv2).

type Entry = [tag: number, type: number, count: number, value: number];

/** An APP1 Exif segment (marker included) with one IFD0 holding `entries`. */
function exifSegment(entries: Entry[], le: boolean, opts: { countOverride?: number } = {}): Uint8Array {
  const tiff = Buffer.alloc(8 + 2 + entries.length * 12 + 4);
  const u16 = (v: number, at: number): number => (le ? tiff.writeUInt16LE(v, at) : tiff.writeUInt16BE(v, at));
  const u32 = (v: number, at: number): number => (le ? tiff.writeUInt32LE(v, at) : tiff.writeUInt32BE(v, at));
  tiff.write(le ? 'II' : 'MM', 0, 'latin1');
  u16(42, 2);
  u32(8, 4);
  u16(opts.countOverride ?? entries.length, 8);
  entries.forEach(([tag, type, count, value], i) => {
    const at = 10 + i * 12;
    u16(tag, at);
    u16(type, at + 2);
    u32(count, at + 4);
    if (type === 3) u16(value, at + 8);
    else u32(value, at + 8);
  });
  const body = Buffer.concat([Buffer.from('Exif\0\0', 'latin1'), tiff]);
  const head = Buffer.from([0xff, 0xe1, (body.length + 2) >> 8, (body.length + 2) & 0xff]);
  return Buffer.concat([head, body]);
}

/** The JPEG with segments inserted right after SOI. */
function withSegments(jpeg: Uint8Array, ...segs: Uint8Array[]): Buffer {
  return Buffer.concat([jpeg.subarray(0, 2), ...segs, jpeg.subarray(2)]);
}

async function libvipsOriented(bytes: Uint8Array): Promise<{ data: Buffer; width: number; height: number }> {
  const { data, info } = await sharp(bytes).rotate().removeAlpha().raw().toBuffer({ resolveWithObject: true });
  return { data, width: info.width, height: info.height };
}

describe('JPEG orientation read without decoding', () => {
  it('reads Exif orientation like libvips and decodes the same pixels', async () => {
    const dir = join(datasetDir('metal-tags'), 'bad');
    const jpeg = new Uint8Array(await readFile(join(dir, readdirSync(dir).sort()[0])));
    const ORI = 0x0112;
    const MAKE: Entry = [0x010f, 2, 4, 0]; // ASCII, value offset irrelevant here
    const cases: Array<[string, Uint8Array, number | undefined]> = [
      ['dataset JPEG (no Exif)', jpeg, 1],
      ['Exif without Orientation', withSegments(jpeg, exifSegment([MAKE], true)), 1],
      ['Orientation 1, little-endian', withSegments(jpeg, exifSegment([MAKE, [ORI, 3, 1, 1]], true)), 1],
      ['Orientation 1, big-endian', withSegments(jpeg, exifSegment([[ORI, 3, 1, 1]], false)), 1],
      ['Orientation 6, little-endian', withSegments(jpeg, exifSegment([MAKE, [ORI, 3, 1, 6]], true)), 6],
      ['Orientation 3, big-endian', withSegments(jpeg, exifSegment([[ORI, 3, 1, 3]], false)), 3],
      [
        'Orientation 8 after an XMP APP1',
        withSegments(jpeg, Buffer.from([0xff, 0xe1, 0, 8, 0x68, 0x74, 0x74, 0x70, 0x3a, 0x2f]), exifSegment([[ORI, 3, 1, 8]], true)),
        8,
      ],
      ['two Exif blocks', withSegments(jpeg, exifSegment([[ORI, 3, 1, 1]], true), exifSegment([[ORI, 3, 1, 6]], true)), undefined],
      ['Orientation stored as LONG', withSegments(jpeg, exifSegment([[ORI, 4, 1, 6]], true)), undefined],
      ['Orientation out of range', withSegments(jpeg, exifSegment([[ORI, 3, 1, 9]], true)), undefined],
      ['IFD0 count past the segment', withSegments(jpeg, exifSegment([[ORI, 3, 1, 1]], true, { countOverride: 40 })), undefined],
    ];
    for (const [name, bytes, expected] of cases) {
      expect(jpegOrientation(bytes), name).toBe(expected);
      const ours = await decodeImage(bytes);
      const ref = await libvipsOriented(bytes);
      expect([ours.width, ours.height], name).toEqual([ref.width, ref.height]);
      expect(Buffer.compare(Buffer.from(ours.data.buffer, ours.data.byteOffset, ours.data.length), ref.data), name).toBe(0);
    }
    // orientation 6 really turned the 450x300 frame
    expect((await decodeImage(cases[4][1])).width).toBe(300);
  }, 600_000);

  it('answers undefined (libvips decides) for what is not a plain JPEG', async () => {
    const png = await sharp({ create: { width: 4, height: 3, channels: 3, background: '#808080' } })
      .png()
      .toBuffer();
    expect(jpegOrientation(png)).toBeUndefined();
    expect(jpegOrientation(new Uint8Array([0xff, 0xd8]))).toBeUndefined();
    expect(jpegOrientation(new Uint8Array([0xff, 0xd8, 0xff, 0xe1, 0x00]))).toBeUndefined();
    expect(jpegOrientation(new Uint8Array([0xff, 0xd8, 0xff, 0xd9]))).toBeUndefined();
    expect(jpegOrientation(new Uint8Array(0))).toBeUndefined();
  }, 600_000);
});
