import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, existsSync } from 'node:fs';
import { mkdir, open, rename, rm, stat } from 'node:fs/promises';
import { extname, join, relative } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Transform } from 'node:stream';
import { LoupeError } from '../../lib/errors.js';
import { fsyncDir } from '../../lib/fsutil.js';

/**
 * Content-addressed artefact store: each file lives once under `<root>/sha256/<aa>/<digest><ext>`,
 * named by the SHA-256 of its bytes, so registering the same model twice stores nothing twice
 * and a stored file can always be checked against its name. Files are copied into a temp file
 * beside their final place while hashing, fsynced, then renamed (the commit point): a crash
 * leaves at most a stray temp file, never a half-written artefact under a digest name.
 */
export interface ArtefactRef {
  sha256: string;
  size: number;
  /** File extension kept for readers (".onnx", ".pt", ".json"). */
  ext: string;
}

export class ArtefactStore {
  /**
   * Brings a stored file that is not on this disk (a loop home kept in S3 pulls artefacts only
   * when they are used: cloud/serverless/state-home.ts); given the path relative to the root.
   * What it brings is checked against the digest like any stored file.
   */
  fetchMissing?: (relPath: string) => Promise<void>;

  constructor(readonly root: string) {}

  pathOf(ref: Pick<ArtefactRef, 'sha256' | 'ext'>): string {
    return join(this.root, 'sha256', ref.sha256.slice(0, 2), ref.sha256 + ref.ext);
  }

  /** Copy `src` into the store (no-op when the same content is already there). */
  async put(src: string): Promise<ArtefactRef> {
    if (!existsSync(src)) throw new LoupeError('ARTEFACT_MISSING', 'artefact file not found', { input: src });
    const ext = extname(src).toLowerCase();
    const tmpDir = join(this.root, 'tmp');
    await mkdir(tmpDir, { recursive: true });
    const tmp = join(tmpDir, `${randomBytes(8).toString('hex')}${ext}`);
    const hash = createHash('sha256');
    let size = 0;
    const tap = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        hash.update(chunk);
        size += chunk.length;
        cb(null, chunk);
      },
    });
    try {
      const out = createWriteStream(tmp, { flags: 'wx' });
      await pipeline(createReadStream(src), tap, out);
      const fh = await open(tmp, 'r+');
      await fh.sync();
      await fh.close();
      const ref: ArtefactRef = { sha256: hash.digest('hex'), size, ext };
      const final = this.pathOf(ref);
      if (existsSync(final)) {
        await rm(tmp, { force: true });
        return ref;
      }
      await mkdir(join(this.root, 'sha256', ref.sha256.slice(0, 2)), { recursive: true });
      await rename(tmp, final);
      await fsyncDir(join(this.root, 'sha256', ref.sha256.slice(0, 2)));
      return ref;
    } catch (e) {
      await rm(tmp, { force: true });
      throw e;
    }
  }

  /** Path of a stored artefact after checking its size and digest (detects bit rot / tampering). */
  async verified(ref: ArtefactRef): Promise<string> {
    const p = this.pathOf(ref);
    if (!existsSync(p) && this.fetchMissing) await this.fetchMissing(relative(this.root, p));
    if (!existsSync(p)) throw new LoupeError('ARTEFACT_MISSING', `artefact ${ref.sha256}${ref.ext} is not in the store`, { input: p });
    const st = await stat(p);
    const hash = createHash('sha256');
    for await (const chunk of createReadStream(p)) hash.update(chunk as Buffer);
    const digest = hash.digest('hex');
    if (st.size !== ref.size || digest !== ref.sha256) {
      throw new LoupeError('ARTEFACT_CORRUPT', `stored artefact does not match its digest (got ${digest}, ${st.size} bytes)`, { input: p });
    }
    return p;
  }
}
