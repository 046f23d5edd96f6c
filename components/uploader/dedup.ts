import { readFile } from 'node:fs/promises';
import type { Logger } from 'pino';
import { errorMessage } from '../../lib/errors.js';
import { writeFileAtomic } from '../../lib/fsutil.js';
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

export function hamming(a: bigint, b: bigint): number {
  let x = a ^ b;
  let n = 0;
  while (x) {
    x &= x - 1n;
    n++;
  }
  return n;
}

/** Kept on disk beside the spool so a restart does not forget what was already sent. */
export const DEDUP_SCHEMA = 'loupe.uploader.dedup/1';
/** Cameras whose windows are kept (the most recently used); bounds the file with `window`. */
export const DEDUP_MAX_CAMERAS = 64;

type DedupConfig = { hash: 'dhash' | 'phash'; maxDistance: number; window: number };

/**
 * Recent hashes per camera; `isDuplicate` says whether a frame duplicates one of them. With a
 * `file`, the window survives restarts: `load()` reads it (a missing, corrupt, foreign-schema
 * or other-hash file starts empty, with a warning), and every `remember` rewrites it atomically
 * (writes are serialised; the file is small: at most DEDUP_MAX_CAMERAS × window hashes).
 */
export class Deduper {
  /** camera → hashes, oldest first; Map order = least recently used camera first. */
  private readonly recent = new Map<string, bigint[]>();
  private writing: Promise<void> = Promise.resolve();

  constructor(
    private cfg: DedupConfig,
    private readonly store: { file?: string; log?: Logger } = {},
  ) {}

  setConfig(cfg: DedupConfig): void {
    if (cfg.hash !== this.cfg.hash) this.recent.clear();
    this.cfg = cfg;
    for (const list of this.recent.values()) if (list.length > cfg.window) list.splice(0, list.length - cfg.window);
  }

  /** Read the saved window, then add `extra` (hashes of items still in the spool). */
  async load(extra: { camera: string; hash: bigint; algo: string }[] = []): Promise<void> {
    const file = this.store.file;
    if (file) {
      let text: string | undefined;
      try {
        text = await readFile(file, 'utf8');
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') this.store.log?.warn({ file, err: errorMessage(e) }, 'de-duplication window unreadable: starting empty');
      }
      if (text !== undefined) {
        try {
          const v = JSON.parse(text) as { schema?: unknown; hash?: unknown; cameras?: unknown };
          if (v?.schema !== DEDUP_SCHEMA) throw new Error(`schema ${JSON.stringify(v?.schema)}, expected ${DEDUP_SCHEMA}`);
          if (v.hash === this.cfg.hash && v.cameras && typeof v.cameras === 'object') {
            for (const [camera, list] of Object.entries(v.cameras as Record<string, unknown>)) {
              if (!Array.isArray(list)) throw new Error(`camera ${camera}: not a list`);
              const hashes = list.map((h) => {
                if (typeof h !== 'string' || !/^[0-9a-f]{1,16}$/.test(h)) throw new Error(`camera ${camera}: bad hash ${JSON.stringify(h)}`);
                return BigInt('0x' + h);
              });
              this.recent.set(camera, hashes.slice(-this.cfg.window));
            }
          }
        } catch (e) {
          this.recent.clear();
          this.store.log?.warn({ file, err: errorMessage(e) }, 'de-duplication window not usable: starting empty');
        }
      }
    }
    for (const x of extra) if (x.algo === this.cfg.hash && !this.isDuplicate(x.camera, x.hash)) this.add(x.camera, x.hash);
    this.trimCameras();
  }

  async hash(image: string | Buffer): Promise<bigint> {
    return this.cfg.hash === 'phash' ? phash(image) : dhash(image);
  }

  get algo(): 'dhash' | 'phash' {
    return this.cfg.hash;
  }

  isDuplicate(camera: string, h: bigint): boolean {
    return (this.recent.get(camera) ?? []).some((r) => hamming(r, h) <= this.cfg.maxDistance);
  }

  private add(camera: string, h: bigint): void {
    const list = this.recent.get(camera) ?? [];
    this.recent.delete(camera); // re-insert: most recently used last
    list.push(h);
    if (list.length > this.cfg.window) list.splice(0, list.length - this.cfg.window);
    this.recent.set(camera, list);
  }

  private trimCameras(): void {
    while (this.recent.size > DEDUP_MAX_CAMERAS) this.recent.delete(this.recent.keys().next().value!);
  }

  /** Remember an uploaded frame's hash (and save the window when it has a file). */
  remember(camera: string, h: bigint): Promise<void> {
    this.add(camera, h);
    this.trimCameras();
    const file = this.store.file;
    if (!file) return Promise.resolve();
    // Serialised: each write saves the state as it is when that write starts.
    this.writing = this.writing.then(() => {
      const cameras = Object.fromEntries([...this.recent].map(([c, l]) => [c, l.map((x) => x.toString(16))]));
      return writeFileAtomic(file, JSON.stringify({ schema: DEDUP_SCHEMA, hash: this.cfg.hash, cameras })).catch((e) =>
        this.store.log?.warn({ file, err: errorMessage(e) }, 'could not save the de-duplication window'),
      );
    });
    return this.writing;
  }
}
