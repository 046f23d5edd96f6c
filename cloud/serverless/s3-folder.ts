import { createWriteStream } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { GetObjectCommand, ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import { LoupeError } from '../../lib/errors.js';

/** `s3://bucket/prefix` as bucket and a prefix that ends with `/` (or is empty). */
export function parseS3Prefix(uri: string): { bucket: string; prefix: string } {
  const m = /^s3:\/\/([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:\/(.*))?$/.exec(uri);
  if (!m) throw new LoupeError('S3_BAD_URI', 'expected s3://bucket/prefix', { input: uri });
  const p = m[2] ?? '';
  return { bucket: m[1]!, prefix: p === '' || p.endsWith('/') ? p : `${p}/` };
}

/**
 * Download every object under an S3 prefix into a folder, keeping the key's path below the
 * prefix (what SageMaker does with an S3Prefix input). Keys with `..` or empty parts are refused.
 */
export async function downloadPrefix(s3: S3Client, uri: string, dir: string): Promise<string[]> {
  const { bucket, prefix } = parseS3Prefix(uri);
  const files: string[] = [];
  let token: string | undefined;
  do {
    const page = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }));
    for (const o of page.Contents ?? []) {
      const rel = o.Key!.slice(prefix.length);
      if (rel === '' || rel.endsWith('/')) continue;
      const parts = rel.split('/');
      if (parts.some((p) => p === '' || p === '.' || p === '..'))
        throw new LoupeError('S3_BAD_KEY', 'a key under the prefix is not a plain relative path', { input: `s3://${bucket}/${o.Key}` });
      const file = join(dir, ...parts);
      await mkdir(dirname(file), { recursive: true });
      const r = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: o.Key }));
      await pipeline(r.Body as Readable, createWriteStream(file));
      files.push(rel);
    }
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  return files;
}
