import { z } from 'zod';
import { LoupeError } from '../../../lib/errors.js';
import { looksLikeJpeg } from '../jpeg-splitter.js';
import type { Frame, FrameSource } from './source.js';

/** A camera's HTTP snapshot URL: one GET per frame (IP cameras' `/snapshot.jpg`). */
export const snapshotSchema = z.object({
  type: z.literal('snapshot'),
  url: z.string().regex(/^https?:\/\//, 'must be an http:// or https:// URL'),
  headers: z.record(z.string(), z.string()).default({}),
  timeoutMs: z.number().int().min(100).default(5000),
});
export type SnapshotConfig = z.infer<typeof snapshotSchema>;

export class SnapshotSource implements FrameSource {
  readonly kind = 'snapshot';
  constructor(private readonly cfg: SnapshotConfig) {}

  async open(): Promise<void> {}

  async next(): Promise<Frame | null> {
    const res = await fetch(this.cfg.url, { headers: this.cfg.headers, signal: AbortSignal.timeout(this.cfg.timeoutMs) }).catch(
      (e: Error) => {
        throw new LoupeError('camera.snapshot', `request failed: ${e.message}`, { input: this.cfg.url });
      },
    );
    if (!res.ok) throw new LoupeError('camera.snapshot', `HTTP ${res.status}`, { input: this.cfg.url });
    const data = Buffer.from(await res.arrayBuffer());
    if (!looksLikeJpeg(data)) throw new LoupeError('camera.snapshot', 'response is not a JPEG', { input: this.cfg.url });
    return { data, ext: 'jpg', origin: this.cfg.url };
  }

  async close(): Promise<void> {}
}
