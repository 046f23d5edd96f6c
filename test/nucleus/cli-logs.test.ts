import { appendFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { followLog, humanLine, parseFilters, selectLines } from '../../cli/nucleus-logs.js';
import { until } from '../helpers/nucleus.js';

/** `loupe nucleus logs --filter/--format/--follow` on files, as greengrass-cli logs get does. */
const dir = mkdtempSync(join(tmpdir(), 'lnl-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const json = (o: Record<string, unknown>) => JSON.stringify(o);
const lines = [
  json({
    level: 30,
    time: Date.UTC(2026, 11, 3, 10, 0, 0),
    pid: 1,
    hostname: 'h',
    name: 'nucleus',
    msg: 'deployment started',
    deploymentId: 'd1',
  }),
  json({
    level: 50,
    time: Date.UTC(2026, 11, 3, 10, 0, 1),
    pid: 1,
    hostname: 'h',
    name: 'nucleus',
    msg: 'component broken',
    component: 'loupe.Camera',
  }),
  'plain text line from a component: frame 7',
];

describe('nucleus log filters and formats', () => {
  it('key=value matches JSON fields (pino levels by name, case-insensitive); a regex matches the line; all filters must match', () => {
    const text = lines.join('\n') + '\n';
    expect(selectLines(text, parseFilters(['level=ERROR']), false)).toEqual([lines[1]]);
    expect(selectLines(text, parseFilters(['level=error', 'component=loupe.Camera']), false)).toEqual([lines[1]]);
    expect(selectLines(text, parseFilters(['deploymentId=d1']), false)).toEqual([lines[0]]);
    expect(selectLines(text, parseFilters(['frame \\d+']), false)).toEqual([lines[2]]);
    expect(selectLines(text, parseFilters([]), false)).toEqual(lines);
    expect(() => parseFilters(['(unclosed'])).toThrow(/--filter \(unclosed: not key=value nor a valid regular expression/);
  });

  it('human format: time LEVEL msg key=value; other lines as they are', () => {
    expect(humanLine(lines[1]!)).toBe('2026-12-03T10:00:01.000Z ERROR component broken name=nucleus component=loupe.Camera');
    expect(humanLine(lines[2]!)).toBe(lines[2]);
    expect(humanLine('{not json')).toBe('{not json');
  });

  it('--follow prints appended lines only, filtered, and starts over when the file is rotated', async () => {
    const file = join(dir, 'c.log');
    writeFileSync(file, 'old line\n');
    const seen: string[] = [];
    const stop = new AbortController();
    const done = followLog(file, 9, (l) => seen.push(l), {
      filters: parseFilters(['^keep']),
      human: false,
      pollMs: 20,
      signal: stop.signal,
    });
    appendFileSync(file, 'keep 1\ndrop 2\nkeep 3 (partial');
    await until(() => seen.length === 1, 5000);
    appendFileSync(file, ')\n');
    await until(() => seen.length === 2, 5000);
    writeFileSync(file, 'keep 4 after rotation\n'); // shorter than before: rotated
    await until(() => seen.length === 3, 5000);
    stop.abort();
    await done;
    expect(seen).toEqual(['keep 1', 'keep 3 (partial)', 'keep 4 after rotation']);
  });
});
