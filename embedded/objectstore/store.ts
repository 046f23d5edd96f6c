import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { copyFile, mkdir, open, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { fsyncDir, writeFileAtomic } from '../../lib/fsutil.js';
import { compositeChecksum, newHasher, type ChecksumAlgorithm, type StoredChecksum } from './checksums.js';
import { noSuchBucket, noSuchKey, noSuchUpload, S3Error } from './errors.js';

/**
 * The object store's persisted state, in a folder:
 *
 *   buckets/<bucket>/bucket.json                       bucket record
 *   buckets/<bucket>/objects/<h2>/<h>.json             object record (h = sha256 of the key)
 *   buckets/<bucket>/objects/<h2>/<h>.<rand>.data      its bytes
 *   uploads/<uploadId>/upload.json, part-<n>.json, part-<n>.<rand>.data   multipart uploads
 *   tmp/                                               request bodies being received
 *
 * Every write goes to a fresh data file that is fsynced before the record naming it is
 * replaced atomically (writeFileAtomic): the record is the commit point, so a kill -9 leaves
 * either the old object or the new one, never a torn one. Unreferenced data files and tmp/
 * are swept at start. Keys map to hashed file names because S3 keys may hold any characters.
 * An in-memory index (loaded at start) serves listings.
 */
export interface ObjectRecord {
  key: string;
  size: number;
  etag: string; // quoted, as on the wire
  lastModified: string; // ISO-8601
  contentType: string;
  headers: Record<string, string>; // content-encoding, cache-control, ... as given at PUT
  metadata: Record<string, string>; // x-amz-meta-* without the prefix
  checksum?: StoredChecksum;
  /** multipart objects: how many parts, and each part's size and checksum (GET ?partNumber=) */
  parts?: number;
  partList?: PartInfo[];
  dataFile: string; // basename beside the record
}

/** One part of a completed multipart object. Records written before this field existed lack it. */
export interface PartInfo {
  size: number;
  checksum?: string;
}

export interface UploadRecord {
  uploadId: string;
  bucket: string;
  key: string;
  initiated: string;
  contentType: string;
  headers: Record<string, string>;
  metadata: Record<string, string>;
  checksumAlgorithm?: ChecksumAlgorithm;
  checksumType?: 'FULL_OBJECT' | 'COMPOSITE';
}

export interface PartRecord {
  partNumber: number;
  size: number;
  etag: string;
  lastModified: string;
  checksum?: StoredChecksum;
  dataFile: string;
}

export interface CompletedUpload {
  bucket: string;
  key: string;
  etag: string;
  checksum?: StoredChecksum;
  completed: string;
}

export interface BucketRecord {
  name: string;
  created: string;
}

/** A body already received into tmp/ and verified, ready to be committed. */
export interface ReceivedBody {
  tmpPath: string;
  size: number;
  md5: Buffer;
  checksum?: StoredChecksum;
}

export interface ObjectInput {
  contentType: string;
  headers: Record<string, string>;
  metadata: Record<string, string>;
}

const keyHash = (key: string): string => createHash('sha256').update(key, 'utf8').digest('hex');
const rand = (): string => randomBytes(8).toString('hex');

export class ObjectStoreState {
  private readonly buckets = new Map<string, { record: BucketRecord; objects: Map<string, ObjectRecord>; sorted: string[] | null }>();
  /** Writes to one key run one after another, so the record and its data file stay paired. */
  private readonly keyLocks = new Map<string, Promise<unknown>>();

  private constructor(readonly dir: string) {}

  static async open(dir: string): Promise<ObjectStoreState> {
    const s = new ObjectStoreState(dir);
    await mkdir(join(dir, 'buckets'), { recursive: true });
    await mkdir(join(dir, 'uploads'), { recursive: true });
    await rm(join(dir, 'tmp'), { recursive: true, force: true });
    await mkdir(join(dir, 'tmp'), { recursive: true });
    await s.load();
    await s.sweepCompleted();
    return s;
  }

  private async sweepCompleted(): Promise<void> {
    const cutoff = Date.now() - 24 * 3600 * 1000;
    for (const id of await readdir(join(this.dir, 'uploads'))) {
      const marker = join(this.dir, 'uploads', id, 'completed.json');
      // no completion marker: the upload is not complete
      const st = await stat(marker).catch(() => undefined);
      if (st && st.mtimeMs < cutoff) await rm(join(this.dir, 'uploads', id), { recursive: true, force: true });
    }
  }

  tmpPath(): string {
    return join(this.dir, 'tmp', `${Date.now()}-${rand()}`);
  }

  private async load(): Promise<void> {
    for (const name of await readdir(join(this.dir, 'buckets'))) {
      const bdir = join(this.dir, 'buckets', name);
      let record: BucketRecord;
      try {
        record = JSON.parse(await readFile(join(bdir, 'bucket.json'), 'utf8')) as BucketRecord;
      } catch {
        continue; // a bucket whose creation never committed
      }
      const objects = new Map<string, ObjectRecord>();
      const odir = join(bdir, 'objects');
      for (const h2 of await readdir(odir).catch(() => [] as string[])) {
        const files = await readdir(join(odir, h2));
        const referenced = new Set<string>();
        for (const f of files.filter((x) => x.endsWith('.json') && !x.startsWith('.'))) {
          try {
            const rec = JSON.parse(await readFile(join(odir, h2, f), 'utf8')) as ObjectRecord;
            objects.set(rec.key, rec);
            referenced.add(rec.dataFile);
          } catch {
            // unreadable record: treat as absent (writeFileAtomic never leaves a partial one)
          }
        }
        // Data files a crash left without a record, and atomic-write temp files.
        for (const f of files) {
          if ((f.endsWith('.data') && !referenced.has(f)) || f.endsWith('.tmp')) await rm(join(odir, h2, f), { force: true });
        }
      }
      this.buckets.set(name, { record, objects, sorted: null });
    }
  }

  private bucket(name: string) {
    const b = this.buckets.get(name);
    if (!b) throw noSuchBucket(name);
    return b;
  }

  hasBucket(name: string): boolean {
    return this.buckets.has(name);
  }

  listBuckets(): BucketRecord[] {
    return [...this.buckets.values()].map((b) => b.record).sort((a, b) => (a.name < b.name ? -1 : 1));
  }

  async createBucket(name: string): Promise<void> {
    if (this.buckets.has(name)) {
      throw new S3Error(
        'BucketAlreadyOwnedByYou',
        409,
        'Your previous request to create the named bucket succeeded and you already own it.',
        name,
      );
    }
    const record: BucketRecord = { name, created: new Date().toISOString() };
    this.buckets.set(name, { record, objects: new Map(), sorted: null });
    await mkdir(join(this.dir, 'buckets', name, 'objects'), { recursive: true });
    await writeFileAtomic(join(this.dir, 'buckets', name, 'bucket.json'), JSON.stringify(record));
  }

  async deleteBucket(name: string): Promise<void> {
    const b = this.bucket(name);
    if (b.objects.size > 0) throw new S3Error('BucketNotEmpty', 409, 'The bucket you tried to delete is not empty', name);
    this.buckets.delete(name);
    await rm(join(this.dir, 'buckets', name, 'bucket.json'), { force: true });
    await rm(join(this.dir, 'buckets', name), { recursive: true, force: true });
  }

  hasObject(bucket: string, key: string): boolean {
    return this.bucket(bucket).objects.has(key);
  }

  /** PUT/Copy If-Match: 404 when there is no object, 412 when its ETag is not one of those given. */
  checkIfMatch(bucket: string, key: string, ifMatch: string): void {
    const rec = this.bucket(bucket).objects.get(key);
    if (!rec) throw noSuchKey(key);
    const want = ifMatch.split(',').map((t) => t.trim().replace(/^W\//, '').replace(/"/g, ''));
    if (!want.some((t) => t === '*' || t === rec.etag.replace(/"/g, ''))) {
      throw new S3Error('PreconditionFailed', 412, 'At least one of the pre-conditions you specified did not hold', 'If-Match');
    }
  }

  /** PUT If-None-Match: 412 when the object exists and is `*` or one of the ETags given. */
  checkIfNoneMatch(bucket: string, key: string, ifNoneMatch: string): void {
    const rec = this.bucket(bucket).objects.get(key);
    if (!rec) return;
    const tags = ifNoneMatch.split(',').map((t) => t.trim().replace(/^W\//, '').replace(/"/g, ''));
    if (tags.some((t) => t === '*' || t === rec.etag.replace(/"/g, ''))) {
      throw new S3Error('PreconditionFailed', 412, 'At least one of the pre-conditions you specified did not hold', 'If-None-Match');
    }
  }

  getObject(bucket: string, key: string): ObjectRecord {
    const rec = this.bucket(bucket).objects.get(key);
    if (!rec) throw noSuchKey(key);
    return rec;
  }

  dataPath(bucket: string, rec: ObjectRecord): string {
    return join(this.objectDir(bucket, rec.key), rec.dataFile);
  }

  /** Keys in byte order of their UTF-8 encoding... S3 sorts by UTF-8 bytes; JS string order agrees except for astral vs. BMP-high chars, accepted here. */
  sortedKeys(bucket: string): string[] {
    const b = this.bucket(bucket);
    if (!b.sorted) b.sorted = [...b.objects.keys()].sort();
    return b.sorted;
  }

  private objectDir(bucket: string, key: string): string {
    const h = keyHash(key);
    return join(this.dir, 'buckets', bucket, 'objects', h.slice(0, 2));
  }

  private async withKeyLock<T>(id: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.keyLocks.get(id) ?? Promise.resolve();
    // the previous holder's error went to its own caller; this one only waits its turn
    const next = prev.catch(() => {}).then(fn);
    this.keyLocks.set(id, next);
    try {
      return await next;
    } finally {
      if (this.keyLocks.get(id) === next) this.keyLocks.delete(id);
    }
  }

  /** Commit a received body as `bucket/key`: move the data in, then atomically write the record. */
  async putObject(
    bucket: string,
    key: string,
    body: ReceivedBody,
    input: ObjectInput,
    opts: { etag?: string; parts?: PartInfo[]; ifNoneMatch?: string; ifMatch?: string } = {},
  ): Promise<ObjectRecord> {
    this.bucket(bucket);
    return this.withKeyLock(`${bucket}\0${key}`, async () => {
      const b = this.bucket(bucket);
      const old = b.objects.get(key);
      try {
        if (opts.ifNoneMatch !== undefined) this.checkIfNoneMatch(bucket, key, opts.ifNoneMatch);
        if (opts.ifMatch !== undefined) this.checkIfMatch(bucket, key, opts.ifMatch);
      } catch (e) {
        await rm(body.tmpPath, { force: true });
        throw e;
      }
      const odir = this.objectDir(bucket, key);
      await mkdir(odir, { recursive: true });
      const dataFile = `${keyHash(key)}.${rand()}.data`;
      await rename(body.tmpPath, join(odir, dataFile));
      const rec: ObjectRecord = {
        key,
        size: body.size,
        etag: opts.etag ?? `"${body.md5.toString('hex')}"`,
        lastModified: new Date().toISOString(),
        contentType: input.contentType,
        headers: input.headers,
        metadata: input.metadata,
        checksum: body.checksum,
        parts: opts.parts?.length,
        partList: opts.parts,
        dataFile,
      };
      await writeFileAtomic(join(odir, `${keyHash(key)}.json`), JSON.stringify(rec));
      b.objects.set(key, rec);
      if (!old) b.sorted = null;
      if (old && old.dataFile !== dataFile) await rm(join(odir, old.dataFile), { force: true });
      return rec;
    });
  }

  async deleteObject(bucket: string, key: string): Promise<void> {
    this.bucket(bucket);
    await this.withKeyLock(`${bucket}\0${key}`, async () => {
      const b = this.bucket(bucket);
      const old = b.objects.get(key);
      if (!old) return;
      const odir = this.objectDir(bucket, key);
      await rm(join(odir, `${keyHash(key)}.json`), { force: true });
      await fsyncDir(odir);
      b.objects.delete(key);
      b.sorted = null;
      await rm(join(odir, old.dataFile), { force: true });
    });
  }

  /** Copy the bytes of an object into tmp/ (CopyObject); the caller commits them with putObject. */
  async copyToTmp(bucket: string, key: string): Promise<{ rec: ObjectRecord; tmpPath: string }> {
    // The source's data file may be replaced by a concurrent PUT between lookup and copy; retry then.
    for (let attempt = 0; ; attempt++) {
      const rec = this.getObject(bucket, key);
      const tmpPath = this.tmpPath();
      try {
        await copyFile(this.dataPath(bucket, rec), tmpPath);
        const fh = await open(tmpPath, 'r+');
        await fh.sync();
        await fh.close();
        return { rec, tmpPath };
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT' || attempt >= 3) throw e;
      }
    }
  }

  /**
   * Bytes `start..end` (inclusive) of an object into tmp/, hashed on the way (UploadPartCopy):
   * streamed, never held whole. The record returned is the one whose bytes were copied.
   */
  async copyRangeToTmp(
    bucket: string,
    key: string,
    range: (rec: ObjectRecord) => { start: number; end: number },
    alg?: ChecksumAlgorithm,
  ): Promise<{ rec: ObjectRecord; body: ReceivedBody }> {
    for (let attempt = 0; ; attempt++) {
      const rec = this.getObject(bucket, key);
      const { start, end } = range(rec);
      const tmpPath = this.tmpPath();
      const md5 = createHash('md5');
      const h = alg ? newHasher(alg) : undefined;
      let fh: Awaited<ReturnType<typeof open>> | undefined;
      try {
        fh = await open(tmpPath, 'w');
        if (end >= start) {
          for await (const chunk of createReadStream(this.dataPath(bucket, rec), { start, end })) {
            const b = chunk as Buffer;
            md5.update(b);
            h?.update(b);
            for (let off = 0; off < b.length;) off += (await fh.write(b, off, b.length - off)).bytesWritten;
          }
        }
        await fh.sync();
        await fh.close();
        fh = undefined;
        const checksum =
          h && alg ? { algorithm: alg, value: (await h.digest()).toString('base64'), type: 'FULL_OBJECT' as const } : undefined;
        return { rec, body: { tmpPath, size: Math.max(0, end - start + 1), md5: md5.digest(), checksum } };
      } catch (e) {
        // the write already failed: its error is the one to report
        await fh?.close().catch(() => {});
        await rm(tmpPath, { force: true });
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT' || attempt >= 3) throw e;
      }
    }
  }

  // ---- multipart uploads ----

  private uploadDir(id: string): string {
    if (!/^[0-9a-f]{32}$/.test(id)) throw noSuchUpload(id);
    return join(this.dir, 'uploads', id);
  }

  async createUpload(
    bucket: string,
    key: string,
    input: ObjectInput,
    checksumAlgorithm?: ChecksumAlgorithm,
    checksumType?: 'FULL_OBJECT' | 'COMPOSITE',
  ): Promise<UploadRecord> {
    this.bucket(bucket);
    const rec: UploadRecord = {
      uploadId: randomBytes(16).toString('hex'),
      bucket,
      key,
      initiated: new Date().toISOString(),
      ...input,
      checksumAlgorithm,
      checksumType: checksumAlgorithm ? (checksumType ?? 'COMPOSITE') : undefined,
    };
    await mkdir(this.uploadDir(rec.uploadId), { recursive: true });
    await writeFileAtomic(join(this.uploadDir(rec.uploadId), 'upload.json'), JSON.stringify(rec));
    return rec;
  }

  async getUpload(bucket: string, key: string, id: string): Promise<UploadRecord> {
    let rec: UploadRecord;
    try {
      rec = JSON.parse(await readFile(join(this.uploadDir(id), 'upload.json'), 'utf8')) as UploadRecord;
    } catch {
      throw noSuchUpload(id);
    }
    if (rec.bucket !== bucket || rec.key !== key) throw noSuchUpload(id);
    return rec;
  }

  async listUploads(bucket: string): Promise<UploadRecord[]> {
    this.bucket(bucket);
    const out: UploadRecord[] = [];
    for (const id of await readdir(join(this.dir, 'uploads'))) {
      try {
        const rec = JSON.parse(await readFile(join(this.dir, 'uploads', id, 'upload.json'), 'utf8')) as UploadRecord;
        if (rec.bucket === bucket) out.push(rec);
      } catch {
        // half-created upload: not listed
      }
    }
    return out.sort((a, b) => (a.key === b.key ? (a.initiated < b.initiated ? -1 : 1) : a.key < b.key ? -1 : 1));
  }

  async putPart(upload: UploadRecord, partNumber: number, body: ReceivedBody): Promise<PartRecord> {
    const udir = this.uploadDir(upload.uploadId);
    return this.withKeyLock(`upload\0${upload.uploadId}\0${partNumber}`, async () => {
      const old = await this.readPart(udir, partNumber);
      const dataFile = `part-${partNumber}.${rand()}.data`;
      await rename(body.tmpPath, join(udir, dataFile));
      const rec: PartRecord = {
        partNumber,
        size: body.size,
        etag: `"${body.md5.toString('hex')}"`,
        lastModified: new Date().toISOString(),
        checksum: body.checksum,
        dataFile,
      };
      await writeFileAtomic(join(udir, `part-${partNumber}.json`), JSON.stringify(rec));
      if (old) await rm(join(udir, old.dataFile), { force: true });
      return rec;
    });
  }

  private async readPart(udir: string, n: number): Promise<PartRecord | undefined> {
    try {
      return JSON.parse(await readFile(join(udir, `part-${n}.json`), 'utf8')) as PartRecord;
    } catch {
      return undefined;
    }
  }

  async listParts(upload: UploadRecord): Promise<PartRecord[]> {
    const udir = this.uploadDir(upload.uploadId);
    const nums = (await readdir(udir))
      .map((f) => /^part-(\d+)\.json$/.exec(f)?.[1])
      .filter((x): x is string => x !== undefined)
      .map(Number)
      .sort((a, b) => a - b);
    const out: PartRecord[] = [];
    for (const n of nums) {
      const p = await this.readPart(udir, n);
      if (p) out.push(p);
    }
    return out;
  }

  /**
   * Concatenate the chosen parts into the final object. ETag is S3's multipart form
   * (md5 of the parts' binary md5s, `-<n>`); the checksum is composite over the parts' checksums,
   * or computed over the whole object for FULL_OBJECT uploads.
   */
  async completeUpload(
    upload: UploadRecord,
    chosen: { partNumber: number; etag: string; checksum?: string }[],
    minPartSize: number,
    /** the object's checksum as the request states it (x-amz-checksum-<alg> on Complete) */
    expected?: { algorithm: ChecksumAlgorithm; value: string },
    conditions: { ifMatch?: string; ifNoneMatch?: string } = {},
  ): Promise<ObjectRecord> {
    if (conditions.ifMatch !== undefined) this.checkIfMatch(upload.bucket, upload.key, conditions.ifMatch);
    if (conditions.ifNoneMatch !== undefined) this.checkIfNoneMatch(upload.bucket, upload.key, conditions.ifNoneMatch);
    if (chosen.length === 0) throw new S3Error('MalformedXML', 400, 'You must specify at least one part');
    const udir = this.uploadDir(upload.uploadId);
    const parts: PartRecord[] = [];
    let prev = 0;
    for (const c of chosen) {
      if (c.partNumber <= prev)
        throw new S3Error(
          'InvalidPartOrder',
          400,
          'The list of parts was not in ascending order. The parts list must be specified in order by part number.',
        );
      prev = c.partNumber;
      const p = await this.readPart(udir, c.partNumber);
      const norm = (e: string) => e.replace(/"/g, '');
      if (!p || norm(p.etag) !== norm(c.etag)) {
        throw new S3Error(
          'InvalidPart',
          400,
          `One or more of the specified parts could not be found. The part may not have been uploaded, or the specified entity tag may not have matched the part's entity tag. (part ${c.partNumber})`,
        );
      }
      if (c.checksum && p.checksum && c.checksum !== p.checksum.value) {
        throw new S3Error('InvalidPart', 400, `The checksum given for part ${c.partNumber} does not match the part's checksum.`);
      }
      parts.push(p);
    }
    parts.forEach((p, i) => {
      if (i < parts.length - 1 && p.size < minPartSize) {
        throw new S3Error(
          'EntityTooSmall',
          400,
          `Your proposed upload is smaller than the minimum allowed size (part ${p.partNumber} has ${p.size} bytes, minimum ${minPartSize})`,
        );
      }
    });
    const tmpPath = this.tmpPath();
    const md5s = createHash('md5');
    const full = upload.checksumAlgorithm && upload.checksumType === 'FULL_OBJECT' ? newHasher(upload.checksumAlgorithm) : undefined;
    const fh = await open(tmpPath, 'w');
    try {
      for (const p of parts) {
        md5s.update(Buffer.from(p.etag.replace(/"/g, ''), 'hex'));
        for await (const chunk of createReadStream(join(udir, p.dataFile))) {
          const b = chunk as Buffer;
          full?.update(b);
          for (let off = 0; off < b.length;) off += (await fh.write(b, off, b.length - off)).bytesWritten;
        }
      }
      await fh.sync();
    } finally {
      await fh.close();
    }
    let checksum: StoredChecksum | undefined;
    if (upload.checksumAlgorithm) {
      const alg = upload.checksumAlgorithm;
      if (full) checksum = { algorithm: alg, value: (await full.digest()).toString('base64'), type: 'FULL_OBJECT' };
      else if (parts.every((p) => p.checksum?.algorithm === alg)) {
        checksum = {
          algorithm: alg,
          value: await compositeChecksum(
            alg,
            parts.map((p) => p.checksum!.value),
          ),
          type: 'COMPOSITE',
        };
      }
    }
    if (expected) {
      const bare = (v: string) => v.replace(/-\d+$/, '');
      if (!checksum || checksum.algorithm !== expected.algorithm || bare(checksum.value) !== bare(expected.value)) {
        await rm(tmpPath, { force: true });
        throw new S3Error(
          'BadDigest',
          400,
          `The ${expected.algorithm} you specified for the object did not match the calculated checksum.`,
        );
      }
    }
    const size = (await stat(tmpPath)).size;
    const rec = await this.putObject(
      upload.bucket,
      upload.key,
      { tmpPath, size, md5: Buffer.alloc(0), checksum },
      { contentType: upload.contentType, headers: upload.headers, metadata: upload.metadata },
      {
        etag: `"${md5s.digest('hex')}-${parts.length}"`,
        parts: parts.map((p) => ({ size: p.size, ...(p.checksum ? { checksum: p.checksum.value } : {}) })),
        ...conditions,
      },
    );
    // Keep a marker so a retried Complete (the client missed the answer) gets the same answer
    // instead of NoSuchUpload; the parts go. Markers older than a day are swept at start.
    const done: CompletedUpload = {
      bucket: upload.bucket,
      key: upload.key,
      etag: rec.etag,
      checksum: rec.checksum,
      completed: new Date().toISOString(),
    };
    await writeFileAtomic(join(udir, 'completed.json'), JSON.stringify(done));
    for (const f of await readdir(udir)) if (f !== 'completed.json') await rm(join(udir, f), { force: true });
    return rec;
  }

  /** The result of an upload already completed for this bucket and key, if any. */
  async completedUpload(bucket: string, key: string, id: string): Promise<CompletedUpload | undefined> {
    try {
      const c = JSON.parse(await readFile(join(this.uploadDir(id), 'completed.json'), 'utf8')) as CompletedUpload;
      return c.bucket === bucket && c.key === key ? c : undefined;
    } catch {
      return undefined;
    }
  }

  async abortUpload(upload: UploadRecord): Promise<void> {
    await rm(this.uploadDir(upload.uploadId), { recursive: true, force: true });
  }
}
