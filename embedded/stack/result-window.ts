import type { ResultMessage } from '../../contracts/topics.js';
import { LoupeError } from '../../lib/errors.js';

/** Every result seen since the stack started (not only those the window still holds). */
export interface ResultTally {
  inferred: number;
  defects: number;
  /** results with verdict 'error' (the frame could not be inferred), and the first one's reason */
  errors: number;
  firstError?: string;
}

/**
 * The results a local edge stack has seen: the latest `keep` by frame id (oldest first), and
 * running totals of all of them. Bounded because `loupe edge` runs for days: a map of every
 * result grew the stack's process by about 1 KB per frame (found by the 30-minute soak), and
 * counting by walking it cost more CPU with every frame. A frame delivered twice counts once
 * while its first result is still in the window (redeliveries come seconds apart).
 */
export class ResultWindow {
  readonly results = new Map<string, ResultMessage>();
  readonly tally: ResultTally = { inferred: 0, defects: 0, errors: 0 };

  constructor(readonly keep = 10_000) {
    if (!(Number.isInteger(keep) && keep >= 1))
      throw new LoupeError('EDGE_KEEP_RESULTS', 'must be a positive integer', { input: `keepResults ${String(keep)}` });
  }

  /** Record a result; false when its frame was already counted. */
  add(r: ResultMessage): boolean {
    if (this.results.has(r.frameId)) return false;
    this.results.set(r.frameId, r);
    if (this.results.size > this.keep) this.results.delete(this.results.keys().next().value as string);
    this.tally.inferred++;
    if (r.verdict === 'fail') this.tally.defects++;
    if (r.verdict === 'error') {
      this.tally.errors++;
      this.tally.firstError ??= r.error ?? 'no reason given';
    }
    return true;
  }
}
