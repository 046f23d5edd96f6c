import { readFile } from 'node:fs/promises';
import { writeFileAtomic } from '../../lib/fsutil.js';

/**
 * Upload limits per minute, hour and day over sliding windows. The accepted timestamps of the
 * last day are kept on disk beside the spool so a restart does not reset the daily budget.
 */
export class RateLimiter {
  private stamps: number[] = [];

  constructor(
    private limits: { perMinute?: number; perHour?: number; perDay?: number },
    private readonly file: string,
  ) {}

  async load(): Promise<void> {
    try {
      const v = JSON.parse(await readFile(this.file, 'utf8')) as unknown;
      if (Array.isArray(v)) this.stamps = v.filter((x): x is number => typeof x === 'number');
    } catch {
      this.stamps = [];
    }
  }

  setLimits(l: { perMinute?: number; perHour?: number; perDay?: number }): void {
    this.limits = l;
  }

  /** Take one slot if every window has room; returns the window that is full otherwise. */
  async take(now = Date.now()): Promise<string | undefined> {
    this.stamps = this.stamps.filter((t) => t > now - 86_400_000);
    const count = (ms: number) => this.stamps.filter((t) => t > now - ms).length;
    if (this.limits.perMinute !== undefined && count(60_000) >= this.limits.perMinute) return 'perMinute';
    if (this.limits.perHour !== undefined && count(3_600_000) >= this.limits.perHour) return 'perHour';
    if (this.limits.perDay !== undefined && this.stamps.length >= this.limits.perDay) return 'perDay';
    this.stamps.push(now);
    if (this.limits.perMinute !== undefined || this.limits.perHour !== undefined || this.limits.perDay !== undefined) {
      await writeFileAtomic(this.file, JSON.stringify(this.stamps));
    }
    return undefined;
  }
}
