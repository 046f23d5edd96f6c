import { createHash } from 'node:crypto';
import { basename } from 'node:path';
import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import sharp from 'sharp';
import type { Detection } from '../../contracts/topics.js';
import { uploadSidecar, type UploadSidecar } from '../../contracts/upload.js';

/**
 * A device upload as loupe.Uploader leaves it in the bucket: `<key>.jpg` and its
 * `loupe.upload/1` sidecar `<key>.json`, written through the contract's own writer. The frame
 * id is the key's last part, so an upload named after a reference photo carries its file name.
 */
export async function putUpload(
  s3: S3Client,
  bucket: string,
  key: string,
  jpeg: Buffer,
  o: { device: string; camera?: string; time?: string; seq?: number; reason?: string; modelVersion?: string; detections?: Detection[] },
): Promise<UploadSidecar> {
  const meta = await sharp(jpeg).metadata();
  const detections = o.detections ?? [];
  const sidecar = uploadSidecar({
    device: o.device,
    camera: o.camera ?? 'cam1',
    frameId: basename(key),
    seq: o.seq ?? 0,
    time: o.time ?? '2024-06-01T08:00:00Z',
    trigger: 'interval',
    reason: o.reason ?? 'failed',
    reasons: detections.length ? ['defect'] : [],
    verdict: detections.length ? 'fail' : 'pass',
    model: { name: 'metal-tags', version: o.modelVersion ?? '1.0.0', sha256: '0'.repeat(64) },
    image: { key: `${key}.jpg`, width: meta.width!, height: meta.height!, originalWidth: meta.width!, originalHeight: meta.height!, bytes: jpeg.length, sha256: createHash('sha256').update(jpeg).digest('hex'), contentType: 'image/jpeg' },
    detections,
  });
  await s3.send(new PutObjectCommand({ Bucket: bucket, Key: `${key}.jpg`, Body: jpeg }));
  await s3.send(new PutObjectCommand({ Bucket: bucket, Key: `${key}.json`, Body: JSON.stringify(sidecar) }));
  return sidecar;
}
