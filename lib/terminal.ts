import { LoupeError } from './errors.js';

/**
 * One rule for what every loupe command prints on stderr, and the one place that writes there
 * while progress bars are on screen.
 *
 * The rule (outputFormat):
 *   1. `--log-format human|json|auto` (any command) wins;
 *   2. else `--json` means machine output: JSON lines on stderr too;
 *   3. else LOUPE_LOG_FORMAT=human|json;
 *   4. else human when stderr is a terminal, JSON lines when it is not (a pipe, a file, CI).
 * Human mode shows log lines (time, level, component, message, key fields) and live progress
 * bars; JSON mode shows one JSON event per line and no bars (progress becomes log events).
 *
 * The Terminal keeps the live bars at the bottom of the screen: a log line first erases them,
 * is written on its own line, and the bars are drawn again below it, so the two never share a
 * line. Redraws are throttled (at most every 100 ms) and lines are cut to the terminal's width so
 * that the erase arithmetic holds (a wrapped line would leave debris).
 */
export type LogFormat = 'human' | 'json';
export const LOG_FORMATS = ['human', 'json', 'auto'] as const;

let explicitFormat: LogFormat | undefined;
let jsonFlag = false;

/** Called once per command, before its action, with the command's --json and the global --log-format. */
export function configureOutput(o: { json?: boolean; logFormat?: string }): void {
  if (o.logFormat !== undefined) {
    if (!(LOG_FORMATS as readonly string[]).includes(o.logFormat)) {
      throw new LoupeError('CLI_BAD_LOG_FORMAT', `must be one of ${LOG_FORMATS.join(', ')}, got "${o.logFormat}"`, {
        input: '--log-format',
      });
    }
    explicitFormat = o.logFormat === 'auto' ? undefined : (o.logFormat as LogFormat);
  }
  jsonFlag = Boolean(o.json);
}

/** Reset to the defaults (tests). */
export function resetOutput(): void {
  explicitFormat = undefined;
  jsonFlag = false;
}

export function outputFormat(stream: { isTTY?: boolean } = process.stderr): LogFormat {
  if (explicitFormat) return explicitFormat;
  if (jsonFlag) return 'json';
  const env = process.env.LOUPE_LOG_FORMAT;
  if (env === 'json' || env === 'human') return env;
  return stream.isTTY ? 'human' : 'json';
}

/** Whether bars are drawn on `stream`: a terminal, human format, and not turned off. */
export function barsWanted(stream: NodeJS.WriteStream): boolean {
  return Boolean(stream.isTTY) && outputFormat(stream) === 'human' && process.env.LOUPE_NO_PROGRESS !== '1';
}

/** Something the Terminal draws at the bottom: one line, at most `cols` wide. */
export interface LiveLine {
  render(cols: number): string;
}

const ESC = '\x1b[';
const REDRAW_MS = 100;

// Visible width: ANSI colour sequences take no room.
// eslint-disable-next-line no-control-regex
const ANSI = /\x1b\[[0-9;?]*[A-Za-z]/g;
export function visibleLength(s: string): number {
  return s.replace(ANSI, '').length;
}

/** Cut a line to `cols` visible characters, keeping colour sequences whole (and resetting them). */
export function fitWidth(s: string, cols: number): string {
  if (visibleLength(s) <= cols) return s;
  let out = '';
  let seen = 0;
  for (let i = 0; i < s.length && seen < cols - 1;) {
    ANSI.lastIndex = i;
    const m = ANSI.exec(s);
    if (m && m.index === i) {
      out += m[0];
      i += m[0].length;
      continue;
    }
    out += s[i];
    seen++;
    i++;
  }
  return `${out}…${s.includes('\x1b[') ? `${ESC}0m` : ''}`;
}

export class Terminal {
  private readonly lines: LiveLine[] = [];
  private drawn = 0;
  private lastDraw = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(readonly stream: NodeJS.WriteStream) {}

  get live(): boolean {
    return barsWanted(this.stream);
  }

  private cols(): number {
    return Math.max(20, (this.stream.columns || 100) - 1);
  }

  /** Write a permanent line (a log event, a result) above the live lines. */
  line(text: string): void {
    const body = text.endsWith('\n') ? text : `${text}\n`;
    if (!this.drawn) {
      this.stream.write(body);
      return;
    }
    this.stream.write(this.eraseSeq() + body);
    this.drawn = 0;
    this.drawNow();
  }

  add(l: LiveLine): void {
    if (!this.lines.includes(l)) this.lines.push(l);
    this.drawNow();
  }

  /** Take a live line away; `final` (its last state, or a summary) stays on screen as a permanent line. */
  remove(l: LiveLine, final?: string): void {
    const i = this.lines.indexOf(l);
    if (i >= 0) this.lines.splice(i, 1);
    const erase = this.drawn ? this.eraseSeq() : '';
    this.drawn = 0;
    this.stream.write(erase + (final !== undefined ? `${fitWidth(final, this.cols())}\n` : ''));
    this.drawNow();
  }

  /** Ask for a redraw; at most one every 100 ms actually happens (the last state always shows). */
  update(): void {
    const wait = REDRAW_MS - (Date.now() - this.lastDraw);
    if (wait <= 0) this.drawNow();
    else if (!this.timer) {
      this.timer = setTimeout(() => {
        this.timer = undefined;
        this.drawNow();
      }, wait);
      this.timer.unref();
    }
  }

  private eraseSeq(): string {
    // Cursor sits at the end of the last live line: clear it, then each line above it.
    return `\r${ESC}2K${`${ESC}1A${ESC}2K`.repeat(Math.max(0, this.drawn - 1))}`;
  }

  private drawNow(): void {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    this.lastDraw = Date.now();
    const cols = this.cols();
    const text = this.lines.map((l) => fitWidth(l.render(cols), cols));
    const erase = this.drawn ? this.eraseSeq() : '';
    if (!text.length && !erase) return;
    this.stream.write(erase + text.join('\n'));
    this.drawn = text.length;
  }

  /** Leave the cursor on a fresh line (process exit with bars still up). */
  release(): void {
    if (this.drawn) this.stream.write('\n');
    this.drawn = 0;
    this.lines.length = 0;
  }
}

const terminals = new WeakMap<NodeJS.WriteStream, Terminal>();

/** The Terminal of a stream (one per stream, so every writer shares the same bar area). */
export function terminal(stream: NodeJS.WriteStream = process.stderr): Terminal {
  let t = terminals.get(stream);
  if (!t) {
    t = new Terminal(stream);
    terminals.set(stream, t);
    const tt = t;
    process.once('exit', () => tt.release());
  }
  return t;
}

/** Print a line for a person on stderr (above any live bars). */
export function say(text: string, stream: NodeJS.WriteStream = process.stderr): void {
  terminal(stream).line(text);
}

/**
 * A reader that goes away (`loupe labels list | head`) closes the pipe; the next write fails with
 * EPIPE, which Node raises as an unhandled 'error' and a stack trace. The CLI calls this once, for
 * every command: a closed stdout/stderr is not an error of the command, so further output to that
 * stream is dropped and the command finishes (and keeps its exit code), as `git log | head` does.
 * Any other stream error is still raised.
 */
export function ignoreClosedPipes(streams: NodeJS.WritableStream[] = [process.stdout, process.stderr]): void {
  for (const s of streams) {
    if (guarded.has(s)) continue;
    guarded.add(s);
    s.on('error', onPipeError);
  }
}
const guarded = new WeakSet<NodeJS.WritableStream>();

/** The 'error' listener for output streams: EPIPE (the reader left) is dropped, anything else thrown. */
export function onPipeError(e: NodeJS.ErrnoException): void {
  if (e.code === 'EPIPE' || e.code === 'ERR_STREAM_DESTROYED') {
    closedPipe = true;
    return;
  }
  throw e;
}
let closedPipe = false;

/** Whether a reader closed one of the output pipes during this run. */
export function pipeClosed(): boolean {
  return closedPipe;
}
