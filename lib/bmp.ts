import { LoupeError } from './errors.js';

/**
 * Windows BMP decoding to interleaved RGB, the way OpenCV's BMP decoder (what ultralytics'
 * cv2.imread uses) reads the files machine-vision tools write: 1/4/8-bit palettes, 16-bit 5-5-5
 * and 5-6-5 (low bits zero, as OpenCV shifts), 24-bit, 32-bit (alpha dropped), bottom-up or
 * top-down rows. Why hand-written: sharp's libvips has no BMP loader and the npm BMP decoders
 * are unmaintained; the format is a header and rows. RLE-compressed BMPs are refused by name.
 */
export interface BmpImage {
  data: Uint8Array;
  width: number;
  height: number;
}

export function isBmp(b: Uint8Array): boolean {
  return b.length >= 2 && b[0] === 0x42 && b[1] === 0x4d; // "BM"
}

const MAX_PIXELS = 268_402_689; // sharp's default input limit, for the same protection

export function decodeBmp(b: Uint8Array, label = '<buffer>'): BmpImage {
  const bad = (why: string): never => {
    throw new LoupeError('IMAGE_UNREADABLE', `not a readable BMP (${why})`, { input: label });
  };
  if (!isBmp(b)) bad('no "BM" signature');
  if (b.length < 26) bad('truncated header');
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const dataOffset = dv.getUint32(10, true);
  const hdr = dv.getUint32(14, true);
  let width: number;
  let rawHeight: number;
  let bpp: number;
  let compression = 0;
  let colorsUsed = 0;
  if (hdr === 12) {
    // OS/2 BITMAPCOREHEADER
    width = dv.getUint16(18, true);
    rawHeight = dv.getUint16(20, true);
    bpp = dv.getUint16(24, true);
  } else if (hdr >= 40 && hdr <= 124) {
    if (b.length < 14 + 40) bad('truncated header');
    width = dv.getInt32(18, true);
    rawHeight = dv.getInt32(22, true);
    bpp = dv.getUint16(28, true);
    compression = dv.getUint32(30, true);
    colorsUsed = dv.getUint32(46, true);
  } else {
    return bad(`unknown header size ${hdr}`);
  }
  const topDown = rawHeight < 0;
  const height = Math.abs(rawHeight);
  if (width <= 0 || height <= 0) bad(`size ${width}x${rawHeight}`);
  if (width * height > MAX_PIXELS) bad(`${width}x${height} exceeds the pixel limit`);
  if (compression === 1 || compression === 2) bad('RLE compression is not supported');

  // Channel masks for 16/32-bit: BI_BITFIELDS (3) / BI_ALPHABITFIELDS (6) give them, else defaults.
  let masks: [number, number, number] | undefined;
  if (compression === 3 || compression === 6) {
    if (bpp !== 16 && bpp !== 32) bad(`bit-field masks with ${bpp} bits per pixel`);
    const at = 14 + 40; // inside a V2+ header, or right after a 40-byte header
    if (b.length < at + 12) bad('truncated masks');
    masks = [dv.getUint32(at, true), dv.getUint32(at + 4, true), dv.getUint32(at + 8, true)];
  } else if (compression !== 0) {
    bad(`compression ${compression} is not supported`);
  }

  const stride = Math.floor((bpp * width + 31) / 32) * 4;
  if (![1, 4, 8, 16, 24, 32].includes(bpp)) bad(`${bpp} bits per pixel`);
  if (dataOffset + stride * height > b.length) bad(`truncated pixel data (${b.length} bytes, ${dataOffset + stride * height} needed)`);

  // Palette (BGR0 entries; BGR for the OS/2 header), right after the header and any masks.
  let palette: Uint8Array | undefined;
  if (bpp <= 8) {
    const entry = hdr === 12 ? 3 : 4;
    const count = colorsUsed || 1 << bpp;
    const start = 14 + hdr + (hdr === 40 && masks ? 12 : 0);
    if (count > 1 << bpp || start + count * entry > dataOffset) bad(`palette of ${count} colours does not fit`);
    palette = new Uint8Array(256 * 3);
    for (let i = 0; i < count; i++) {
      palette[i * 3] = b[start + i * entry + 2]!;
      palette[i * 3 + 1] = b[start + i * entry + 1]!;
      palette[i * 3 + 2] = b[start + i * entry]!;
    }
  }

  const out = new Uint8Array(width * height * 3);
  const is565 = bpp === 16 && masks?.[0] === 0xf800 && masks[1] === 0x07e0 && masks[2] === 0x001f;
  if (bpp === 16 && masks && !is565 && !(masks[0] === 0x7c00 && masks[1] === 0x03e0 && masks[2] === 0x001f))
    bad('16-bit masks other than 5-5-5 and 5-6-5');
  const m32 = masks ?? [0xff0000, 0xff00, 0xff];
  if (bpp === 32 && !(m32[0] === 0xff0000 && m32[1] === 0xff00 && m32[2] === 0xff)) bad('32-bit masks other than 8-8-8');
  for (let y = 0; y < height; y++) {
    const row = dataOffset + (topDown ? y : height - 1 - y) * stride;
    let o = y * width * 3;
    if (bpp === 24 || bpp === 32) {
      const step = bpp / 8;
      for (let x = 0, i = row; x < width; x++, i += step, o += 3) {
        out[o] = b[i + 2]!;
        out[o + 1] = b[i + 1]!;
        out[o + 2] = b[i]!;
      }
    } else if (bpp === 16) {
      for (let x = 0, i = row; x < width; x++, i += 2, o += 3) {
        const t = b[i]! | (b[i + 1]! << 8);
        if (is565) {
          out[o] = (t >> 8) & 0xf8;
          out[o + 1] = (t >> 3) & 0xfc;
          out[o + 2] = (t << 3) & 0xf8;
        } else {
          out[o] = (t >> 7) & 0xf8;
          out[o + 1] = (t >> 2) & 0xf8;
          out[o + 2] = (t << 3) & 0xf8;
        }
      }
    } else {
      const perByte = 8 / bpp;
      const mask = (1 << bpp) - 1;
      for (let x = 0; x < width; x++, o += 3) {
        const byte = b[row + Math.floor(x / perByte)]!;
        const idx = (byte >> (8 - bpp * (1 + (x % perByte)))) & mask;
        out[o] = palette![idx * 3]!;
        out[o + 1] = palette![idx * 3 + 1]!;
        out[o + 2] = palette![idx * 3 + 2]!;
      }
    }
  }
  return { data: out, width, height };
}
