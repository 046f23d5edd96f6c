import { createHash } from 'node:crypto';
import type { SplitName } from './types.js';

/**
 * loupe's split rule: u = first 4 bytes of sha256(image id), big-endian, / 2^32;
 * train if u < 0.70, val if u < 0.85, else test. It depends on the id alone, so adding images
 * never moves an old one to another split (the gate's test split stays comparable).
 */
export const SPLIT_RULE = 'sha256(id)[0:4] BE / 2^32: <0.70 train, <0.85 val, else test';

export const DEFAULT_RATIOS = { train: 0.7, val: 0.15, test: 0.15 } as const;

export function splitOf(id: string, ratios: { train: number; val: number } = DEFAULT_RATIOS): SplitName {
  const u = createHash('sha256').update(id, 'utf8').digest().readUInt32BE(0) / 2 ** 32;
  if (u < ratios.train) return 'train';
  if (u < ratios.train + ratios.val) return 'val';
  return 'test';
}
