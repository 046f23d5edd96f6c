import { createRequire } from 'node:module';
import { pino, type Logger, type DestinationStream } from 'pino';
import { onPipeError, outputFormat, terminal } from './terminal.js';

export type { Logger } from 'pino';

/**
 * Structured logs, one event per line. CLI commands log to stderr so that stdout stays
 * machine-readable (`--json` output); components log to stdout, which the nucleus captures
 * into each component's own log file.
 *
 * The format follows the one rule in terminal.ts: JSON lines (pino's own) for machines, and for
 * a person at a terminal one readable line per event, made by pino-pretty from the same event:
 *   14:22:01 INFO  demo  edge stack up  root=/tmp/le-x mqtt=mqtt://127.0.0.1:40123
 * Human lines go through the Terminal, so they never land on a progress bar's line.
 */
export function createLogger(name: string, opts: { level?: string; stream?: 'stdout' | 'stderr' | DestinationStream } = {}): Logger {
  const level = opts.level ?? process.env.LOUPE_LOG_LEVEL ?? 'info';
  const stream = opts.stream ?? 'stdout';
  const base = { name, level, base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime };
  if (typeof stream !== 'string') return pino(base, stream);
  const target = stream === 'stderr' ? process.stderr : process.stdout;
  if (outputFormat(target) === 'human') return pino(base, humanDestination(target));
  const dest = pino.destination({ fd: stream === 'stderr' ? 2 : 1, sync: true });
  dest.on('error', onPipeError); // a reader that left (EPIPE) is not the command's error
  return pino(base, dest);
}

const STANDARD_KEYS = new Set(['level', 'time', 'pid', 'hostname', 'name', 'msg', 'v']);

/** `key=value` for the event's own fields; strings with spaces and objects as compact JSON. */
export function formatFields(log: Record<string, unknown>, maxValue = 160): string {
  const parts: string[] = [];
  for (const [k, v] of Object.entries(log)) {
    if (STANDARD_KEYS.has(k) || v === undefined) continue;
    let s =
      typeof v === 'string'
        ? /^[^\s"=]+$/.test(v)
          ? v
          : JSON.stringify(v)
        : typeof v === 'number'
          ? String(+v.toFixed(4))
          : JSON.stringify(v);
    if (k === 'err' && v && typeof v === 'object' && 'message' in v) s = JSON.stringify((v as { message: unknown }).message);
    if (s.length > maxValue) s = `${s.slice(0, maxValue - 1)}…`;
    parts.push(`${k}=${s}`);
  }
  return parts.join(' ');
}

/** A pino destination that writes one human line per event through the stream's Terminal. */
export function humanDestination(target: NodeJS.WriteStream): DestinationStream {
  const color = Boolean(target.isTTY) && !process.env.NO_COLOR;
  // Loaded here, not at the top: pino-pretty (~30 modules, ~35 ms) serves a person only, and most
  // processes (CLI runs in pipes, components under the nucleus) write JSON lines.
  const { prettyFactory } = createRequire(import.meta.url)('pino-pretty') as typeof import('pino-pretty');
  const prettify = prettyFactory({
    colorize: color,
    translateTime: 'SYS:HH:MM:ss',
    ignore: 'pid,hostname,name',
    hideObject: true,
    singleLine: true,
    messageFormat: (log, messageKey, _level, extras) => {
      const c = extras.colors;
      const fields = formatFields(log);
      return `${c.cyan(String(log.name ?? ''))}  ${String(log[messageKey] ?? '')}${fields ? `  ${c.gray(fields)}` : ''}`;
    },
  });
  const term = terminal(target);
  return { write: (line: string) => term.line(prettify(line).replace(/\n$/, '')) };
}

/** A logger that discards everything (library defaults, quiet tests). */
export const silentLogger: Logger = pino({ level: 'silent' });
