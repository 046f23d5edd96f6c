import { GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { existsSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { join, isAbsolute, relative, resolve } from 'node:path';
import { LoupeError } from '../../lib/errors.js';
import { sha256, writeFileAtomic } from '../../lib/fsutil.js';

/**
 * Where a record's image lives. `source_ref` is an S3 URI; images uploaded by devices are
 * fetched from the bucket (the embedded store or S3). History imported from elsewhere (the
 * reference's `s3://${bucket}/pipeline/...` refs) is mapped onto a local folder by the ref's
 * last path parts, the same rule the data set importers use.
 *
 * The image id (what `splitOf` hashes, and the name in snapshots) is the mapped tail
 * (`bad/NAME.jpg`) for mapped refs, and the object key for bucket refs.
 */
export interface RefMapping {
  /** Refs starting with this prefix are mapped. */
  refPrefix: string;
  /** Local folder holding the tail. */
  dir: string;
  /** How many trailing path parts form the id and the path under `dir` (default 2). */
  idParts?: number;
}

export interface ImageSourceOptions {
  s3?: S3Client;
  mappings?: RefMapping[];
}

/** The mapping for the reference's labels.csv onto ../shared/datasets/metal-tags. */
export function metalTagsMapping(dir: string): RefMapping {
  return { refPrefix: 's3://${bucket}/', dir, idParts: 2 };
}

export function parseS3Uri(ref: string): { bucket: string; key: string } {
  const m = /^s3:\/\/([^/]+)\/(.+)$/.exec(ref);
  if (!m) throw new LoupeError('IMAGE_BAD_REF', 'not an s3://bucket/key URI', { input: ref });
  return { bucket: m[1]!, key: m[2]! };
}

export class ImageSource {
  constructor(private readonly opts: ImageSourceOptions = {}) {}

  private mappingOf(ref: string): RefMapping | undefined {
    return this.opts.mappings?.find((m) => ref.startsWith(m.refPrefix));
  }

  idOf(ref: string): string {
    const m = this.mappingOf(ref);
    if (m)
      return ref
        .split('/')
        .slice(-(m.idParts ?? 2))
        .join('/');
    return parseS3Uri(ref).key;
  }

  /**
   * Local file for a mapped ref, or undefined for a bucket ref. The ref's tail must be plain
   * names (no `..`, `.`, empty parts or backslashes) and land inside the mapped folder: refs
   * come from device uploads, so a crafted key must not read other files on the server.
   */
  mappedPath(ref: string): string | undefined {
    const m = this.mappingOf(ref);
    if (!m) return undefined;
    const parts = ref.split('/').slice(-(m.idParts ?? 2));
    for (const p of parts) {
      if (p === '' || p === '.' || p === '..' || p.includes('\\') || p.includes('\0')) {
        throw new LoupeError('IMAGE_BAD_REF', `the mapped part of the ref must be plain file and folder names; "${p}" is not one`, {
          input: ref,
        });
      }
    }
    const dir = resolve(m.dir);
    const path = resolve(dir, ...parts);
    const rel = relative(dir, path);
    if (!rel || rel.startsWith('..') || isAbsolute(rel))
      throw new LoupeError('IMAGE_BAD_REF', `the ref resolves outside ${dir}`, { input: ref });
    return path;
  }

  async read(ref: string): Promise<Buffer> {
    const local = this.mappedPath(ref);
    if (local) {
      if (!existsSync(local)) throw new LoupeError('IMAGE_MISSING', `image not found at ${local}`, { input: ref });
      return readFile(local);
    }
    if (!this.opts.s3) throw new LoupeError('IMAGE_NO_SOURCE', 'no S3 client configured to fetch this image', { input: ref });
    const { bucket, key } = parseS3Uri(ref);
    try {
      const res = await this.opts.s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
      return Buffer.from(await res.Body!.transformToByteArray());
    } catch (e) {
      throw new LoupeError('IMAGE_FETCH', `cannot fetch the image (${(e as Error).name}: ${(e as Error).message})`, {
        input: ref,
        cause: e,
      });
    }
  }

  /** A local file holding the image: the mapped file, or a content-keyed copy in `cacheDir`. */
  async localPath(ref: string, cacheDir: string): Promise<string> {
    const local = this.mappedPath(ref);
    if (local) {
      if (!existsSync(local)) throw new LoupeError('IMAGE_MISSING', `image not found at ${local}`, { input: ref });
      return local;
    }
    const ext = (/\.[A-Za-z0-9]{2,5}$/.exec(ref)?.[0] ?? '.jpg').toLowerCase();
    const p = join(cacheDir, sha256(ref).slice(0, 24) + ext);
    if (!existsSync(p)) {
      await mkdir(cacheDir, { recursive: true });
      await writeFileAtomic(p, await this.read(ref));
    }
    return p;
  }
}
