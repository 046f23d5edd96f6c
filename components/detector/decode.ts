import sharp, { type OutputInfo } from 'sharp';
import { readFile } from 'node:fs/promises';
import { LoupeError, errorMessage } from '../../lib/errors.js';
import { decodeBmp, isBmp } from '../../lib/bmp.js';

/** A decoded image: interleaved RGB, 8 bits per channel, row-major (HWC). */
export interface RgbImage {
  data: Uint8Array;
  width: number;
  height: number;
}

/**
 * Decode an image file or buffer the way ultralytics' loader does (`cv2.imdecode(...,
 * IMREAD_COLOR)`, utils/patches.py imread, OpenCV 4.11): EXIF orientation applied, grayscale
 * replicated to three channels, alpha dropped without compositing, 16-bit scaled to 8-bit by >> 8;
 * BMP through loupe's own decoder (common/bmp.ts).
 * Checked pixel-for-pixel against the pinned cv2 (test/detector/preprocess.full.test.ts); sharp's
 * `.rotate().removeAlpha()` produces exactly those pixels. Not covered: CMYK JPEGs and embedded
 * non-sRGB ICC profiles (OpenCV ignores ICC; libvips may convert), both rare on camera frames.
 */
export async function decodeImage(input: string | Uint8Array, label = typeof input === 'string' ? input : '<buffer>'): Promise<RgbImage> {
  let bytes: Uint8Array;
  try {
    // Reading the file ourselves and decoding the buffer is ~0.6 ms/frame cheaper than sharp's file input.
    bytes = typeof input === 'string' ? await readFile(input) : input;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new LoupeError('IMAGE_MISSING', 'image file not found', { input: label, cause: e });
    throw new LoupeError('IMAGE_UNREADABLE', `cannot read the image file (${errorMessage(e)})`, { input: label, cause: e });
  }
  if (isBmp(bytes)) return decodeBmp(bytes, label); // libvips has no BMP loader
  let out: { data: Buffer; info: OutputInfo };
  try {
    let pipeline = sharp(bytes, { failOn: 'error', limitInputPixels: 268_402_689 });
    // Auto-orienting costs time even with nothing to turn; skip it only when the JPEG plainly says 1.
    if (jpegOrientation(bytes) !== 1) pipeline = pipeline.autoOrient();
    out = await pipeline.removeAlpha().raw().toBuffer({ resolveWithObject: true });
  } catch (e) {
    const msg = errorMessage(e);
    throw new LoupeError('IMAGE_UNREADABLE', `not a readable image (${msg.split('\n')[0]})`, { input: label, cause: e });
  }
  const { data, info } = out;
  if (info.channels === 3) return { data, width: info.width, height: info.height };
  // sharp normally hands back 3 channels here; keep a correct path for 1/2-channel output anyway.
  const n = info.width * info.height;
  const rgb = new Uint8Array(n * 3);
  const cn = info.channels;
  for (let i = 0; i < n; i++) {
    const g = data[i * cn];
    rgb[i * 3] = g;
    rgb[i * 3 + 1] = cn >= 3 ? data[i * cn + 1] : g;
    rgb[i * 3 + 2] = cn >= 3 ? data[i * cn + 2] : g;
  }
  return { data: rgb, width: info.width, height: info.height };
}

/**
 * The EXIF orientation of a JPEG, read from its markers without decoding: 1 when the file has
 * no Exif segment or one whose IFD0 has no Orientation tag, else the tag's value (1..8).
 * undefined whenever the answer is not plain (not a JPEG, more than one Exif segment, a
 * truncated or odd Exif block, an out-of-range value): the caller then lets libvips decide.
 *
 * Why hand-written: asking sharp (`metadata()`) costs a second libvips open per frame, and
 * auto-orienting every frame costs ~0.7 ms even when there is nothing to turn, while camera
 * JPEGs almost never carry a rotation. Only what libvips reads is read: APP1 segments that
 * start with "Exif", before the first SOS.
 */
export function jpegOrientation(b: Uint8Array): number | undefined {
  if (b.length < 4 || b[0] !== 0xff || b[1] !== 0xd8) return undefined;
  let found: number | undefined;
  let p = 2;
  for (;;) {
    if (p + 1 >= b.length || b[p] !== 0xff) return undefined;
    while (p < b.length && b[p] === 0xff) p++; // fill bytes before the marker code
    if (p >= b.length) return undefined;
    const m = b[p++];
    if (m === 0xda) return found ?? 1; // SOS: libjpeg stops reading header markers here
    if (m === 0xd9) return undefined; // EOI before any scan
    if ((m >= 0xd0 && m <= 0xd7) || m === 0x01) continue; // markers without a length
    if (p + 2 > b.length) return undefined;
    const len = (b[p] << 8) | b[p + 1];
    if (len < 2 || p + len > b.length) return undefined;
    const s = p + 2;
    const e = p + len;
    if (m === 0xe1 && e - s >= 4 && b[s] === 0x45 && b[s + 1] === 0x78 && b[s + 2] === 0x69 && b[s + 3] === 0x66) {
      if (found !== undefined) return undefined; // two Exif blocks: which wins is libvips' business
      const o = exifOrientation(b, s, e);
      if (o === undefined) return undefined;
      found = o;
    }
    p = e;
  }
}

/** IFD0 Orientation of the Exif block b[s..e) ("Exif\0\0" then a TIFF header); 1 when absent. */
function exifOrientation(b: Uint8Array, s: number, e: number): number | undefined {
  if (e - s < 14 || b[s + 4] !== 0 || b[s + 5] !== 0) return undefined;
  const t = s + 6; // TIFF header
  const le = b[t] === 0x49 && b[t + 1] === 0x49;
  if (!le && !(b[t] === 0x4d && b[t + 1] === 0x4d)) return undefined;
  const u16 = (i: number): number => (le ? b[i] | (b[i + 1] << 8) : (b[i] << 8) | b[i + 1]);
  const u32 = (i: number): number =>
    le
      ? (b[i] | (b[i + 1] << 8) | (b[i + 2] << 16)) + b[i + 3] * 2 ** 24
      : ((b[i + 1] << 16) | (b[i + 2] << 8) | b[i + 3]) + b[i] * 2 ** 24;
  if (u16(t + 2) !== 42) return undefined;
  const ifd = t + u32(t + 4);
  if (ifd + 2 > e) return undefined;
  const n = u16(ifd);
  if (ifd + 2 + n * 12 > e) return undefined;
  for (let i = 0; i < n; i++) {
    const en = ifd + 2 + i * 12;
    if (u16(en) !== 0x0112) continue;
    const v = u16(en + 8);
    // SHORT, one value, 1..8; anything else is left to libvips
    return u16(en + 2) === 3 && u32(en + 4) === 1 && v >= 1 && v <= 8 ? v : undefined;
  }
  return 1;
}
