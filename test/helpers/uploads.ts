import { createHash } from 'node:crypto';
import { basename } from 'node:path';
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { join } from 'node:path';
import sharp from 'sharp';
import type { Detection } from '../../contracts/topics.js';
import { uploadSidecar, type UploadSidecar } from '../../contracts/upload.js';
import { uploaderConfigSchema } from '../../components/uploader/config.js';
import { RateLimiter } from '../../components/uploader/rate-limit.js';
import { Selector } from '../../components/uploader/selector.js';
import { Spool } from '../../components/uploader/spool.js';
import { silentLogger } from '../../lib/log.js';

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
    image: {
      key: `${key}.jpg`,
      width: meta.width!,
      height: meta.height!,
      originalWidth: meta.width!,
      originalHeight: meta.height!,
      bytes: jpeg.length,
      sha256: createHash('sha256').update(jpeg).digest('hex'),
      contentType: 'image/jpeg',
    },
    detections,
  });
  await s3.send(new PutObjectCommand({ Bucket: bucket, Key: `${key}.jpg`, Body: jpeg }));
  await s3.send(new PutObjectCommand({ Bucket: bucket, Key: `${key}.json`, Body: JSON.stringify(sidecar) }));
  return sidecar;
}

/**
 * The device images in a bucket (`incoming/**.jpg`), each with the sha256 of its bytes: the fault
 * matrix and the soak tell a lost or duplicated upload by content. `cache` keeps digests already
 * fetched (objects are not rewritten).
 */
export async function uploadedImageDigests(s3: S3Client, bucket: string, cache = new Map<string, string>()): Promise<Map<string, string>> {
  const keys: string[] = [];
  let token: string | undefined;
  do {
    const r = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: 'incoming/', ContinuationToken: token }));
    keys.push(...(r.Contents ?? []).map((c) => c.Key!).filter((k) => k.endsWith('.jpg')));
    token = r.IsTruncated ? r.NextContinuationToken : undefined;
  } while (token);
  const out = new Map<string, string>();
  for (const k of keys) {
    let sha = cache.get(k);
    if (!sha) {
      const body = Buffer.from(await (await s3.send(new GetObjectCommand({ Bucket: bucket, Key: k }))).Body!.transformToByteArray());
      sha = createHash('sha256').update(body).digest('hex');
      cache.set(k, sha);
    }
    out.set(k, sha);
  }
  return out;
}

/** One uploader "process": spool, limiter and selector opened on a folder, as its main.ts does. */
export async function openSelector(dir: string, over: Record<string, unknown> = {}): Promise<{ spool: Spool; selector: Selector }> {
  const cfg = uploaderConfigSchema.parse({ bucket: 'loupe-incoming', spool: { dir }, ...over });
  const spool = new Spool(dir, cfg.spool.maxBytes);
  await spool.open();
  const limiter = new RateLimiter(cfg.limits, join(dir, '.limits'));
  await limiter.load();
  const selector = new Selector(cfg, 'thing-1', spool, limiter, silentLogger);
  await selector.open();
  return { spool, selector };
}

/**
 * metal-tags reference photos labelled after the history cut-off the serverless tests import
 * (`history.until` 1657199072): not in the imported history, so they come back as new device
 * uploads, and the simulated workforce knows their truth by content (cloud/loop/truth.ts).
 */
export const LATE_REFERENCE_PHOTOS = [
  'bad/image-2020-04-22-11-08-58-87-cropped-right-top.jpg',
  'bad/image-2020-04-22-11-06-38-66-cropped-left-top.jpg',
  'good/image-2020-04-22-10-15-16-00-cropped-left-top.jpg',
  'bad/image-2020-04-22-11-07-03-86-cropped-right-top.jpg',
  'bad/image-2020-04-22-11-01-09-04-cropped-left-top.jpg',
  'bad/image-2020-04-22-11-02-50-45-cropped-left-top.jpg',
  'bad/image-2020-04-22-11-04-57-07-cropped-left-top.jpg',
  'bad/image-2020-04-22-10-57-08-25-cropped-left-top.jpg',
  'good/image-2020-04-22-10-15-03-04-cropped-left-top.jpg',
] as const;
