import { spawn, type ChildProcess } from 'node:child_process';
import { LoupeError } from '../../../lib/errors.js';
import { JpegSplitter } from '../jpeg-splitter.js';
import type { Frame, FrameSource } from './source.js';

/**
 * Base for sources that are a child process writing JPEG frames to stdout (ffmpeg for V4L2 and
 * network streams, or any capture tool). The newest frame wins: if the consumer is slower than
 * the camera, older unread frames are dropped (and counted) so a trigger always gets a fresh
 * image. A process that exits, or sends no frame within `frameTimeoutMs`, fails `next()`; the
 * camera supervisor then reopens it with backoff.
 */
export abstract class ProcessJpegSource implements FrameSource {
  abstract readonly kind: string;
  private child?: ChildProcess;
  private latest?: Buffer;
  private waiter?: { resolve: (f: Frame) => void; reject: (e: Error) => void; timer: NodeJS.Timeout };
  private failure?: Error;
  private stderrTail = '';
  dropped = 0;

  constructor(private readonly frameTimeoutMs: number) {}

  protected abstract command(): { cmd: string; args: string[]; env?: Record<string, string> };
  protected abstract describe(): string;

  async open(): Promise<void> {
    const { cmd, args, env } = this.command();
    this.failure = undefined;
    this.latest = undefined;
    this.stderrTail = '';
    const splitter = new JpegSplitter();
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
    this.child = child;
    child.stdout!.on('data', (chunk: Buffer) => {
      for (const img of splitter.push(chunk)) {
        if (this.waiter) {
          const w = this.waiter;
          this.waiter = undefined;
          clearTimeout(w.timer);
          w.resolve({ data: img, ext: 'jpg', origin: this.describe() });
        } else {
          if (this.latest) this.dropped++;
          this.latest = img;
        }
      }
    });
    child.stderr!.on('data', (c: Buffer) => {
      this.stderrTail = (this.stderrTail + c.toString()).slice(-600);
    });
    const fail = (e: Error) => {
      if (this.child !== child) return;
      this.failure ??= e;
      if (this.waiter) {
        const w = this.waiter;
        this.waiter = undefined;
        clearTimeout(w.timer);
        w.reject(this.failure);
      }
    };
    child.on('error', (e) => fail(new LoupeError('camera.process', `cannot run ${cmd}: ${e.message}`, { input: this.describe() })));
    child.on('exit', (code, sig) =>
      fail(
        new LoupeError(
          'camera.process',
          `${cmd} exited (${sig ?? code})${this.stderrTail ? `: ${this.stderrTail.trim().split('\n').slice(-2).join(' | ')}` : ''}`,
          { input: this.describe() },
        ),
      ),
    );
  }

  next(): Promise<Frame | null> {
    if (this.latest) {
      const data = this.latest;
      this.latest = undefined;
      return Promise.resolve({ data, ext: 'jpg', origin: this.describe() });
    }
    if (this.failure) return Promise.reject(this.failure);
    if (!this.child) return Promise.reject(new LoupeError('camera.process', 'source is not open', { input: this.describe() }));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = undefined;
        reject(new LoupeError('camera.timeout', `no frame within ${this.frameTimeoutMs} ms`, { input: this.describe() }));
      }, this.frameTimeoutMs);
      this.waiter = { resolve, reject, timer };
    });
  }

  async close(): Promise<void> {
    const child = this.child;
    this.child = undefined;
    if (this.waiter) {
      clearTimeout(this.waiter.timer);
      this.waiter.reject(new LoupeError('camera.closed', 'source closed', { input: this.describe() }));
      this.waiter = undefined;
    }
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    await new Promise<void>((res) => {
      const t = setTimeout(() => child.kill('SIGKILL'), 2000);
      child.once('exit', () => {
        clearTimeout(t);
        res();
      });
      child.kill('SIGTERM');
    });
  }
}
