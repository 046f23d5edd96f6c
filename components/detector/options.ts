import { InvalidArgumentError } from 'commander';

/**
 * Parsers for the detector's command-line options (shared by `loupe detect` and `loupe eval`).
 * They throw commander's InvalidArgumentError, which names the option and exits non-zero.
 */

export function parseUnit(v: string): number {
  const n = Number(v);
  if (v.trim() === '' || !(n >= 0 && n <= 1)) throw new InvalidArgumentError(`expected a number from 0 to 1, got "${v}"`);
  return n;
}

export function parsePositiveInt(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`expected a positive integer, got "${v}"`);
  return n;
}

/** `640` or `480,640` (h,w). */
export function parseImgsz(v: string): number | [number, number] {
  const parts = v.split(/[,x]/).map((s) => s.trim());
  const nums = parts.map(Number);
  if (parts.length < 1 || parts.length > 2 || nums.some((n) => !Number.isInteger(n) || n < 1)) {
    throw new InvalidArgumentError(`expected N or H,W (positive integers), got "${v}"`);
  }
  return nums.length === 1 ? nums[0] : [nums[0], nums[1]];
}

/** `a,b,c` -> names in class-id order. */
export function parseNames(v: string): string[] {
  const names = v.split(',').map((s) => s.trim());
  if (names.some((n) => n === '')) throw new InvalidArgumentError(`expected comma-separated class names with none empty, got "${v}"`);
  if (new Set(names).size !== names.length) throw new InvalidArgumentError(`class names repeat in "${v}"`);
  return names;
}

/** `scratch,dent` or `0,2`: class names or ids (checked against the model later). */
export function parseClassList(v: string): string[] {
  const items = v.split(',').map((s) => s.trim());
  if (items.some((s) => s === '')) throw new InvalidArgumentError(`expected comma-separated class names or ids, got "${v}"`);
  return items;
}

/** `scratch=0.4,dent=0.3` -> { scratch: 0.4, dent: 0.3 }. */
export function parseClassConf(v: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const part of v.split(',')) {
    const m = /^\s*([^=]+?)\s*=\s*([^=]+?)\s*$/.exec(part);
    const n = m ? Number(m[2]) : NaN;
    if (!m || !(n >= 0 && n <= 1))
      throw new InvalidArgumentError(
        `expected name=threshold pairs with thresholds from 0 to 1 (e.g. scratch=0.4,dent=0.3), got "${part}"`,
      );
    out[m[1]] = n;
  }
  return out;
}
