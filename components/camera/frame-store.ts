import { mkdir, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';

/**
 * Bounded on-disk store of recent frames, shared by path with Inference and Uploader (IPC
 * messages carry the path, never pixels). Frames are written to a temp name and renamed, so a
 * reader never sees half an image; when the store holds more than `maxFrames` or `maxBytes`
 * the oldest frames are deleted. Frames are transient (a crash may lose the newest), so there
 * is no fsync here: durability belongs to the uploader's spool.
 */
export class FrameStore {
  private readonly entries: { path: string; bytes: number }[] = [];
  private head = 0;
  private bytes = 0;
  private readonly made = new Set<string>();
  evicted = 0;

  constructor(
    readonly dir: string,
    private readonly maxFrames: number,
    private readonly maxBytes: number,
  ) {
    this.dir = resolve(dir);
  }

  /** Start empty: frames of an earlier run are no longer announced to anyone. */
  async init(): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    for (const d of await readdir(this.dir)) await rm(join(this.dir, d), { recursive: true, force: true });
  }

  async put(camera: string, name: string, data: Buffer): Promise<string> {
    const dir = join(this.dir, camera);
    if (!this.made.has(dir)) {
      await mkdir(dir, { recursive: true });
      this.made.add(dir);
    }
    const path = join(dir, name);
    const tmp = join(dir, `.${name}.tmp`);
    await writeFile(tmp, data).catch(async (e: NodeJS.ErrnoException) => {
      if (e.code !== 'ENOENT') throw e;
      await mkdir(dir, { recursive: true }); // the folder was removed under us
      await writeFile(tmp, data);
    });
    await rename(tmp, path);
    this.entries.push({ path, bytes: data.length });
    this.bytes += data.length;
    while (this.entries.length - this.head > this.maxFrames || (this.bytes > this.maxBytes && this.entries.length - this.head > 1)) {
      const old = this.entries[this.head++]!;
      this.bytes -= old.bytes;
      this.evicted++;
      await rm(old.path, { force: true });
    }
    if (this.head > 4096) {
      this.entries.splice(0, this.head);
      this.head = 0;
    }
    return path;
  }

  get size(): { frames: number; bytes: number } {
    return { frames: this.entries.length - this.head, bytes: this.bytes };
  }
}
