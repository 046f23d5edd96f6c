/**
 * Perceptual hashes (64 bits) of a decoded RGB image, for the uploader's de-duplication of
 * near-identical frames (a part standing still under the camera):
 *  - dHash: 9×8 grey thumbnail, one bit per horizontal gradient sign (left < right);
 *  - pHash: 32×32 grey thumbnail, 2-D DCT-II, the 8×8 lowest frequencies against the median of
 *    the 63 AC terms.
 * Grey is BT.601 luma (0.299 R + 0.587 G + 0.114 B, as PIL's `convert('L')`), thumbnails are
 * box means over whole source pixels (every second one in each direction for frames of 64 px and more). Both come from ONE pass over the pixels, so loupe.Inference
 * can hash the frame it already decoded for the detector (well under a millisecond for a 450×300 frame) and carry
 * the hashes in its result: the uploader then reads no frame it does not upload. The uploader
 * hashes frames itself (same function, same pixels from the detector's decoder) only for results
 * that carry no hashes (older producers).
 * Written here because it is two box filters and a 32-point DCT; an image library would need a
 * second decode or a copy of the pixels to do the same.
 */
export interface RgbPixels {
  data: Uint8Array;
  width: number;
  height: number;
}

export interface ImageHashes {
  /** 16 hex digits each. */
  dhash: string;
  phash: string;
}

const P = 32;
const COS = Array.from({ length: 8 }, (_, k) =>
  Float64Array.from({ length: P }, (_, n) => Math.cos(((2 * n + 1) * k * Math.PI) / (2 * P))),
);

function bins(n: number, size: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = Math.min(size - 1, Math.floor((i * size) / n));
  return b;
}

const hex = (h: bigint): string => h.toString(16).padStart(16, '0');

export function imageHashes(img: RgbPixels): ImageHashes {
  const { data, width: w, height: h } = img;
  if (w < 1 || h < 1 || data.length < w * h * 3) throw new Error(`image hash: bad image ${w}x${h} (${data.length} bytes)`);
  // Every second pixel of every second row (all of them for small images): a 9×8 or 32×32 box
  // mean over a camera frame changes by well under one grey level, at a quarter of the work.
  const step = w >= 2 * P && h >= 2 * P ? 2 : 1;
  const dx = bins(w, 9);
  const dy = bins(h, 8);
  const px = bins(w, P);
  const py = bins(h, P);
  const dSum = new Float64Array(72);
  const dCnt = new Float64Array(72);
  const pSum = new Float64Array(P * P);
  const pCnt = new Float64Array(P * P);
  const pixels = data instanceof Uint8Array ? data : new Uint8Array(data);
  for (let y = 0; y < h; y += step) {
    const dRow = dy[y]! * 9;
    const pRow = py[y]! * P;
    let i = y * w * 3;
    for (let x = 0; x < w; x += step, i += 3 * step) {
      // BT.601 luma ×1000, integer: exact and cheap
      const g = 299 * pixels[i]! + 587 * pixels[i + 1]! + 114 * pixels[i + 2]!;
      const d = dRow + dx[x]!;
      dSum[d] += g;
      dCnt[d]++;
      const p = pRow + px[x]!;
      pSum[p] += g;
      pCnt[p]++;
    }
  }
  // Images narrower or shorter than a thumbnail leave empty bins: they read as 0.
  const mean = (s: Float64Array, c: Float64Array, k: number) => (c[k] ? s[k]! / c[k]! : 0);
  let d = 0n;
  for (let y = 0; y < 8; y++)
    for (let x = 0; x < 8; x++) d = (d << 1n) | (mean(dSum, dCnt, y * 9 + x) < mean(dSum, dCnt, y * 9 + x + 1) ? 1n : 0n);
  // Separable DCT-II; only the 8 lowest frequencies in each direction are needed.
  const rows = new Float64Array(P * 8);
  for (let y = 0; y < P; y++) {
    for (let k = 0; k < 8; k++) {
      let s = 0;
      const c = COS[k]!;
      for (let x = 0; x < P; x++) s += c[x]! * mean(pSum, pCnt, y * P + x);
      rows[y * 8 + k] = s;
    }
  }
  const coef = new Float64Array(64);
  for (let ky = 0; ky < 8; ky++) {
    const c = COS[ky]!;
    for (let kx = 0; kx < 8; kx++) {
      let s = 0;
      for (let y = 0; y < P; y++) s += c[y]! * rows[y * 8 + kx]!;
      coef[ky * 8 + kx] = s;
    }
  }
  const ac = Array.from(coef.subarray(1)).sort((a, b) => a - b);
  const median = ac[Math.floor(ac.length / 2)]!;
  let p = 0n;
  for (let k = 0; k < 64; k++) p = (p << 1n) | (coef[k]! > median ? 1n : 0n);
  return { dhash: hex(d), phash: hex(p) };
}

export function parseHash(hexDigits: string): bigint {
  if (!/^[0-9a-f]{16}$/.test(hexDigits)) throw new Error(`not a 64-bit hex hash: ${hexDigits}`);
  return BigInt(`0x${hexDigits}`);
}

export function hamming(a: bigint, b: bigint): number {
  let x = a ^ b;
  let n = 0;
  while (x) {
    x &= x - 1n;
    n++;
  }
  return n;
}
