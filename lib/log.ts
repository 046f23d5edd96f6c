import { pino, type Logger, type DestinationStream } from 'pino';

export type { Logger } from 'pino';

/**
 * Structured logs, one JSON event per line. CLI commands log to stderr so that stdout stays
 * machine-readable (`--json` output); components log to stdout, which the nucleus captures
 * into each component's own log file.
 */
export function createLogger(
  name: string,
  opts: { level?: string; stream?: 'stdout' | 'stderr' | DestinationStream } = {},
): Logger {
  const level = opts.level ?? process.env.LOUPE_LOG_LEVEL ?? 'info';
  const stream = opts.stream ?? 'stdout';
  const dest =
    typeof stream === 'string' ? pino.destination({ fd: stream === 'stderr' ? 2 : 1, sync: true }) : stream;
  return pino({ name, level, base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime }, dest);
}

/** A logger that discards everything (library defaults, quiet tests). */
export const silentLogger: Logger = pino({ level: 'silent' });
