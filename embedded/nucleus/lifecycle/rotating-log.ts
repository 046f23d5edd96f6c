import { closeSync, existsSync, fstatSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';

/**
 * A component's log file with size-based rotation, as Greengrass rotates component logs
 * (nucleus `logging.fileSizeKB`, default 1024, and `logging.totalLogsSizeKB`, default 10240):
 * when the file would pass fileSizeKB it becomes `<name>.log.1` (older ones shift up) and the
 * oldest beyond the total is deleted, so a component that logs all day never fills the disk.
 * Lines are appended synchronously: a line is on disk (page cache) when write returns, and a
 * rotation can never interleave with a pending write. A failing write (disk full) drops that
 * line and is counted, never thrown: a component's logging must not take the nucleus down.
 */
export interface LogRotation {
  fileSizeKB: number;
  totalLogsSizeKB: number;
}

export const DEFAULT_LOG_ROTATION: LogRotation = { fileSizeKB: 1024, totalLogsSizeKB: 10240 };

export interface LogSink {
  write(line: string): void;
  readonly destroyed: boolean;
}

export class RotatingLog implements LogSink {
  private fd: number | undefined;
  private size = 0;
  private closed = false;
  /** Lines lost to write errors (disk full, I/O error). */
  dropped = 0;
  private readonly maxBytes: number;
  private readonly keep: number;

  constructor(
    readonly path: string,
    rotation: LogRotation = DEFAULT_LOG_ROTATION,
  ) {
    this.maxBytes = Math.max(1, rotation.fileSizeKB) * 1024;
    this.keep = Math.max(0, Math.floor(rotation.totalLogsSizeKB / Math.max(1, rotation.fileSizeKB)) - 1);
    this.open();
  }

  get destroyed(): boolean {
    return this.closed;
  }

  write(line: string): void {
    if (this.closed) return;
    const b = Buffer.from(line);
    try {
      if (this.size > 0 && this.size + b.length > this.maxBytes) this.rotate();
      if (this.fd === undefined) this.open();
      writeSync(this.fd!, b);
      this.size += b.length;
    } catch {
      this.dropped++;
    }
  }

  end(cb?: () => void): void {
    this.closed = true;
    this.closeFd();
    cb?.();
  }

  private open(): void {
    try {
      this.fd = openSync(this.path, 'a');
      this.size = fstatSync(this.fd).size;
    } catch {
      this.fd = undefined; // retried at the next write
    }
  }

  private closeFd(): void {
    if (this.fd === undefined) return;
    try {
      closeSync(this.fd);
    } catch {
      // already gone
    }
    this.fd = undefined;
  }

  private rotate(): void {
    this.closeFd();
    if (this.keep === 0) rmSync(this.path, { force: true });
    else {
      rmSync(`${this.path}.${this.keep}`, { force: true });
      for (let i = this.keep - 1; i >= 1; i--)
        if (existsSync(`${this.path}.${i}`)) renameSync(`${this.path}.${i}`, `${this.path}.${i + 1}`);
      renameSync(this.path, `${this.path}.1`);
    }
    this.open();
  }
}
