import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  barsWanted,
  configureOutput,
  fitWidth,
  outputFormat,
  resetOutput,
  Terminal,
  visibleLength,
  type LiveLine,
} from '../../lib/terminal.js';
import { FakeTty } from '../helpers/screen.js';

/** lib/terminal.ts: the one output rule, and the bar area that log lines never share a row with. */
const ENV_KEYS = ['LOUPE_LOG_FORMAT', 'LOUPE_NO_PROGRESS'] as const;
let saved: Partial<Record<(typeof ENV_KEYS)[number], string>> = {};
beforeEach(() => {
  saved = Object.fromEntries(ENV_KEYS.map((k) => [k, process.env[k]]));
  for (const k of ENV_KEYS) delete process.env[k];
  resetOutput();
});
afterEach(() => {
  for (const k of ENV_KEYS) {
    if (saved[k] === undefined) delete process.env[k];
    else process.env[k] = saved[k];
  }
  resetOutput();
  vi.useRealTimers();
});

const tty = { isTTY: true };
const pipe = { isTTY: false };

describe('the output rule', () => {
  it('4. with nothing said: human at a terminal, JSON lines on a pipe or file', () => {
    expect(outputFormat(tty)).toBe('human');
    expect(outputFormat(pipe)).toBe('json');
  });

  it('3. LOUPE_LOG_FORMAT beats the terminal test', () => {
    process.env.LOUPE_LOG_FORMAT = 'json';
    expect(outputFormat(tty)).toBe('json');
    process.env.LOUPE_LOG_FORMAT = 'human';
    expect(outputFormat(pipe)).toBe('human');
  });

  it('2. --json means machine output on stderr too, over the environment', () => {
    process.env.LOUPE_LOG_FORMAT = 'human';
    configureOutput({ json: true });
    expect(outputFormat(tty)).toBe('json');
  });

  it('1. --log-format wins over everything; auto falls back to the rest of the rule', () => {
    process.env.LOUPE_LOG_FORMAT = 'json';
    configureOutput({ json: true, logFormat: 'human' });
    expect(outputFormat(pipe)).toBe('human');
    configureOutput({ logFormat: 'auto' });
    expect(outputFormat(tty)).toBe('json'); // the environment again
    delete process.env.LOUPE_LOG_FORMAT;
    expect(outputFormat(tty)).toBe('human');
  });

  it('refuses an unknown --log-format by name', () => {
    expect(() => configureOutput({ logFormat: 'pretty' })).toThrow(
      expect.objectContaining({ code: 'CLI_BAD_LOG_FORMAT', input: '--log-format' }),
    );
  });

  it('bars only at a terminal, in human format, and not with LOUPE_NO_PROGRESS=1', () => {
    const t = new FakeTty();
    expect(barsWanted(t.asStream())).toBe(true);
    expect(barsWanted({ isTTY: false } as NodeJS.WriteStream)).toBe(false);
    configureOutput({ logFormat: 'json' });
    expect(barsWanted(t.asStream())).toBe(false);
    resetOutput();
    process.env.LOUPE_NO_PROGRESS = '1';
    expect(barsWanted(t.asStream())).toBe(false);
  });
});

describe('widths', () => {
  it('colour sequences take no room; long lines are cut to the width with an ellipsis and a colour reset', () => {
    const s = '\x1b[32mgreen\x1b[0m text';
    expect(visibleLength(s)).toBe(10);
    expect(fitWidth(s, 20)).toBe(s);
    const cut = fitWidth('\x1b[32m' + 'x'.repeat(50) + '\x1b[0m', 10);
    expect(visibleLength(cut)).toBe(10);
    expect(cut.endsWith('…\x1b[0m')).toBe(true);
    expect(fitWidth('abcdefghijkl', 5)).toBe('abcd…');
  });
});

class Bar implements LiveLine {
  constructor(public text: string) {}
  render(): string {
    return this.text;
  }
}

describe('the bar area', () => {
  it('log lines land above the live lines, each on its own row; the screen holds each bar once (no debris)', async () => {
    const screen = new FakeTty(60, 12);
    const term = new Terminal(screen.asStream());
    const a = new Bar('BAR-A 10%');
    const b = new Bar('BAR-B 0%');
    term.line('log one');
    term.add(a);
    term.add(b);
    for (let i = 0; i < 5; i++) {
      a.text = `BAR-A ${20 + i * 10}%`;
      term.update();
      term.line(`log ${i + 2} ${'y'.repeat(i * 3)}`);
    }
    const rows = await screen.lines();
    expect(rows.slice(0, 6)).toEqual(['log one', 'log 2', 'log 3 yyy', 'log 4 yyyyyy', 'log 5 yyyyyyyyy', 'log 6 yyyyyyyyyyyy']);
    expect(rows.slice(6)).toEqual(['BAR-A 60%', 'BAR-B 0%']);
    // Take one bar away with a final line: it stays as a permanent row, the other bar stays live below it.
    term.remove(a, 'A done in 0:05');
    term.line('log 7');
    expect((await screen.lines()).slice(6)).toEqual(['A done in 0:05', 'log 7', 'BAR-B 0%']);
    term.release();
    expect((await screen.lines()).filter((r) => r.includes('BAR'))).toEqual(['BAR-B 0%']);
  });

  it('lines wider than the terminal are cut, so erasing by rows leaves nothing behind', async () => {
    const screen = new FakeTty(30, 8);
    const term = new Terminal(screen.asStream());
    const bar = new Bar('W'.repeat(80));
    term.add(bar);
    term.line('after');
    const rows = await screen.lines();
    expect(rows).toEqual(['after', `${'W'.repeat(28)}…`]);
  });

  it('redraws are throttled to one per 100 ms, and the last state always shows', async () => {
    vi.useFakeTimers();
    // A plain recording stream here: the emulator keeps its own timers, which fake time would freeze.
    const screen = {
      isTTY: true,
      columns: 40,
      raw: [] as string[],
      write(s: string) {
        this.raw.push(s);
        return true;
      },
    };
    const term = new Terminal(screen as unknown as NodeJS.WriteStream);
    const bar = new Bar('n=0');
    term.add(bar); // draws at once
    const before = screen.raw.length;
    for (let i = 1; i <= 200; i++) {
      bar.text = `n=${i}`;
      term.update();
      vi.advanceTimersByTime(2); // 200 updates over 400 ms
    }
    vi.advanceTimersByTime(200);
    const draws = screen.raw.length - before;
    expect(draws).toBeGreaterThanOrEqual(3);
    expect(draws).toBeLessThanOrEqual(5); // 400 ms / 100 ms, plus the trailing one
    expect(screen.raw.at(-1)).toMatch(/n=200$/);
  });
});
