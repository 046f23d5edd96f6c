import { decodeImage } from '../detector/decode.js';
import { hamming, imageHashes, parseHash, type ImageHashes } from '../common/image-hash.js';

export { hamming } from '../common/image-hash.js';

/**
 * Perceptual hashes for de-duplicating near-identical frames (common/image-hash.ts: dHash and
 * pHash from one pass over the pixels). loupe.Inference computes them from the pixels it decoded
 * for the detector and sends them in its result (`hashes`, loupe.result/2), so the uploader
 * normally decodes nothing; for a result without them it decodes the frame with the detector's
 * own decoder, so both ways give the same bits.
 */
export async function frameHashes(image: string | Uint8Array): Promise<ImageHashes> {
  return imageHashes(await decodeImage(image));
}

export async function dhash(image: string | Uint8Array): Promise<bigint> {
  return parseHash((await frameHashes(image)).dhash);
}

export async function phash(image: string | Uint8Array): Promise<bigint> {
  return parseHash((await frameHashes(image)).phash);
}

/** Recent hashes per camera; `check` says whether a frame duplicates one of them. */
export class Deduper {
  private readonly recent = new Map<string, bigint[]>();

  constructor(private cfg: { hash: 'dhash' | 'phash'; maxDistance: number; window: number }) {}

  setConfig(cfg: { hash: 'dhash' | 'phash'; maxDistance: number; window: number }): void {
    if (cfg.hash !== this.cfg.hash) this.recent.clear();
    this.cfg = cfg;
  }

  /** The configured hash of a frame: from the result when Inference sent it, else by decoding the frame. */
  async hash(image: string | Uint8Array, carried?: Partial<ImageHashes>): Promise<{ hash: bigint; decoded: boolean }> {
    const h = carried?.[this.cfg.hash];
    if (typeof h === 'string' && /^[0-9a-f]{16}$/.test(h)) return { hash: parseHash(h), decoded: false };
    return { hash: parseHash((await frameHashes(image))[this.cfg.hash]), decoded: true };
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
