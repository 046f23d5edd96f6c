import type { z } from 'zod';
import { LoupeError } from '../../lib/errors.js';

/**
 * Validate a component's configuration once, at its edge, with its zod schema. The error names
 * every bad key by its path and shows the bad value, e.g.
 * `loupe.Inference configuration: queue.max: must be >= 1 (got 0)`.
 */
export function parseConfig<S extends z.ZodType>(schema: S, raw: unknown, component: string): z.infer<S> {
  const r = schema.safeParse(raw ?? {});
  if (r.success) return r.data;
  const problems = r.error.issues.map((i) => {
    const path = i.path.map(String).join('.') || '(root)';
    const got = valueAt(raw, i.path as PropertyKey[]);
    return `${path}: ${i.message}${got === undefined ? '' : ` (got ${JSON.stringify(got)?.slice(0, 80)})`}`;
  });
  throw new LoupeError('config.invalid', problems.join('; '), { input: `${component} configuration` });
}

function valueAt(v: unknown, path: PropertyKey[]): unknown {
  let cur = v;
  for (const k of path) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<PropertyKey, unknown>)[k];
  }
  return cur;
}

/**
 * Greengrass hands configuration values through JSON, but scalars set from recipe variables or
 * the console may arrive as strings ("5"); schemas use this to accept both.
 */
export function num(v: unknown): unknown {
  return typeof v === 'string' && v.trim() !== '' && !Number.isNaN(Number(v)) ? Number(v) : v;
}

export function bool(v: unknown): unknown {
  return v === 'true' ? true : v === 'false' ? false : v;
}
