/**
 * The listing engine behind ListObjects(V2) and ListMultipartUploads: walk sorted keys after a
 * marker, fold keys that contain the delimiter past the prefix into common prefixes, stop at
 * max-keys. Keys and prefixes both count towards max-keys, as in S3. `after` may be a key or a
 * common prefix returned earlier (continuation): keys folding into a prefix that sorts at or
 * before `after` were already returned as that prefix and are skipped.
 */
export interface ListResult {
  keys: string[];
  prefixes: string[];
  truncated: boolean;
  /** the last key or prefix returned: the next page starts after it */
  last?: string;
}

function lowerBound(sorted: string[], x: string): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid]! < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

export function listSorted(sorted: string[], opts: { prefix: string; delimiter?: string; after?: string; max: number }): ListResult {
  const { prefix, delimiter, max } = opts;
  const after = opts.after ?? '';
  const keys: string[] = [];
  const prefixes: string[] = [];
  let last: string | undefined;
  let truncated = false;
  // max-keys=0 asks for nothing: an empty, untruncated page (as S3 answers).
  if (max <= 0) return { keys, prefixes, truncated, last };
  for (let i = lowerBound(sorted, prefix > after ? prefix : after); i < sorted.length; i++) {
    const key = sorted[i]!;
    if (!key.startsWith(prefix)) break; // sorted: nothing later can match
    if (key <= after && after !== '') continue;
    let item = key;
    let isPrefix = false;
    if (delimiter) {
      const at = key.indexOf(delimiter, prefix.length);
      if (at >= 0) {
        item = key.slice(0, at + delimiter.length);
        isPrefix = true;
        if (item === last || (after !== '' && item <= after)) continue;
      }
    }
    if (keys.length + prefixes.length >= max) {
      truncated = true;
      break;
    }
    (isPrefix ? prefixes : keys).push(item);
    last = item;
  }
  return { keys, prefixes, truncated, last };
}
