/** JSON pointers (RFC 6901), as recipe variables and configuration resets use them. */
export function parsePointer(pointer: string): string[] {
  if (pointer === '') return [];
  if (!pointer.startsWith('/')) throw new Error(`JSON pointer "${pointer}" must start with "/"`);
  return pointer
    .slice(1)
    .split('/')
    .map((p) => p.replaceAll('~1', '/').replaceAll('~0', '~'));
}

export function formatPointer(path: readonly string[]): string {
  return path.map((p) => '/' + p.replaceAll('~', '~0').replaceAll('/', '~1')).join('');
}

export function isPlainObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

export function getPath(root: unknown, path: readonly string[]): { found: boolean; value: unknown } {
  let cur: unknown = root;
  for (const k of path) {
    if (!isPlainObject(cur) || !hasOwn(cur, k)) return { found: false, value: undefined };
    cur = cur[k];
  }
  return { found: true, value: cur };
}

/**
 * Keys are whatever components and recipes name them, `__proto__` and `constructor` included (the
 * real nucleus keeps any string). So trees are read by own property only and written by
 * defining a property: `tree['__proto__'] = {}` would instead reach Object.prototype, and one
 * UpdateConfiguration of ["__proto__", "x"] polluted every object in the nucleus (found by the
 * IPC fuzz target, test/fuzz/ipc.test.ts).
 */
export function hasOwn(o: object, k: string): boolean {
  return Object.prototype.hasOwnProperty.call(o, k);
}

export function setOwn(o: Record<string, unknown>, k: string, v: unknown): void {
  Object.defineProperty(o, k, { value: v, writable: true, enumerable: true, configurable: true });
}

/** Deep merge `patch` into a copy of `base`: maps merge, everything else replaces. */
export function deepMerge(base: unknown, patch: unknown): unknown {
  if (!isPlainObject(base) || !isPlainObject(patch)) return structuredClone(patch);
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(patch)) setOwn(out, k, hasOwn(base, k) ? deepMerge(base[k], v) : structuredClone(v));
  return out;
}

export function setPath(root: Record<string, unknown>, path: readonly string[], value: unknown): void {
  let cur = root;
  for (let i = 0; i < path.length - 1; i++) {
    const k = path[i]!;
    if (!hasOwn(cur, k) || !isPlainObject(cur[k])) setOwn(cur, k, {});
    cur = cur[k] as Record<string, unknown>;
  }
  setOwn(cur, path[path.length - 1]!, value);
}

export function deletePath(root: Record<string, unknown>, path: readonly string[]): void {
  let cur: unknown = root;
  for (let i = 0; i < path.length - 1; i++) {
    if (!isPlainObject(cur) || !hasOwn(cur, path[i]!)) return;
    cur = cur[path[i]!];
  }
  if (isPlainObject(cur)) delete cur[path[path.length - 1]!];
}

/** Paths of leaves (and emptied maps) that differ between two trees. */
export function changedPaths(a: unknown, b: unknown, prefix: string[] = []): string[][] {
  if (isPlainObject(a) && isPlainObject(b)) {
    const out: string[][] = [];
    for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) out.push(...changedPaths(a[k], b[k], [...prefix, k]));
    return out;
  }
  if (JSON.stringify(a) === JSON.stringify(b)) return [];
  // A map appeared, vanished or replaced a scalar: report its leaves, as the real config store
  // fires one event per created or removed topic.
  const out = new Map<string, string[]>();
  for (const side of [a, b]) if (isPlainObject(side)) for (const p of leafPaths(side, prefix)) out.set(p.join('\u0000'), p);
  if (out.size === 0) return [prefix];
  return [...out.values()];
}

/** Leaf paths of a tree (maps descend, everything else is a leaf). */
export function leafPaths(v: unknown, prefix: string[] = []): string[][] {
  if (isPlainObject(v) && Object.keys(v).length > 0) return Object.entries(v).flatMap(([k, c]) => leafPaths(c, [...prefix, k]));
  return [prefix];
}
