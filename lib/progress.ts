import type { Logger } from 'pino';
import { barsWanted, terminal, type LiveLine } from './terminal.js';

/**
 * Progress for long work (training, uploads, data set builds, evaluation).
 *
 * At a terminal in human format (terminal.ts has the rule) it is a live bar at the bottom of
 * stderr, with count, rate, elapsed time and ETA, redrawn at most every 100 ms and never on a
 * log line's row:
 *   inspect+upload ██████████▌          52%  6/12  0.41 img/s  0:14<0:14  frames=44
 * When finished it leaves one permanent line with the totals. Otherwise (JSON format, a pipe,
 * CI) it is a structured log event at most every `logEveryMs`, and one at the end, so a log
 * collector can follow along.
 */
export interface ProgressOptions {
  /** Least time between two progress log events when no bar is drawn (default 5000; 0 = every update). */
  logEveryMs?: number;
  stream?: NodeJS.WriteStream;
  /** What is counted, for the rate ("img" gives "img/s"; default "it"); "B" shows counts and rates in kB/MB/GB. */
  unit?: string;
}

export function formatBytes(n: number): string {
  if (n < 1e3) return `${n} B`;
  const [d, u] = n < 1e6 ? [1e3, 'kB'] : n < 1e9 ? [1e6, 'MB'] : [1e9, 'GB'];
  return `${(n / d).toFixed(1)} ${u}`;
}

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '?';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, '0');
  return h ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`;
}

function formatRate(perSecond: number, unit: string): string {
  if (!Number.isFinite(perSecond) || perSecond <= 0) return `-- ${unit}/s`;
  if (unit === 'B') return `${formatBytes(Math.round(perSecond))}/s`;
  // Slow work reads better as seconds per item (tqdm does the same).
  if (perSecond < 0.1) return `${(1 / perSecond).toFixed(1)} s/${unit}`;
  return `${perSecond >= 100 ? perSecond.toFixed(0) : perSecond.toFixed(2)} ${unit}/s`;
}

function formatDetails(details: Record<string, unknown>): string {
  return Object.entries(details)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${k}=${typeof v === 'number' ? +v.toFixed(4) : String(v)}`)
    .join(' ');
}

const BLOCKS = ['', '▏', '▎', '▍', '▌', '▋', '▊', '▉'];

export function barGlyphs(frac: number, width: number): string {
  const f = Math.max(0, Math.min(1, frac)) * width;
  const full = Math.floor(f);
  const part = BLOCKS[Math.floor((f - full) * 8)] ?? '';
  return ('█'.repeat(full) + part).padEnd(width, ' ');
}

export class Progress implements LiveLine {
  private done = 0;
  private lastLog = 0;
  private started = Date.now();
  private details: Record<string, unknown> = {};
  private readonly stream: NodeJS.WriteStream;
  private readonly bar: boolean;
  private shown = false;
  private finished = false;

  constructor(
    private readonly label: string,
    private total: number,
    private readonly log?: Logger,
    private readonly opts: ProgressOptions = {},
  ) {
    this.stream = opts.stream ?? process.stderr;
    this.bar = barsWanted(this.stream);
  }

  setTotal(total: number): void {
    this.total = total;
  }

  /** Start the clock again (work that waited before it began, e.g. a queue). */
  restartClock(): void {
    this.started = Date.now();
  }

  /** Advance to `done` (absolute), with optional details shown after the bar and logged. */
  update(done: number, details: Record<string, unknown> = {}): void {
    this.done = done;
    this.details = details;
    if (this.bar) {
      if (!this.shown) {
        this.shown = true;
        terminal(this.stream).add(this);
      } else terminal(this.stream).update();
      return;
    }
    const now = Date.now();
    if (now - this.lastLog >= (this.opts.logEveryMs ?? 5000) || (this.total > 0 && done >= this.total)) {
      this.lastLog = now;
      this.log?.info(
        { progress: this.label, done, total: this.total, elapsedS: +((now - this.started) / 1000).toFixed(1), ...details },
        `${this.label} ${done}/${this.total}`,
      );
    }
  }

  tick(details: Record<string, unknown> = {}): void {
    this.update(this.done + 1, details);
  }

  /** Done: the bar is replaced by one permanent line with the totals (or a final log event). */
  finish(details: Record<string, unknown> = {}): void {
    if (this.finished) return;
    this.finished = true;
    if (this.done < this.total) this.done = this.total;
    this.details = { ...this.details, ...details };
    const elapsed = (Date.now() - this.started) / 1000;
    if (this.bar) {
      const extra = formatDetails(this.details);
      const line = `${this.label} ${this.count(this.done)}/${this.count(this.total)} in ${formatDuration(elapsed)} (${formatRate(this.done / Math.max(elapsed, 1e-3), this.opts.unit ?? 'it')})${extra ? `  ${extra}` : ''}`;
      terminal(this.stream).remove(this, line);
      return;
    }
    if (this.lastLog === 0 || this.done > 0) {
      this.log?.info(
        { progress: this.label, done: this.done, total: this.total, elapsedS: +elapsed.toFixed(1), ...this.details },
        `${this.label} ${this.done}/${this.total} done`,
      );
    }
  }

  /** Take the bar away without a summary line (work abandoned; the caller reports why). */
  stop(): void {
    if (this.finished) return;
    this.finished = true;
    if (this.bar && this.shown) terminal(this.stream).remove(this);
  }

  private count(n: number): string {
    return this.opts.unit === 'B' ? formatBytes(n) : String(n);
  }

  render(cols: number): string {
    const elapsed = (Date.now() - this.started) / 1000;
    const rate = this.done / Math.max(elapsed, 1e-3);
    const known = this.total > 0;
    const frac = known ? Math.min(1, this.done / this.total) : 0;
    const eta = known && rate > 0 ? (this.total - this.done) / rate : NaN;
    const extra = formatDetails(this.details);
    const width = Math.max(10, Math.min(30, cols - 70));
    const pct = known ? `${String(Math.floor(frac * 100)).padStart(3)}%` : '   ?';
    return `${this.label} ${barGlyphs(frac, width)} ${pct}  ${this.count(this.done)}/${known ? this.count(this.total) : '?'}  ${formatRate(rate, this.opts.unit ?? 'it')}  ${formatDuration(elapsed)}<${formatDuration(eta)}${extra ? `  ${extra}` : ''}`;
  }
}
