import type { ErrorCode } from './error-codes.js';

export type { ErrorCode } from './error-codes.js';

/**
 * The one error type loupe raises for bad input and failed operations. `input` names what was
 * wrong (a file, a config key, a record) so the message can be acted on; `code` is stable and
 * testable and listed, with its meaning, in ./error-codes.ts. The CLI prints `loupe: <message>` and exits with `exitCode`.
 */
export class LoupeError extends Error {
  readonly code: ErrorCode;
  readonly input?: string;
  readonly exitCode: number;

  constructor(code: ErrorCode, message: string, opts: { input?: string; cause?: unknown; exitCode?: number } = {}) {
    super(opts.input ? `${opts.input}: ${message}` : message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'LoupeError';
    this.code = code;
    this.input = opts.input;
    this.exitCode = opts.exitCode ?? 1;
  }
}

export function isLoupeError(e: unknown): e is LoupeError {
  return e instanceof LoupeError;
}

/** Message of any thrown value, for logs. */
export function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
