import { describe, expect, it } from 'vitest';
import type { ResultMessage } from '../../contracts/topics.js';
import { ResultWindow } from '../../embedded/stack/result-window.js';
import { LoupeError } from '../../lib/errors.js';

const result = (seq: number, verdict: ResultMessage['verdict'], error?: string): ResultMessage =>
  ({
    frameId: `cam-run-${String(seq).padStart(7, '0')}`,
    camera: 'cam',
    seq,
    time: new Date(0).toISOString(),
    trigger: 'interval',
    path: `/frames/${seq}.jpg`,
    bytes: 1,
    width: 1,
    height: 1,
    verdict,
    reasons: [],
    detections: [],
    model: { name: 'm', version: '1.0.0', sha256: 'x' },
    latencyMs: 1,
    inferMs: 1,
    ...(error ? { error } : {}),
  }) as ResultMessage;

describe('the edge stack keeps a bounded window of results and counts them all', () => {
  it('holds only the latest results, and its totals cover every one', () => {
    const w = new ResultWindow(100);
    for (let i = 1; i <= 1000; i++) w.add(result(i, i % 10 === 0 ? 'fail' : 'pass'));
    w.add(result(1001, 'error', 'frame file is gone: /frames/1001.jpg'));
    expect(w.results.size).toBe(100);
    // oldest first: the window is frames 902..1001
    expect([...w.results.values()][0]!.seq).toBe(902);
    expect([...w.results.values()].at(-1)!.seq).toBe(1001);
    expect(w.tally).toEqual({ inferred: 1001, defects: 100, errors: 1, firstError: 'frame file is gone: /frames/1001.jpg' });
  });

  it('counts a redelivered frame once while its first result is held', () => {
    const w = new ResultWindow(3);
    expect(w.add(result(1, 'fail'))).toBe(true);
    expect(w.add(result(1, 'fail'))).toBe(false);
    expect(w.tally).toMatchObject({ inferred: 1, defects: 1 });
  });

  it('names a bad bound', () => {
    for (const bad of [0, -1, 1.5, Number.NaN]) expect(() => new ResultWindow(bad)).toThrow(LoupeError);
    expect(() => new ResultWindow(0)).toThrow('keepResults 0: must be a positive integer');
  });
});
