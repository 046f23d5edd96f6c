import { open, stat } from 'node:fs/promises';
import { LoupeError } from '../lib/errors.js';

/**
 * `loupe nucleus logs` filtering, formatting and following, shaped like greengrass-cli's
 * `logs get --log-file F --filter ... --follow`: a filter is `key=value` (a field of a JSON log
 * line, e.g. `level=ERROR`, matched case-insensitively on the value) or a regular expression
 * matched against the whole line; several filters must all match.
 */
export type LogFilter = (line: string) => boolean;

const PINO_LEVELS: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };

function parseJson(line: string): Record<string, unknown> | undefined {
  if (!line.startsWith('{')) return undefined;
  try {
    const v = JSON.parse(line) as unknown;
    return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** A JSON field's value as text; pino's numeric levels read as their names (level=ERROR). */
function fieldText(rec: Record<string, unknown>, key: string): string | undefined {
  const v = rec[key];
  if (v === undefined) return undefined;
  if (key === 'level' && typeof v === 'number') return PINO_LEVELS[v] ?? String(v);
  return typeof v === 'string' ? v : JSON.stringify(v);
}

export function parseFilters(specs: string[]): LogFilter[] {
  return specs.map((spec) => {
    const kv = /^([A-Za-z_][\w.-]*)=(.*)$/.exec(spec);
    if (kv) {
      const [, key, want] = kv as unknown as [string, string, string];
      return (line: string) => {
        const rec = parseJson(line);
        if (rec) return fieldText(rec, key)?.toLowerCase() === want.toLowerCase();
        return line.includes(spec);
      };
    }
    let re: RegExp;
    try {
      re = new RegExp(spec);
    } catch (e) {
      throw new LoupeError('CLI_FILTER', `not key=value nor a valid regular expression: ${(e as Error).message}`, {
        input: `--filter ${spec}`,
      });
    }
    return (line: string) => re.test(line);
  });
}

/** One line for people: JSON log lines as `time LEVEL msg key=value ...`; other lines as they are. */
export function humanLine(line: string): string {
  const rec = parseJson(line);
  if (!rec) return line;
  const { time, level, msg, pid: _pid, hostname: _host, ...rest } = rec;
  const when = typeof time === 'number' ? new Date(time).toISOString() : typeof time === 'string' ? time : '';
  const lvl = typeof level === 'number' ? (PINO_LEVELS[level] ?? String(level)) : typeof level === 'string' ? level.toUpperCase() : '';
  const extra = Object.entries(rest)
    .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
    .join(' ');
  return [when, lvl.padEnd(5), typeof msg === 'string' ? msg : '', extra].filter((x) => x !== '').join(' ');
}

export function selectLines(text: string, filters: LogFilter[], human: boolean): string[] {
  const lines = text.split('\n');
  if (lines.at(-1) === '') lines.pop();
  return lines.filter((l) => filters.every((f) => f(l))).map((l) => (human ? humanLine(l) : l));
}

/**
 * Follow a log file from `offset` like `tail -F`: print whole lines as they are appended; when the
 * file shrinks (the nucleus rotated it), start again from its beginning. Polls: inotify-based
 * watchers miss rotations by rename, and a component log grows at most a few lines a second.
 */
export async function followLog(
  file: string,
  offset: number,
  out: (line: string) => void,
  opts: { filters: LogFilter[]; human: boolean; pollMs?: number; signal?: AbortSignal },
): Promise<void> {
  let pos = offset;
  let partial = '';
  const poll = opts.pollMs ?? 250;
  while (!opts.signal?.aborted) {
    let size = pos;
    try {
      size = (await stat(file)).size;
    } catch {
      // rotated away for a moment: try again
    }
    if (size < pos) {
      pos = 0;
      partial = '';
    }
    if (size > pos) {
      const fh = await open(file, 'r');
      try {
        const buf = Buffer.alloc(size - pos);
        const { bytesRead } = await fh.read(buf, 0, buf.length, pos);
        pos += bytesRead;
        const text = partial + buf.subarray(0, bytesRead).toString('utf8');
        const cut = text.lastIndexOf('\n');
        partial = cut < 0 ? text : text.slice(cut + 1);
        if (cut >= 0) for (const l of selectLines(text.slice(0, cut + 1), opts.filters, opts.human)) out(l);
      } finally {
        await fh.close();
      }
    }
    await new Promise((r) => setTimeout(r, poll));
  }
}
