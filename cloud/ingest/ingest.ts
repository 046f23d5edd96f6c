import { GetObjectCommand, ListObjectsV2Command, type S3Client, type _Object } from '@aws-sdk/client-s3';
import { existsSync, readFileSync } from 'node:fs';
import type { Logger } from 'pino';
import { LoupeError, errorMessage } from '../../lib/errors.js';
import { writeFileAtomic } from '../../lib/fsutil.js';
import { silentLogger } from '../../lib/log.js';
import { Progress } from '../../lib/progress.js';
import type { LabelStore } from '../labelstore/types.js';
import type { LabelRecord } from '../../contracts/label-record.js';
import { parseUploadSidecar } from '../../contracts/upload.js';
import { detectionsToGt } from './sidecar.js';

/**
 * Ingest: find device uploads under `incoming/` that arrived since the last run and record
 * each as an unlabelled item (PENDING, no job) whose annotations are the device's detections.
 *
 *   await ingestIncoming({ s3, bucket, store, statePath })  → IngestResult
 *
 * An item is an image (`<stem>.jpg|.jpeg|.png`) plus its sidecar (`<stem>.json`); an image
 * whose sidecar has not arrived yet (or the reverse) waits for a later run.
 *
 * Watermark: the newest LastModified of the items handled, held back to just before the oldest
 * incomplete item, saved atomically in `statePath` after the records are appended. A run lists
 * the prefix and considers objects modified after (watermark − lookback); the lookback
 * (default 15 min) covers objects that become visible with an older LastModified (S3 stamps
 * the start of an upload). Idempotency does not rest on the watermark: an image already in the
 * store (by source_ref) is never recorded again, so a crash between appending and saving the
 * watermark, or two overlapping runs, record nothing twice.
 */
export interface IngestOptions {
  s3: S3Client;
  bucket: string;
  /** default `incoming/` */
  prefix?: string;
  store: LabelStore;
  /** JSON file holding the watermark (written atomically). */
  statePath: string;
  lookbackSeconds?: number;
  /** Clock for event_time (epoch seconds). */
  now?: () => number;
  log?: Logger;
}

export interface IngestResult {
  listed: number;
  considered: number;
  recorded: number;
  alreadyKnown: number;
  incomplete: number;
  invalid: { key: string; reason: string }[];
  watermark: string | null;
  records: LabelRecord[];
}

interface IngestState {
  watermark: string | null;
}

const IMAGE_EXT = /\.(jpe?g|png)$/i;

export function readIngestState(path: string): IngestState {
  if (!existsSync(path)) return { watermark: null };
  try {
    const s = JSON.parse(readFileSync(path, 'utf8')) as IngestState;
    if (s.watermark !== null && Number.isNaN(Date.parse(s.watermark)))
      throw new Error(`watermark ${JSON.stringify(s.watermark)} is not a time`);
    return s;
  } catch (e) {
    throw new LoupeError('INGEST_BAD_STATE', `unreadable ingest state (${errorMessage(e)}); fix or remove it to re-scan everything`, {
      input: path,
    });
  }
}

async function listAll(s3: S3Client, bucket: string, prefix: string): Promise<_Object[]> {
  const out: _Object[] = [];
  let token: string | undefined;
  do {
    const page = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }));
    out.push(...(page.Contents ?? []));
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  return out;
}

async function getText(s3: S3Client, bucket: string, key: string): Promise<string> {
  const res = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  return res.Body!.transformToString('utf8');
}

export async function ingestIncoming(opts: IngestOptions): Promise<IngestResult> {
  const prefix = opts.prefix ?? 'incoming/';
  const log = opts.log ?? silentLogger;
  const now = opts.now ?? (() => Date.now() / 1000);
  const state = readIngestState(opts.statePath);
  const since = state.watermark ? Date.parse(state.watermark) - (opts.lookbackSeconds ?? 900) * 1000 : -Infinity;

  const objects = await listAll(opts.s3, opts.bucket, prefix);
  const byStem = new Map<string, { image?: _Object; sidecar?: _Object }>();
  for (const o of objects) {
    const key = o.Key!;
    const isImage = IMAGE_EXT.test(key);
    const isSidecar = key.endsWith('.json');
    if (!isImage && !isSidecar) continue;
    const stem = key.replace(/\.[^./]+$/, '');
    const e = byStem.get(stem) ?? {};
    if (isImage) e.image = o;
    else e.sidecar = o;
    byStem.set(stem, e);
  }
  const mtime = (o?: _Object) => (o?.LastModified ? o.LastModified.getTime() : 0);
  const complete: { image: _Object; sidecar: _Object; t: number }[] = [];
  let oldestIncomplete = Infinity;
  let incomplete = 0;
  for (const e of byStem.values()) {
    const t = Math.max(mtime(e.image), mtime(e.sidecar));
    if (t <= since) continue;
    if (e.image && e.sidecar) complete.push({ image: e.image, sidecar: e.sidecar, t });
    else {
      incomplete++;
      oldestIncomplete = Math.min(oldestIncomplete, mtime(e.image ?? e.sidecar));
    }
  }
  complete.sort((a, b) => a.t - b.t || (a.image.Key! < b.image.Key! ? -1 : 1));

  const refOf = (key: string) => `s3://${opts.bucket}/${key}`;
  const known = await opts.store.known(complete.map((c) => refOf(c.image.Key!)));
  const fresh = complete.filter((c) => !known.has(refOf(c.image.Key!)));
  const invalid: IngestResult['invalid'] = [];
  const records: LabelRecord[] = [];
  const progress = new Progress('ingest', fresh.length, log);
  const eventTime = now();
  for (const c of fresh) {
    const key = c.image.Key!;
    const sidecarKey = c.sidecar.Key!;
    try {
      const sc = parseUploadSidecar(await getText(opts.s3, opts.bucket, sidecarKey), `s3://${opts.bucket}/${sidecarKey}`);
      const size = { width: sc.image.width, height: sc.image.height, depth: 3 };
      records.push({
        source_ref: refOf(key),
        image_width: size.width,
        image_height: size.height,
        image_depth: size.depth,
        annotations: detectionsToGt(sc.detections, size.width, size.height),
        event_time: eventTime,
        labeling_job: '',
        status: 'PENDING',
        device: sc.device,
        capture_time: Date.parse(sc.time) / 1000,
        model_version: sc.model.version,
        meta: {
          sidecar: refOf(sidecarKey),
          camera: sc.camera,
          frame: sc.frameId,
          reason: sc.reason,
          verdict: sc.verdict,
          ...(sc.detections.length ? { names: Object.fromEntries(sc.detections.map((d) => [d.cls, d.name])) } : {}),
        },
      });
    } catch (e) {
      const reason = errorMessage(e);
      invalid.push({ key, reason });
      log.error({ key, err: reason }, 'ingest: skipping an upload whose sidecar or image cannot be read');
    }
    progress.tick();
  }
  progress.finish();
  await opts.store.append(records);

  let wm = complete.length ? complete[complete.length - 1]!.t : state.watermark ? Date.parse(state.watermark) : -Infinity;
  if (oldestIncomplete !== Infinity) wm = Math.min(wm, oldestIncomplete - 1);
  if (state.watermark) wm = Math.max(wm, Date.parse(state.watermark));
  const watermark = Number.isFinite(wm) ? new Date(wm).toISOString() : null;
  if (watermark !== state.watermark) await writeFileAtomic(opts.statePath, JSON.stringify({ watermark }, null, 1) + '\n');
  const result: IngestResult = {
    listed: objects.length,
    considered: complete.length,
    recorded: records.length,
    alreadyKnown: complete.length - fresh.length,
    incomplete,
    invalid,
    watermark,
    records,
  };
  log.info({ ...result, records: undefined }, 'ingest done');
  return result;
}
