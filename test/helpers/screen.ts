import xterm from '@xterm/headless';
import serialize from '@xterm/addon-serialize';

/**
 * A real terminal emulator (xterm.js, headless) behind a fake TTY stream: what loupe writes to
 * "stderr" lands on a screen, with cursor moves and line erases applied as a terminal applies
 * them, so tests can read the rows a person would see (and render them to HTML for screenshots).
 */
export class FakeTty {
  readonly isTTY = true;
  readonly term: xterm.Terminal;
  readonly raw: string[] = [];
  private readonly ser = new serialize.SerializeAddon();
  private pending: Promise<void> = Promise.resolve();

  constructor(
    readonly columns = 100,
    readonly rows = 40,
  ) {
    this.term = new xterm.Terminal({ cols: columns, rows, scrollback: 5000, allowProposedApi: true, convertEol: false });
    this.term.loadAddon(this.ser);
  }

  write(chunk: string | Uint8Array): boolean {
    const s = typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8');
    this.raw.push(s);
    // A TTY turns \n into \r\n (onlcr); the emulator needs the \r spelled out.
    const data = s.replace(/\r?\n/g, '\r\n');
    this.pending = this.pending.then(() => new Promise<void>((res) => this.term.write(data, res)));
    return true;
  }

  on(): this {
    return this;
  }

  /** Every row of the screen and its scrollback, trailing blanks trimmed, after all writes are applied. */
  async lines(): Promise<string[]> {
    await this.pending;
    const buf = this.term.buffer.active;
    const out: string[] = [];
    for (let i = 0; i < buf.length; i++) out.push((buf.getLine(i)?.translateToString(true) ?? '').trimEnd());
    while (out.length && out[out.length - 1] === '') out.pop();
    return out;
  }

  /** The screen (with scrollback) as HTML with its colours, for a screenshot. */
  async html(): Promise<string> {
    await this.pending;
    return this.ser.serializeAsHTML({ includeGlobalBackground: true });
  }

  asStream(): NodeJS.WriteStream {
    return this as unknown as NodeJS.WriteStream;
  }
}
