import sharp, { type OverlayOptions, type Sharp } from 'sharp';
import type { RgbImage } from '../../components/detector/decode.js';

/**
 * Boxes drawn on images, for people: `loupe detect --save`, the evaluator's image grids and the
 * gate report. Drawn with sharp (libvips) by compositing an SVG overlay (librsvg renders the
 * text with fontconfig's DejaVu Sans), the field's image library already used by the detector;
 * colours are ultralytics' palette, line width and label style follow its Annotator.
 */
export const PALETTE = [
  'FF3838',
  'FF9D97',
  'FF701F',
  'FFB21D',
  'CFD231',
  '48F90A',
  '92CC17',
  '3DDB86',
  '1A9334',
  '00D4BB',
  '2C99A8',
  '00C2FF',
  '344593',
  '6473FF',
  '0018EC',
  '8438FF',
  '520085',
  'CB38FF',
  'FF95C8',
  'FF37C7',
];

export function classColor(cls: number): string {
  return `#${PALETTE[((cls % PALETTE.length) + PALETTE.length) % PALETTE.length]}`;
}

export interface DrawBox {
  xyxy: [number, number, number, number] | number[];
  /** label text, e.g. "scratch 0.87" */
  label?: string;
  color?: string;
  /** dashed outline (truth boxes, misses) */
  dashed?: boolean;
}

const esc = (s: string) => s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

/** Black or white text, whichever reads better on `hex` (ultralytics' rule of thumb). */
function textColor(hex: string): string {
  const n = parseInt(hex.slice(1), 16);
  const [r, g, b] = [(n >> 16) & 255, (n >> 8) & 255, n & 255];
  return 0.299 * r + 0.587 * g + 0.114 * b > 150 ? '#000' : '#fff';
}

/** The SVG overlay for an image of `width` x `height` (line width as ultralytics: 0.3 % of the mean side, at least 2). */
export function overlaySvg(width: number, height: number, boxes: DrawBox[], opts: { lineWidth?: number } = {}): string {
  const lw = opts.lineWidth ?? Math.max(Math.round(((width + height) / 2) * 0.003), 2);
  const fs = Math.max(11, Math.round(lw * 5.5));
  const parts: string[] = [`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">`];
  for (const b of boxes) {
    const [x1, y1, x2, y2] = b.xyxy.map((v) => Math.round(v)) as [number, number, number, number];
    const color = b.color ?? '#FF3838';
    parts.push(
      `<rect x="${x1 + lw / 2}" y="${y1 + lw / 2}" width="${Math.max(1, x2 - x1 - lw)}" height="${Math.max(1, y2 - y1 - lw)}" fill="none" stroke="${color}" stroke-width="${lw}"${b.dashed ? ` stroke-dasharray="${lw * 3} ${lw * 2}"` : ''}/>`,
    );
    if (b.label) {
      const tw = Math.ceil(b.label.length * fs * 0.6) + 6;
      const th = fs + 4;
      // Label above the box when it fits, inside it otherwise (as ultralytics does).
      const above = y1 - th >= 0;
      const ty = above ? y1 - th : y1;
      const tx = Math.min(Math.max(0, x1), Math.max(0, width - tw));
      parts.push(`<rect x="${tx}" y="${ty}" width="${tw}" height="${th}" fill="${color}"/>`);
      parts.push(
        `<text x="${tx + 3}" y="${ty + fs}" font-family="DejaVu Sans, sans-serif" font-size="${fs}" fill="${textColor(color)}">${esc(b.label)}</text>`,
      );
    }
  }
  parts.push('</svg>');
  return parts.join('');
}

/** An image (file, encoded bytes or decoded RGB) as upright pixels, as the detector sees it. */
export function uprightImage(image: string | Uint8Array | RgbImage): Sharp {
  if (typeof image === 'object' && !(image instanceof Uint8Array)) {
    return sharp(Buffer.from(image.data.buffer, image.data.byteOffset, image.data.byteLength), {
      raw: { width: image.width, height: image.height, channels: 3 },
    });
  }
  // EXIF orientation applied, like the detector's decoder (and cv2.imread).
  return sharp(typeof image === 'string' ? image : Buffer.from(image)).rotate();
}

/** The image with the boxes drawn, as a sharp pipeline (choose the output format with .jpeg()/.png()). */
export async function annotate(image: string | Uint8Array | RgbImage, boxes: DrawBox[], opts: { lineWidth?: number } = {}): Promise<Sharp> {
  const { data, info } = await uprightImage(image).removeAlpha().toColourspace('srgb').raw().toBuffer({ resolveWithObject: true });
  const base = sharp(data, { raw: { width: info.width, height: info.height, channels: info.channels as 3 } });
  if (!boxes.length) return base;
  return base.composite([{ input: Buffer.from(overlaySvg(info.width, info.height, boxes, opts)), top: 0, left: 0 }]);
}

/** Detections in the usual look: class colour, "name conf" label. */
export function detectionBoxes(dets: Array<{ xyxy: number[]; conf: number; cls: number; name: string }>): DrawBox[] {
  return dets.map((d) => ({ xyxy: d.xyxy, label: `${d.name} ${d.conf.toFixed(2)}`, color: classColor(d.cls) }));
}

/**
 * Tiles in a grid (ultralytics' val_batch mosaics): each image fitted into a `tile` square on
 * grey, its caption below. Returns the JPEG bytes.
 */
export async function mosaic(
  tiles: Array<{ image: Buffer; caption?: string }>,
  opts: { cols?: number; tile?: number } = {},
): Promise<Buffer> {
  const cols = opts.cols ?? Math.ceil(Math.sqrt(tiles.length));
  const tile = opts.tile ?? 320;
  const cap = 18;
  const rows = Math.ceil(tiles.length / cols);
  const W = cols * tile;
  const H = rows * (tile + cap);
  const layers: OverlayOptions[] = [];
  const captions: string[] = [];
  for (let i = 0; i < tiles.length; i++) {
    const t = tiles[i]!;
    const fitted = await sharp(t.image)
      .resize(tile, tile, { fit: 'contain', background: { r: 114, g: 114, b: 114 } })
      .png()
      .toBuffer();
    const x = (i % cols) * tile;
    const y = Math.floor(i / cols) * (tile + cap);
    layers.push({ input: fitted, left: x, top: y });
    if (t.caption) {
      const text = t.caption.length > 48 ? `…${t.caption.slice(-47)}` : t.caption;
      captions.push(
        `<text x="${x + 4}" y="${y + tile + 13}" font-family="DejaVu Sans, sans-serif" font-size="11" fill="#fff">${esc(text)}</text>`,
      );
    }
  }
  layers.push({
    input: Buffer.from(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}">${captions.join('')}</svg>`),
    left: 0,
    top: 0,
  });
  return sharp({ create: { width: W, height: H, channels: 3, background: { r: 32, g: 32, b: 32 } } })
    .composite(layers)
    .jpeg({ quality: 90 })
    .toBuffer();
}

/** An SVG picture (plots) as PNG bytes. */
export function svgToPng(svg: string, density = 144): Promise<Buffer> {
  return sharp(Buffer.from(svg), { density }).png().toBuffer();
}
