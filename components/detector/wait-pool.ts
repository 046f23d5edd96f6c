/**
 * A set of reusable things (input buffers, sessions) handed out one caller at a time: take() gives
 * a free one or waits, in order, until one is given back.
 */
export class WaitPool<T> {
  private readonly free: T[];
  private readonly waiting: Array<(x: T) => void> = [];

  constructor(items: Iterable<T>) {
    this.free = [...items];
  }

  take(): Promise<T> {
    const x = this.free.pop();
    return x !== undefined ? Promise.resolve(x) : new Promise<T>((r) => this.waiting.push(r));
  }

  /** Back into the pool, or straight to the longest waiter. */
  give(x: T): void {
    const next = this.waiting.shift();
    if (next) next(x);
    else this.free.push(x);
  }
}
