import { readdir, readFile, stat } from 'node:fs/promises';
import { extname, join, resolve } from 'node:path';
import { z } from 'zod';
import { LoupeError } from '../../../lib/errors.js';
import type { Frame, FrameSource } from './source.js';

/**
 * Folder camera: images from a folder (and its sub-folders), in name order. `once` reads them
 * in order and ends; `loop` starts over at the end; `watch` reads what is there, then each new
 * file as it appears (written by a capture tool; a file is taken once its size stopped
 * changing between two polls, so a half-written image is not read).
 */
export const folderSchema = z.object({
  type: z.literal('folder'),
  path: z.string().min(1),
  mode: z.enum(['once', 'loop', 'watch']).default('loop'),
  recursive: z.boolean().default(true),
  extensions: z.array(z.string()).default(['.jpg', '.jpeg', '.png', '.bmp', '.webp']),
  pollMs: z.number().int().min(10).default(250),
});
export type FolderConfig = z.infer<typeof folderSchema>;

export class FolderSource implements FrameSource {
  readonly kind = 'folder';
  private files: string[] = [];
  private idx = 0;
  private readonly seen = new Set<string>();
  private readonly sizes = new Map<string, number>();
  private closed = false;

  constructor(private readonly cfg: FolderConfig) {}

  async open(): Promise<void> {
    this.closed = false;
    const root = resolve(this.cfg.path);
    // a missing or unreadable folder is reported just below
    const st = await stat(root).catch(() => undefined);
    if (!st?.isDirectory()) throw new LoupeError('camera.folder', 'is not a readable folder', { input: `source.path ${root}` });
    if (this.files.length === 0 || this.cfg.mode !== 'watch') {
      this.files = await this.list();
      if (this.cfg.mode !== 'watch') this.idx = Math.min(this.idx, this.files.length);
      for (const f of this.files) this.seen.add(f);
    }
  }

  private async list(): Promise<string[]> {
    const exts = new Set(this.cfg.extensions.map((e) => e.toLowerCase()));
    const out: string[] = [];
    const walk = async (dir: string) => {
      const entries = await readdir(dir, { withFileTypes: true });
      for (const e of entries) {
        const p = join(dir, e.name);
        if (e.isDirectory() && this.cfg.recursive) await walk(p);
        else if (e.isFile() && exts.has(extname(e.name).toLowerCase()) && !e.name.startsWith('.')) out.push(p);
      }
    };
    await walk(resolve(this.cfg.path));
    return out.sort();
  }

  async next(): Promise<Frame | null> {
    for (;;) {
      if (this.closed) return null;
      if (this.idx < this.files.length) {
        const path = this.files[this.idx++]!;
        const data = await readFile(path);
        return { data, ext: extname(path).slice(1).toLowerCase() || 'jpg', origin: path };
      }
      if (this.cfg.mode === 'once') return null;
      if (this.cfg.mode === 'loop') {
        if (this.files.length === 0) throw new LoupeError('camera.folder', 'holds no images', { input: `source.path ${this.cfg.path}` });
        this.idx = 0;
        continue;
      }
      await this.pollNew();
      if (this.idx >= this.files.length) await new Promise((r) => setTimeout(r, this.cfg.pollMs));
    }
  }

  private async pollNew(): Promise<void> {
    for (const f of await this.list()) {
      if (this.seen.has(f)) continue;
      // a file removed between listing and stat is simply not a frame
      const size = (await stat(f).catch(() => undefined))?.size;
      if (size === undefined) continue;
      if (this.sizes.get(f) === size && size > 0) {
        this.seen.add(f);
        this.sizes.delete(f);
        this.files.push(f);
      } else this.sizes.set(f, size);
    }
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}
