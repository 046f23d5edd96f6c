import { describe, expect, it } from 'vitest';
import { consolidate, type WorkerAnnotation } from '../../cloud/labeling/consolidate.js';
import { seededRandom } from '../../cloud/labeling/workforce.js';
import { consolidateAllPairs } from '../helpers/consolidate-reference.js';

const b = (x1: number, y1: number, x2: number, y2: number, cls = 0) => ({ cls, x1, y1, x2, y2 });
const round = (v: number) => Math.round(v * 1000) / 1000;

describe('consolidation (IoU clustering + averaging), hand-worked cases', () => {
  it('three workers on one object: the mean box, full votes', () => {
    const out = consolidate([
      { worker: 'w1', boxes: [b(10, 10, 50, 50)] },
      { worker: 'w2', boxes: [b(12, 10, 52, 50)] },
      { worker: 'w3', boxes: [b(10, 12, 50, 52)] },
    ]);
    expect(out).toHaveLength(1);
    const o = out[0]!;
    // mean x1 = (10+12+10)/3 = 10.667, y1 = 10.667, x2 = 50.667, y2 = 50.667
    expect([o.x1, o.y1, o.x2, o.y2].map(round)).toEqual([10.667, 10.667, 50.667, 50.667]);
    expect(o.votes).toBe(3);
    // each member vs the mean box: w1: inter 39.333*39.333=1547.1, union 1600+1600-1547.1=1652.9 -> 0.936;
    // w2 and w3 are symmetric to each other: inter 38.667*39.333... -> all ≈ 0.93-0.94; confidence = 1 × mean
    expect(o.confidence).toBeGreaterThan(0.9);
    expect(o.confidence).toBeLessThan(0.95);
  });

  it('a box only one of three workers drew is dropped (needs ceil(3/2) = 2 votes)', () => {
    const out = consolidate([
      { worker: 'a', boxes: [b(0, 0, 10, 10), b(100, 100, 120, 120)] },
      { worker: 'b', boxes: [b(0, 0, 10, 10)] },
      { worker: 'c', boxes: [] },
    ]);
    expect(out.map((o) => [o.x1, o.y1, o.x2, o.y2, o.votes])).toEqual([[0, 0, 10, 10, 2]]);
    // 2 of 3 workers, both boxes identical to the mean: confidence = 2/3 × 1
    expect(round(out[0]!.confidence)).toBe(0.667);
  });

  it('IoU below the threshold keeps boxes apart; at the threshold they join', () => {
    // [0,0,10,10] vs [5,0,15,10]: inter 50, union 150 -> IoU 1/3
    const apart = consolidate([
      { worker: 'a', boxes: [b(0, 0, 10, 10)] },
      { worker: 'b', boxes: [b(5, 0, 15, 10)] },
    ]);
    expect(apart).toHaveLength(2); // W=2 -> minVotes 1: both kept separately
    expect(
      consolidate(
        [
          { worker: 'a', boxes: [b(0, 0, 10, 10)] },
          { worker: 'b', boxes: [b(5, 0, 15, 10)] },
        ],
        { iouThreshold: 1 / 3 },
      ),
    ).toHaveLength(1);
    const joined = consolidate(
      [
        { worker: 'a', boxes: [b(0, 0, 10, 10)] },
        { worker: 'b', boxes: [b(5, 0, 15, 10)] },
      ],
      { iouThreshold: 1 / 3 },
    );
    expect([joined[0]!.x1, joined[0]!.x2]).toEqual([2.5, 12.5]);
  });

  it('one worker votes once per object: their second overlapping box stays out', () => {
    // a draws the object twice: [0,0,10,10] and [1,0,11,10]; b draws [0,0,10,10] once.
    // links: a0-b0 IoU 1.0 (merged first), a1-b0 IoU 9/11 (would put two of a's boxes together: refused)
    const out = consolidate(
      [
        { worker: 'a', boxes: [b(0, 0, 10, 10), b(1, 0, 11, 10)] },
        { worker: 'b', boxes: [b(0, 0, 10, 10)] },
      ],
      { minVotes: 2 },
    );
    expect(out.map((o) => [o.x1, o.x2, o.votes])).toEqual([[0, 10, 2]]);
  });

  it('class by majority; ties go to the lower class id; order of workers does not matter', () => {
    const anns = [
      { worker: 'w3', boxes: [b(0, 0, 10, 10, 2)] },
      { worker: 'w1', boxes: [b(0, 0, 10, 10, 1)] },
      { worker: 'w2', boxes: [b(0, 0, 10, 10, 2)] },
    ];
    expect(consolidate(anns)[0]!.cls).toBe(2);
    expect(consolidate([anns[1]!, anns[0]!])[0]!.cls).toBe(1);
    const shuffled = consolidate([anns[2]!, anns[0]!, anns[1]!]);
    expect(shuffled).toEqual(consolidate(anns));
  });

  it('no workers, or nobody drew anything: no boxes', () => {
    expect(consolidate([])).toEqual([]);
    expect(
      consolidate([
        { worker: 'a', boxes: [] },
        { worker: 'b', boxes: [] },
      ]),
    ).toEqual([]);
  });

  it('the x-sweep gives the same result as linking every pair (random crowded labels)', () => {
    const rand = seededRandom(42);
    let objects = 0;
    for (let round = 0; round < 60; round++) {
      const W = 1 + Math.floor(rand() * 5);
      const thr = [0.05, 0.3, 0.5, 0.9, 1][round % 5]!;
      const anns: WorkerAnnotation[] = Array.from({ length: W }, (_, w) => ({
        worker: `w${w}`,
        boxes: Array.from({ length: Math.floor(rand() * 40) }, () => {
          const x = Math.round(rand() * 60);
          const y = Math.round(rand() * 60);
          return b(x, y, x + 1 + Math.round(rand() * 30), y + 1 + Math.round(rand() * 30), Math.floor(rand() * 2));
        }),
      }));
      const want = consolidateAllPairs(anns, { iouThreshold: thr });
      expect(consolidate(anns, { iouThreshold: thr })).toEqual(want);
      objects += want.length;
    }
    expect(objects).toBeGreaterThan(100); // the cases did produce objects to compare
  });
});
