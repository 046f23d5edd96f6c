import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { humanDestination } from '../../lib/log.js';
import { barGlyphs, formatBytes, formatDuration, Progress } from '../../lib/progress.js';
import { configureOutput, resetOutput, terminal } from '../../lib/terminal.js';
import { FakeTty } from '../helpers/screen.js';

/** lib/progress.ts: rate, ETA and throttling of the bar; log events when no bar; bars and log lines on a terminal. */
let savedNoProgress: string | undefined;
beforeEach(() => {
  savedNoProgress = process.env.LOUPE_NO_PROGRESS;
  delete process.env.LOUPE_NO_PROGRESS;
  resetOutput();
});
afterEach(() => {
  if (savedNoProgress === undefined) delete process.env.LOUPE_NO_PROGRESS;
  else process.env.LOUPE_NO_PROGRESS = savedNoProgress;
  resetOutput();
  vi.useRealTimers();
});

/** A logger that keeps its events. */
function captureLog(): { log: pino.Logger; events: Record<string, unknown>[] } {
  const events: Record<string, unknown>[] = [];
  const log = pino({ level: 'info' }, { write: (s: string) => events.push(JSON.parse(s) as Record<string, unknown>) });
  return { log, events };
}

describe('formats', () => {
  it('durations, bytes and bar glyphs', () => {
    expect([
      formatDuration(0),
      formatDuration(59.6),
      formatDuration(61),
      formatDuration(3725),
      formatDuration(NaN),
      formatDuration(-1),
    ]).toEqual(['0:00', '1:00', '1:01', '1:02:05', '?', '?']);
    expect([formatBytes(999), formatBytes(1500), formatBytes(2_500_000), formatBytes(3.2e9)]).toEqual([
      '999 B',
      '1.5 kB',
      '2.5 MB',
      '3.2 GB',
    ]);
    expect(barGlyphs(0.5, 4)).toBe('██  ');
    expect(barGlyphs(0.5625, 2)).toBe('█▏'); // eighths of a cell
    expect(barGlyphs(2, 3)).toBe('███');
    expect(barGlyphs(-1, 3)).toBe('   ');
  });
});

describe('the bar line', () => {
  it('shows percent, count, rate, elapsed and ETA from the clock', () => {
    vi.useFakeTimers();
    vi.setSystemTime(new Date('2026-01-01T00:00:00Z'));
    const p = new Progress('train', 10, undefined, { stream: { isTTY: false } as NodeJS.WriteStream, unit: 'img' });
    vi.setSystemTime(new Date('2026-01-01T00:00:10Z'));
    p.update(4, { loss: 1.23456 });
    // 4 in 10 s: 0.40 img/s; 6 left: 15 s
    expect(p.render(120)).toMatch(/^train █+\S*\s+ 40% {2}4\/10 {2}0\.40 img\/s {2}0:10<0:15 {2}loss=1\.2346$/);
    // slow work reads as seconds per item
    vi.setSystemTime(new Date('2026-01-01T00:01:40Z'));
    p.update(5);
    expect(p.render(120)).toContain('20.0 s/img');
    // unknown total: no percent, no ETA
    const q = new Progress('scan', 0, undefined, { stream: { isTTY: false } as NodeJS.WriteStream });
    q.update(3);
    expect(q.render(120)).toMatch(/scan .*\s+\? {2}3\/\? {2}.*<\?$/);
  });

  it('counts bytes in kB/MB with unit B', () => {
    vi.useFakeTimers();
    vi.setSystemTime(0);
    const p = new Progress('download torch', 2_000_000, undefined, { stream: { isTTY: false } as NodeJS.WriteStream, unit: 'B' });
    vi.setSystemTime(2000);
    p.update(1_000_000);
    expect(p.render(120)).toMatch(/ 50% {2}1\.0 MB\/2\.0 MB {2}500\.0 kB\/s {2}0:02<0:02$/);
  });
});

describe('without a terminal: log events', () => {
  it('at most one every logEveryMs, the last update always, and one at the end', () => {
    vi.useFakeTimers();
    const t0 = Date.parse('2026-01-01T00:00:00Z');
    vi.setSystemTime(t0);
    const { log, events } = captureLog();
    const p = new Progress('import', 100, log, { stream: { isTTY: false } as NodeJS.WriteStream, logEveryMs: 1000 });
    for (let i = 1; i <= 100; i++) {
      vi.setSystemTime(t0 + i * 50); // 5 s in all
      p.update(i);
    }
    p.finish({ boxes: 7 });
    const done = events.map((e) => e.done);
    expect(done).toEqual([1, 21, 41, 61, 81, 100, 100]); // first at once, then >= 1 s apart, the last update, the finish
    expect(events.at(-1)).toMatchObject({ progress: 'import', done: 100, total: 100, boxes: 7, msg: 'import 100/100 done' });
  });
});

describe('at a terminal', () => {
  it('the bar stays below the log lines, is redrawn after each one, and leaves one summary line', async () => {
    configureOutput({ logFormat: 'human' });
    const screen = new FakeTty(100, 30);
    const stream = screen.asStream();
    const log = pino({ level: 'info', base: { pid: 1 } }, humanDestination(stream));
    const p = new Progress('inspect+upload', 12, log, { stream, unit: 'img' });
    for (let i = 1; i <= 12; i++) {
      p.update(i, { frames: i * 4 });
      if (i % 3 === 0) log.info({ i }, `uploaded batch ${i / 3}`);
    }
    let rows = await screen.lines();
    // four log lines, then the live bar as the last row, and the bar nowhere else
    expect(rows.filter((r) => r.includes('uploaded batch'))).toHaveLength(4);
    expect(rows.filter((r) => r.includes('inspect+upload'))).toHaveLength(1);
    expect(rows.at(-1)).toMatch(/^inspect\+upload .* 12\/12 /);
    for (const r of rows) expect(r.includes('uploaded batch') && r.includes('inspect+upload')).toBe(false);
    p.finish();
    log.info('after the bar');
    rows = await screen.lines();
    expect(rows.at(-2)).toMatch(/^inspect\+upload 12\/12 in 0:00 \(.* img\/s\) {2}frames=48$/);
    expect(rows.at(-1)).toMatch(/INFO.*after the bar/);
    terminal(stream).release();
  });
});
