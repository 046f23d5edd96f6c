import { readFile } from 'node:fs/promises';
import sharp, { type Sharp } from 'sharp';
import { decodeBmp, isBmp } from '../../lib/bmp.js';
import type { Detection } from '../../contracts/topics.js';

/**
 * A sharp pipeline over an image file or buffer. BMP (which libvips cannot load; machine-vision
 * tools often write it) goes through loupe's decoder as raw RGB.
 */
export async function openImage(image: string | Buffer): Promise<Sharp> {
  return imageFromBytes(typeof image === 'string' ? await readFile(image) : image, typeof image === 'string' ? image : '<buffer>');
}

function imageFromBytes(bytes: Buffer, label: string): Sharp {
  if (isBmp(bytes)) {
    const bmp = decodeBmp(bytes, label);
    return sharp(bmp.data, { raw: { width: bmp.width, height: bmp.height, channels: 3 } });
  }
  return sharp(bytes, { failOn: 'error' });
}

/**
 * The image to upload within the configured limits: at most maxWidth×maxHeight and maxBytes,
 * JPEG. A JPEG that already fits is kept byte for byte unless `reencode` is set; otherwise it is
 * oriented (EXIF), resized and encoded, lowering quality and then size until it fits. Detection
 * boxes (pre-annotations) are scaled to the uploaded image.
 */
export interface PreparedImage {
  data: Buffer;
  width: number;
  height: number;
  detections: Detection[];
}

export async function prepareImage(
  path: string,
  src: { width: number; height: number; detections: Detection[] },
  limits: { maxWidth: number; maxHeight: number; jpegQuality: number; maxBytes: number; reencode: boolean },
): Promise<PreparedImage> {
  const bytes = await readFile(path);
  // The common case needs no image library: a JPEG whose size the detector already reported
  // (after EXIF orientation) and that fits the limits is uploaded byte for byte.
  const isJpeg = bytes.length > 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff;
  if (
    !limits.reencode &&
    isJpeg &&
    src.width > 0 &&
    src.height > 0 &&
    src.width <= limits.maxWidth &&
    src.height <= limits.maxHeight &&
    bytes.length <= limits.maxBytes
  ) {
    return { data: bytes, width: src.width, height: src.height, detections: src.detections };
  }
  const input = imageFromBytes(bytes, path);
  const meta = await input.metadata();
  // The detector reports sizes after EXIF orientation; so do we.
  const swap = (meta.orientation ?? 1) >= 5;
  const w = src.width || (swap ? meta.height : meta.width) || 0;
  const h = src.height || (swap ? meta.width : meta.height) || 0;
  const fits = w <= limits.maxWidth && h <= limits.maxHeight;
  if (!limits.reencode && fits && meta.format === 'jpeg' && bytes.length <= limits.maxBytes) {
    return { data: bytes, width: w, height: h, detections: src.detections };
  }
  let scale = Math.min(1, limits.maxWidth / w, limits.maxHeight / h);
  let quality = limits.jpegQuality;
  for (let i = 0; i < 20; i++) {
    const tw = Math.max(1, Math.round(w * scale));
    const th = Math.max(1, Math.round(h * scale));
    const data = await input.clone().rotate().resize(tw, th, { fit: 'fill' }).jpeg({ quality, mozjpeg: false }).toBuffer();
    if (data.length <= limits.maxBytes || (tw <= 16 && th <= 16)) {
      const sx = tw / w;
      const sy = th / h;
      const detections = src.detections.map((d) => ({
        ...d,
        xyxy: [d.xyxy[0] * sx, d.xyxy[1] * sy, d.xyxy[2] * sx, d.xyxy[3] * sy].map((v) => +v.toFixed(2)) as Detection['xyxy'],
      }));
      return { data, width: tw, height: th, detections };
    }
    if (quality > 50) quality -= 10;
    else scale *= 0.8;
  }
  throw new Error(`cannot fit ${path} into ${limits.maxBytes} bytes`);
}
