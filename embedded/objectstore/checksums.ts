import { createHash } from 'node:crypto';
import { crc32 } from 'node:zlib';
import { Crc32c, Crc64Nvme } from '@aws-sdk/checksums/crc';
import { invalidArgument } from './errors.js';

/**
 * S3 flexible checksums (CRC32, CRC32C, CRC64NVME, SHA1, SHA256): the request carries one as a
 * header or an aws-chunked trailer; the store verifies it over the decoded bytes, keeps it, and
 * returns it on GET when asked (`x-amz-checksum-mode: ENABLED`), which the SDK then verifies.
 */
export const checksumAlgorithms = ['CRC32', 'CRC32C', 'CRC64NVME', 'SHA1', 'SHA256'] as const;
export type ChecksumAlgorithm = (typeof checksumAlgorithms)[number];

export interface StoredChecksum {
  algorithm: ChecksumAlgorithm;
  /** base64, as on the wire; composite multipart checksums end in `-<parts>` */
  value: string;
  type: 'FULL_OBJECT' | 'COMPOSITE';
}

export interface Hasher {
  update(b: Uint8Array): void;
  digest(): Promise<Buffer>;
}

class Crc32Hasher implements Hasher {
  private v = 0;
  update(b: Uint8Array): void {
    this.v = crc32(b, this.v);
  }
  async digest(): Promise<Buffer> {
    const out = Buffer.alloc(4);
    out.writeUInt32BE(this.v >>> 0);
    return out;
  }
}

class NodeHashHasher implements Hasher {
  private readonly h;
  constructor(alg: 'sha1' | 'sha256' | 'md5') {
    this.h = createHash(alg);
  }
  update(b: Uint8Array): void {
    this.h.update(b);
  }
  async digest(): Promise<Buffer> {
    return this.h.digest();
  }
}

class SdkHasher implements Hasher {
  constructor(private readonly h: { update(b: Uint8Array): void; digest(): Promise<Uint8Array> }) {}
  update(b: Uint8Array): void {
    this.h.update(b);
  }
  async digest(): Promise<Buffer> {
    return Buffer.from(await this.h.digest());
  }
}

export function newHasher(alg: ChecksumAlgorithm): Hasher {
  switch (alg) {
    case 'CRC32':
      return new Crc32Hasher();
    case 'CRC32C':
      return new SdkHasher(new Crc32c());
    case 'CRC64NVME':
      return new SdkHasher(new Crc64Nvme());
    case 'SHA1':
      return new NodeHashHasher('sha1');
    case 'SHA256':
      return new NodeHashHasher('sha256');
  }
}

export function parseAlgorithm(v: string | undefined, what: string): ChecksumAlgorithm | undefined {
  if (v === undefined || v === '') return undefined;
  const up = v.toUpperCase();
  if ((checksumAlgorithms as readonly string[]).includes(up)) return up as ChecksumAlgorithm;
  throw invalidArgument(`Value for ${what} header is invalid: ${v} (expected one of ${checksumAlgorithms.join(', ')})`, what);
}

/** `x-amz-checksum-crc32` etc. */
export const headerName = (alg: ChecksumAlgorithm): string => `x-amz-checksum-${alg.toLowerCase()}`;
/** `ChecksumCRC32` etc. (XML element names) */
export const xmlName = (alg: ChecksumAlgorithm): string => `Checksum${alg}`;

/** The checksum a request states in its headers (at most one algorithm). */
export function checksumFromHeaders(
  headers: Record<string, string | string[] | undefined>,
): { algorithm: ChecksumAlgorithm; value: string } | undefined {
  for (const alg of checksumAlgorithms) {
    const v = headers[headerName(alg)];
    if (typeof v === 'string' && v !== '') return { algorithm: alg, value: v };
  }
  return undefined;
}

/** S3's composite multipart checksum: the checksum of the parts' raw checksums, then `-<n>`. */
export async function compositeChecksum(alg: ChecksumAlgorithm, partValues: string[]): Promise<string> {
  const h = newHasher(alg);
  for (const v of partValues) h.update(Buffer.from(v, 'base64'));
  return `${(await h.digest()).toString('base64')}-${partValues.length}`;
}
