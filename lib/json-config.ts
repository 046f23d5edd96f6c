import { existsSync, readFileSync } from 'node:fs';
import type { z } from 'zod';
import type { ErrorCode } from './error-codes.js';
import { LoupeError } from './errors.js';

/**
 * The codes (and the not-found hint) a configuration file's errors carry. Callers write them
 * `'X_NO_CONFIG' satisfies ErrorCode`: tsc holds them to the catalogue, and the catalogue test
 * (test/architecture/error-codes.ts) counts such a literal as raised where it is written.
 */
export interface JsonConfigErrors {
  /** The file does not exist. */
  missing: ErrorCode;
  /** What to tell a user whose file is missing (where an example is, what writes one). */
  missingMessage: string;
  /** Not JSON, or not what the schema allows. */
  invalid: ErrorCode;
}

/**
 * A configuration object checked against its schema. The error names the first key at fault and,
 * for a plain value, the value given: `edge.rollout.maxFailures: Too big ... (got 200)`.
 */
export function parseJsonConfig<S extends z.ZodType>(raw: unknown, schema: S, source: string, invalid: ErrorCode): z.output<S> {
  const r = schema.safeParse(raw);
  if (r.success) return r.data;
  const issue = r.error.issues[0]!;
  const key = issue.path.join('.') || '(root)';
  let value: unknown = raw;
  for (const p of issue.path)
    value = value && typeof value === 'object' ? (value as Record<string | number, unknown>)[p as string] : undefined;
  throw new LoupeError(
    invalid,
    `${key}: ${issue.message}${value !== undefined && typeof value !== 'object' ? ` (got ${JSON.stringify(value)})` : ''}`,
    {
      input: source,
    },
  );
}

/** A JSON configuration file read and checked against its schema: missing, not JSON, or invalid each fail with its code. */
export function readJsonConfig<S extends z.ZodType>(path: string, schema: S, errors: JsonConfigErrors): z.output<S> {
  if (!existsSync(path)) throw new LoupeError(errors.missing, errors.missingMessage, { input: path });
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new LoupeError(errors.invalid, `not valid JSON (${(e as Error).message})`, { input: path });
  }
  return parseJsonConfig(raw, schema, path, errors.invalid);
}
