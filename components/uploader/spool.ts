import { mkdir, readdir, readFile, rm, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fsyncDir, writeFileAtomic } from '../../lib/fsutil.js';

/**
 * The uploader's durable spool: every selected image waits here until it is in S3.
 *
 * An item is two files: `<id>.jpg` (the image to upload) and `<id>.json` (its record: keys,
 * priority, the sidecar). Both are written with writeFileAtomic (temp file, fsync, rename,
 * fsync dir), image first; the record is the commit point. At start, images without a record
 * (a kill -9 or power loss mid-write) and temp files are deleted, so a half-written item is
 * never uploaded. After a successful upload the record goes first, then the image.
 *
 * The spool is bounded by bytes. When a new item does not fit, items are evicted by priority
 * (random passes before uncertain before defects) and, within a priority, oldest first; an item
 * is refused when everything left is more important than it. Items being uploaded are never
 * evicted.
 */
export interface SpoolRecord {
  id: string;
  frameId: string;
  camera: string;
  priority: number;
  reason: string;
  createdAt: number;
  imageKey: string;
  sidecarKey: string;
  sidecar: Record<string, unknown>;
  /** The image's perceptual hash (hex) and its kind, so a restart re-learns it even if the window file missed it. */
  dedup?: { hash: string; algo: string };
}

export interface SpoolItem extends SpoolRecord {
  bytes: number;
  attempts: number;
  nextAttemptAt: number;
  busy: boolean;
}

export type AddOutcome = { added: true; evicted: SpoolItem[] } | { added: false; reason: 'duplicate-id' | 'no-room'; evicted: SpoolItem[] };

export class Spool {
  private readonly items = new Map<string, SpoolItem>();
  private total = 0;
  readonly dir: string;

  constructor(
    dir: string,
    public maxBytes: number,
  ) {
    this.dir = resolve(dir);
  }

  /** Load committed items; remove half-written ones. Returns how many were removed. */
  async open(): Promise<{ loaded: number; removed: number }> {
    await mkdir(this.dir, { recursive: true });
    const names = await readdir(this.dir);
    const records = new Set(names.filter((n) => n.endsWith('.json') && !n.startsWith('.')).map((n) => n.slice(0, -5)));
    let removed = 0;
    for (const n of names) {
      const orphanImage = n.endsWith('.jpg') && !records.has(n.slice(0, -4));
      if (n.endsWith('.tmp') || orphanImage) {
        await rm(join(this.dir, n), { force: true });
        removed++;
      }
    }
    for (const id of records) {
      const img = join(this.dir, `${id}.jpg`);
      // no image beside the record: handled below as a record without its frame
      const st = await stat(img).catch(() => undefined);
      let rec: SpoolRecord | undefined;
      try {
        rec = JSON.parse(await readFile(join(this.dir, `${id}.json`), 'utf8')) as SpoolRecord;
      } catch {
        rec = undefined;
      }
      if (!st || !rec) {
        // A record whose image is gone (removed after upload, or damaged): nothing to upload.
        await rm(join(this.dir, `${id}.json`), { force: true });
        await rm(img, { force: true });
        removed++;
        continue;
      }
      const jsonBytes = (await stat(join(this.dir, `${id}.json`))).size;
      this.items.set(id, { ...rec, bytes: st.size + jsonBytes, attempts: 0, nextAttemptAt: 0, busy: false });
      this.total += st.size + jsonBytes;
    }
    if (removed) await fsyncDir(this.dir);
    return { loaded: this.items.size, removed };
  }

  has(frameId: string): boolean {
    for (const it of this.items.values()) if (it.frameId === frameId) return true;
    return false;
  }

  async add(rec: Omit<SpoolRecord, 'id'>, image: Buffer): Promise<AddOutcome> {
    const id = `${rec.createdAt.toString(36)}-${rec.frameId}`.replace(/[^A-Za-z0-9._-]/g, '_');
    if (this.items.has(id) || this.has(rec.frameId)) return { added: false, reason: 'duplicate-id', evicted: [] };
    const record: SpoolRecord = { id, ...rec };
    const json = JSON.stringify(record);
    const need = image.length + Buffer.byteLength(json);
    const evicted: SpoolItem[] = [];
    while (this.total + need > this.maxBytes) {
      const victim = this.victim();
      if (!victim || victim.priority > rec.priority) {
        return { added: false, reason: 'no-room', evicted };
      }
      await this.remove(victim.id);
      evicted.push(victim);
    }
    await writeFileAtomic(join(this.dir, `${id}.jpg`), image);
    await writeFileAtomic(join(this.dir, `${id}.json`), json);
    this.items.set(id, { ...record, bytes: need, attempts: 0, nextAttemptAt: 0, busy: false });
    this.total += need;
    return { added: true, evicted };
  }

  /** Lowest priority, then oldest, among items not being uploaded. */
  private victim(): SpoolItem | undefined {
    let v: SpoolItem | undefined;
    for (const it of this.items.values()) {
      if (it.busy) continue;
      if (!v || it.priority < v.priority || (it.priority === v.priority && it.createdAt < v.createdAt)) v = it;
    }
    return v;
  }

  /** Next item to upload: highest priority, then oldest, whose backoff has passed. */
  next(now = Date.now()): SpoolItem | undefined {
    let best: SpoolItem | undefined;
    for (const it of this.items.values()) {
      if (it.busy || it.nextAttemptAt > now) continue;
      if (!best || it.priority > best.priority || (it.priority === best.priority && it.createdAt < best.createdAt)) best = it;
    }
    return best;
  }

  /** When the earliest backed-off item becomes due (ms from now), or undefined if none waits. */
  nextDueInMs(now = Date.now()): number | undefined {
    let due: number | undefined;
    for (const it of this.items.values()) if (!it.busy) due = due === undefined ? it.nextAttemptAt : Math.min(due, it.nextAttemptAt);
    return due === undefined ? undefined : Math.max(0, due - now);
  }

  imagePath(it: SpoolItem): string {
    return join(this.dir, `${it.id}.jpg`);
  }

  /** Uploaded: drop the record (the commit point), then the image. */
  async remove(id: string): Promise<void> {
    const it = this.items.get(id);
    if (!it) return;
    await rm(join(this.dir, `${id}.json`), { force: true });
    await fsyncDir(this.dir);
    await rm(join(this.dir, `${id}.jpg`), { force: true });
    this.items.delete(id);
    this.total -= it.bytes;
  }

  /** Perceptual hashes of the items waiting (see Deduper.load). */
  dedupHashes(): { camera: string; hash: bigint; algo: string }[] {
    const out: { camera: string; hash: bigint; algo: string }[] = [];
    for (const it of this.items.values())
      if (it.dedup && /^[0-9a-f]{1,16}$/.test(it.dedup.hash))
        out.push({ camera: it.camera, hash: BigInt('0x' + it.dedup.hash), algo: it.dedup.algo });
    return out;
  }

  get pending(): number {
    return this.items.size;
  }

  get bytes(): number {
    return this.total;
  }

  oldestAgeS(now = Date.now()): number {
    let oldest = now;
    for (const it of this.items.values()) oldest = Math.min(oldest, it.createdAt);
    return (now - oldest) / 1000;
  }
}
