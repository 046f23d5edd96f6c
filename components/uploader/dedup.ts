import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { openImage } from './image.js';

/**
 * Perceptual hashes (64 bits) for de-duplicating near-identical frames (a part standing still
 * under the camera). dHash: 9×8 grey thumbnail, one bit per horizontal gradient sign. pHash:
 * 32×32 grey thumbnail, 2-D DCT, the 8×8 lowest frequencies (DC left out) against their median.
 * Both via sharp (BMP through openImage); written here because they are a few lines over sharp's resize.
 */
export async function dhash(image: string | Buffer): Promise<bigint> {
  const px = await (await openImage(image)).rotate().greyscale().resize(9, 8, { fit: 'fill', kernel: 'lanczos3' }).raw().toBuffer();
  let h = 0n;
  for (let y = 0; y < 8; y++) for (let x = 0; x < 8; x++) h = (h << 1n) | (px[y * 9 + x]! < px[y * 9 + x + 1]! ? 1n : 0n);
  return h;
}

const N = 32;
const COS = Array.from({ length: N }, (_, k) => Array.from({ length: N }, (_, n) => Math.cos(((2 * n + 1) * k * Math.PI) / (2 * N))));

export async function phash(image: string | Buffer): Promise<bigint> {
  const px = await (await openImage(image)).rotate().greyscale().resize(N, N, { fit: 'fill' }).raw().toBuffer();
  // Separable DCT-II, only the 8 lowest frequencies in each direction are needed.
  const rows: number[][] = [];
  for (let y = 0; y < N; y++) rows.push(Array.from({ length: 8 }, (_, k) => COS[k]!.reduce((s, c, x) => s + c * px[y * N + x]!, 0)));
  const coef: number[] = [];
  for (let ky = 0; ky < 8; ky++) for (let kx = 0; kx < 8; kx++) coef.push(COS[ky]!.reduce((s, c, y) => s + c * rows[y]![kx]!, 0));
  const ac = coef.slice(1);
  const median = [...ac].sort((a, b) => a - b)[Math.floor(ac.length / 2)]!;
  let h = 0n;
  for (const c of coef) h = (h << 1n) | (c > median ? 1n : 0n);
  return h;
}

/**
 * Exact: the first 64 bits of the frame's sha256, so only byte-identical frames match (with any
 * small maxDistance). For parts that look alike to a 64-bit perceptual hash: on the metal-tags
 * photos dHash at distance 3 calls 98 of 163 distinct tags duplicates, even distance 0 calls 45;
 * a camera that repeats frames byte for byte (a looping folder) is still de-duplicated.
 */
export async function exactHash(image: string | Buffer): Promise<bigint> {
  const bytes = typeof image === 'string' ? await readFile(image) : image;
  return createHash('sha256').update(bytes).digest().readBigUInt64BE(0);
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

export type DedupHash = 'dhash' | 'phash' | 'exact';

/** Recent hashes per camera; `check` says whether a frame duplicates one of them. */
export class Deduper {
  private readonly recent = new Map<string, bigint[]>();

  constructor(private cfg: { hash: DedupHash; maxDistance: number; window: number }) {}

  setConfig(cfg: { hash: DedupHash; maxDistance: number; window: number }): void {
    if (cfg.hash !== this.cfg.hash) this.recent.clear();
    this.cfg = cfg;
  }

  async hash(image: string | Buffer): Promise<bigint> {
    return this.cfg.hash === 'phash' ? phash(image) : this.cfg.hash === 'exact' ? exactHash(image) : dhash(image);
  }

  isDuplicate(camera: string, h: bigint): boolean {
    return (this.recent.get(camera) ?? []).some((r) => hamming(r, h) <= this.cfg.maxDistance);
  }

  remember(camera: string, h: bigint): void {
    const list = this.recent.get(camera) ?? [];
    list.push(h);
    if (list.length > this.cfg.window) list.splice(0, list.length - this.cfg.window);
    this.recent.set(camera, list);
  }
}
