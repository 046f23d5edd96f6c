import { sha256 } from '../../lib/fsutil.js';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { errorMessage } from '../../lib/errors.js';
import type { ResultMessage, UploaderHandled } from '../../contracts/topics.js';
import { uploadSidecar } from '../../contracts/upload.js';
import type { UploaderConfig } from './config.js';
import { Deduper } from './dedup.js';
import { prepareImage } from './image.js';
import { createPolicy, select, type Policy } from './policies.js';
import { RateLimiter } from './rate-limit.js';
import type { Spool } from './spool.js';

/**
 * From an inference result to a spooled upload: policies → rate limits → perceptual de-dup →
 * resize/re-encode → spool. Counts every outcome, so telemetry says why an image was or was
 * not sent.
 */
export interface SelectorStats {
  received: number;
  selected: number;
  byReason: Record<string, number>;
  notSelected: number;
  duplicates: number;
  /** selected frames the uploader had to decode for their hash (results without `hashes`) */
  hashedHere: number;
  rateLimited: number;
  refused: number;
  evicted: number;
  errors: number;
}

export function uploadKeys(prefix: string, thing: string, r: { frameId: string; time: string }): { imageKey: string; sidecarKey: string } {
  const d = new Date(r.time);
  const day = Number.isNaN(d.getTime()) ? new Date() : d;
  const p = (n: number) => String(n).padStart(2, '0');
  const base = `${prefix ? prefix.replace(/\/+$/, '') + '/' : ''}${thing}/${day.getUTCFullYear()}/${p(day.getUTCMonth() + 1)}/${p(day.getUTCDate())}/${r.frameId}`;
  return { imageKey: `${base}.jpg`, sidecarKey: `${base}.json` };
}

export class Selector {
  readonly stats: SelectorStats = {
    received: 0,
    selected: 0,
    byReason: {},
    notSelected: 0,
    duplicates: 0,
    hashedHere: 0,
    rateLimited: 0,
    refused: 0,
    evicted: 0,
    errors: 0,
  };
  private policies: Policy[];
  private readonly dedup: Deduper;

  constructor(
    private cfg: UploaderConfig,
    private readonly thing: string,
    private readonly spool: Spool,
    private readonly limiter: RateLimiter,
    private readonly log: Logger,
    private readonly random: () => number = Math.random,
  ) {
    this.policies = cfg.policies.map((p) => createPolicy(p, random));
    // The window is kept beside the spool, so a restart does not upload the same images again.
    this.dedup = new Deduper(cfg.dedup, { file: join(spool.dir, '.dedup.json'), log });
  }

  /** Load the saved de-duplication window (and the hashes of items still spooled). */
  async open(): Promise<void> {
    await this.dedup.load(this.spool.dedupHashes());
  }

  reconfigure(cfg: UploaderConfig): void {
    this.cfg = cfg;
    this.policies = cfg.policies.map((p) => createPolicy(p, this.random));
    this.dedup.setConfig(cfg.dedup);
    this.limiter.setLimits(cfg.limits);
    this.spool.maxBytes = cfg.spool.maxBytes;
  }

  /** Returns true when the result's image was spooled. */
  async handle(r: ResultMessage): Promise<boolean> {
    return (await this.process(r)) === 'spooled';
  }

  /**
   * What became of a result: an UploaderHandled outcome (dealt with for good), or 'error' (it
   * could not be spooled now: a full disk, an unreadable frame) so that it may come again.
   */
  async process(r: ResultMessage): Promise<UploaderHandled['outcome'] | 'error'> {
    this.stats.received++;
    const sel = select(this.policies, r);
    if (!sel) {
      this.stats.notSelected++;
      return 'not-selected';
    }
    try {
      let hash: bigint | undefined;
      if (this.cfg.dedup.enabled) {
        const h = await this.dedup.hash(r.path, r.hashes);
        hash = h.hash;
        if (h.decoded) this.stats.hashedHere++;
        if (this.dedup.isDuplicate(r.camera, hash)) {
          this.stats.duplicates++;
          return 'duplicate';
        }
      }
      const full = await this.limiter.take();
      if (full) {
        this.stats.rateLimited++;
        return 'rate-limited';
      }
      const img = await prepareImage(r.path, r, this.cfg.image);
      const keys = uploadKeys(this.cfg.prefix, this.thing, r);
      const sidecar = uploadSidecar({
        device: this.thing,
        camera: r.camera,
        frameId: r.frameId,
        seq: r.seq,
        time: r.time,
        trigger: r.trigger,
        ...(r.serial ? { serial: r.serial } : {}),
        reason: sel.reason,
        reasons: sel.reasons,
        verdict: r.verdict,
        // loupe.upload/1 names the model by name, version and digest; the precision it ran in is in the result and telemetry
        model: { name: r.model.name, version: r.model.version, sha256: r.model.sha256 },
        image: {
          key: keys.imageKey,
          width: img.width,
          height: img.height,
          originalWidth: r.width,
          originalHeight: r.height,
          bytes: img.data.length,
          sha256: sha256(img.data),
          contentType: 'image/jpeg',
        },
        detections: img.detections,
      });
      const dedup = hash === undefined ? {} : { dedup: { hash: hash.toString(16), algo: this.dedup.algo } };
      const out = await this.spool.add(
        {
          frameId: r.frameId,
          camera: r.camera,
          priority: sel.priority,
          reason: sel.reason,
          createdAt: Date.now(),
          ...keys,
          sidecar,
          ...dedup,
        },
        img.data,
      );
      this.stats.evicted += out.evicted.length;
      for (const e of out.evicted) this.log.info({ frameId: e.frameId, reason: e.reason }, 'spool full: evicted');
      if (!out.added) {
        if (out.reason === 'no-room') this.stats.refused++;
        return out.reason === 'duplicate-id' ? 'duplicate' : 'refused';
      }
      if (hash !== undefined) await this.dedup.remember(r.camera, hash);
      this.stats.selected++;
      this.stats.byReason[sel.reason] = (this.stats.byReason[sel.reason] ?? 0) + 1;
      return 'spooled';
    } catch (e) {
      this.stats.errors++;
      this.log.warn({ frameId: r.frameId, err: errorMessage(e) }, 'could not spool the image');
      return 'error';
    }
  }
}
