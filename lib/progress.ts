import type { Logger } from 'pino';

/**
 * Progress for long work (training, uploads, data set builds): a one-line bar redrawn on stderr
 * when it is a terminal, and a structured log event at most every `logEveryMs` either way, so
 * both a person and a log collector can follow along.
 */
export class Progress {
  private done = 0;
  private lastLog = 0;
  private readonly started = Date.now();
  private readonly tty: boolean;

  constructor(
    private readonly label: string,
    private total: number,
    private readonly log?: Logger,
    private readonly opts: { logEveryMs?: number; stream?: NodeJS.WriteStream } = {},
  ) {
    this.tty = Boolean((opts.stream ?? process.stderr).isTTY) && process.env.LOUPE_NO_PROGRESS !== '1';
  }

  setTotal(total: number): void {
    this.total = total;
  }

  /** Advance to `done` (absolute), with optional details shown after the bar and logged. */
  update(done: number, details: Record<string, unknown> = {}): void {
    this.done = done;
    const now = Date.now();
    if (this.tty) this.draw(details);
    if (now - this.lastLog >= (this.opts.logEveryMs ?? 5000) || done >= this.total) {
      this.lastLog = now;
      this.log?.info({ progress: this.label, done, total: this.total, elapsedS: (now - this.started) / 1000, ...details }, `${this.label} ${done}/${this.total}`);
    }
  }

  tick(details: Record<string, unknown> = {}): void {
    this.update(this.done + 1, details);
  }

  finish(details: Record<string, unknown> = {}): void {
    if (this.done < this.total) this.update(this.total, details);
    if (this.tty) (this.opts.stream ?? process.stderr).write('\n');
  }

  private draw(details: Record<string, unknown>): void {
    const width = 28;
    const frac = this.total > 0 ? Math.min(1, this.done / this.total) : 0;
    const fill = Math.round(frac * width);
    const extra = Object.entries(details)
      .map(([k, v]) => `${k}=${typeof v === 'number' ? +v.toFixed(4) : String(v)}`)
      .join(' ');
    (this.opts.stream ?? process.stderr).write(
      `\r${this.label} [${'#'.repeat(fill)}${'.'.repeat(width - fill)}] ${this.done}/${this.total} ${extra}`.slice(0, 160).padEnd(80),
    );
  }
}
