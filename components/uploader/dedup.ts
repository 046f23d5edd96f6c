import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { Logger } from 'pino';
import { errorMessage } from '../../lib/errors.js';
import { writeFileAtomic } from '../../lib/fsutil.js';
import { decodeImage } from '../detector/decode.js';
import { hamming, imageHashes, parseHash, type ImageHashes } from '../../lib/image-hash.js';

export { hamming } from '../../lib/image-hash.js';

/**
 * Perceptual hashes for de-duplicating near-identical frames (lib/image-hash.ts: dHash and
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

/**
 * Kept on disk beside the spool so a restart does not forget what was already sent. /2: hashes
 * from lib/image-hash.ts (a /1 file holds sharp-made hashes, which do not compare: ignored).
 */
export const DEDUP_SCHEMA = 'loupe.uploader.dedup/2';
/** Cameras whose windows are kept (the most recently used); bounds the file with `window`. */
export const DEDUP_MAX_CAMERAS = 64;

/**
 * Exact: the first 64 bits of the frame's sha256, so only byte-identical frames match (with any
 * small maxDistance). For parts that look alike to a 64-bit perceptual hash: on the metal-tags
 * photos dHash at distance 3 calls 98 of 163 distinct tags duplicates, even distance 0 calls 45;
 * a camera that repeats frames byte for byte (a looping folder) is still de-duplicated.
 */
export async function exactHash(image: string | Uint8Array): Promise<bigint> {
  const bytes = typeof image === 'string' ? await readFile(image) : image;
  return createHash('sha256').update(bytes).digest().readBigUInt64BE(0);
}

export type DedupHash = 'dhash' | 'phash' | 'exact';

type DedupConfig = { hash: DedupHash; maxDistance: number; window: number };

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
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT')
          this.store.log?.warn({ file, err: errorMessage(e) }, 'de-duplication window unreadable: starting empty');
      }
      if (text !== undefined) {
        try {
          const v = JSON.parse(text) as { schema?: unknown; hash?: unknown; cameras?: unknown };
          if (v?.schema !== DEDUP_SCHEMA) throw new Error(`schema ${JSON.stringify(v?.schema)}, expected ${DEDUP_SCHEMA}`);
          if (v.hash === this.cfg.hash && v.cameras && typeof v.cameras === 'object') {
            for (const [camera, list] of Object.entries(v.cameras as Record<string, unknown>)) {
              if (!Array.isArray(list)) throw new Error(`camera ${camera}: not a list`);
              const hashes = list.map((h) => {
                if (typeof h !== 'string' || !/^[0-9a-f]{1,16}$/.test(h))
                  throw new Error(`camera ${camera}: bad hash ${JSON.stringify(h)}`);
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

  /** The configured hash of a frame: from the result when Inference sent it, else by decoding the frame. */
  async hash(image: string | Uint8Array, carried?: Partial<ImageHashes>): Promise<{ hash: bigint; decoded: boolean }> {
    if (this.cfg.hash === 'exact') return { hash: await exactHash(image), decoded: false };
    const h = carried?.[this.cfg.hash];
    if (typeof h === 'string' && /^[0-9a-f]{16}$/.test(h)) return { hash: parseHash(h), decoded: false };
    return { hash: parseHash((await frameHashes(image))[this.cfg.hash]), decoded: true };
  }

  get algo(): DedupHash {
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
