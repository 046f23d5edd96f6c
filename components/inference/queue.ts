/**
 * Bounded frame queue between IPC delivery and the detector. When frames come faster than
 * inference, it drops by the configured policy and counts every drop: `drop-oldest` keeps the
 * newest frames (what the line is doing now), `drop-newest` refuses arrivals and keeps order.
 */
export class BoundedQueue<T> {
  private items: T[] = [];
  private waiters: ((v: T | null) => void)[] = [];
  private closed = false;
  dropped = 0;

  constructor(
    public max: number,
    public policy: 'drop-oldest' | 'drop-newest',
    private readonly onDrop?: (item: T) => void,
  ) {}

  push(item: T): void {
    if (this.closed) return;
    const w = this.waiters.shift();
    if (w) return w(item);
    if (this.items.length >= this.max) {
      this.dropped++;
      if (this.policy === 'drop-newest') return this.onDrop?.(item);
      this.onDrop?.(this.items.shift()!);
    }
    this.items.push(item);
  }

  /** Next item, waiting if empty; null once closed and drained. */
  pop(): Promise<T | null> {
    const it = this.items.shift();
    if (it !== undefined) return Promise.resolve(it);
    if (this.closed) return Promise.resolve(null);
    return new Promise((r) => this.waiters.push(r));
  }

  get depth(): number {
    return this.items.length;
  }

  /** Apply a new bound; a smaller one drops by policy now. */
  resize(max: number, policy: 'drop-oldest' | 'drop-newest'): void {
    this.max = max;
    this.policy = policy;
    while (this.items.length > max) {
      this.dropped++;
      this.onDrop?.(policy === 'drop-newest' ? this.items.pop()! : this.items.shift()!);
    }
  }

  close(): void {
    this.closed = true;
    for (const w of this.waiters.splice(0)) w(null);
  }
}
