import { describe, expect, it } from 'vitest';
import { readAhead } from '../../components/detector/read-ahead.js';
import { WaitPool } from '../../components/detector/wait-pool.js';

describe('readAhead', () => {
  it('keeps `ahead` items started beyond the one taken, and hands them out in order', () => {
    const started: number[] = [];
    const take = readAhead(2, (k) => (started.push(k), `item ${k}`));
    expect(take(0)).toBe('item 0');
    expect(started).toEqual([0, 1, 2]);
    expect(take(1)).toBe('item 1');
    expect(started).toEqual([0, 1, 2, 3]);
    expect([take(2), take(3)]).toEqual(['item 2', 'item 3']);
    expect(started).toEqual([0, 1, 2, 3, 4, 5]);
  });
});

describe('WaitPool', () => {
  it('gives a free item at once, and a returned one to the longest waiter first', async () => {
    const pool = new WaitPool(['a']);
    expect(await pool.take()).toBe('a');
    const order: string[] = [];
    const w1 = pool.take().then((x) => order.push(`w1:${x}`));
    const w2 = pool.take().then((x) => order.push(`w2:${x}`));
    pool.give('b');
    pool.give('c');
    await Promise.all([w1, w2]);
    expect(order).toEqual(['w1:b', 'w2:c']);
    pool.give('d');
    expect(await pool.take()).toBe('d');
  });
});
