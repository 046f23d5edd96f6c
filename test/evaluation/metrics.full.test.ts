import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apPerClass, boxIou, computeAp, ConfusionMatrix, interp, matchPredictions, NIOU } from '../../cloud/evaluation/metrics.js';
import { ultralytics } from '../detector/reference.js';

// The metric functions against ultralytics' own (validator.match_predictions, metrics.ap_per_class,
// metrics.ConfusionMatrix) on synthetic images: noisy copies of labels, duplicates, wrong classes,
// misses and background detections, so every matching rule is exercised.

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

interface SynthImage {
  gboxes: number[];
  gcls: number[];
  pboxes: number[];
  pcls: number[];
  pconf: number[];
}

function synth(seed: number, n: number, nc: number): SynthImage[] {
  const r = rng(seed);
  const q = (v: number): number => Math.fround(Math.round(v * 8) / 8);
  const out: SynthImage[] = [];
  for (let k = 0; k < n; k++) {
    const im: SynthImage = { gboxes: [], gcls: [], pboxes: [], pcls: [], pconf: [] };
    const ng = Math.floor(r() * 6);
    for (let g = 0; g < ng; g++) {
      const x = r() * 400;
      const y = r() * 400;
      const w = 10 + r() * 80;
      const h = 10 + r() * 80;
      const c = Math.floor(r() * nc);
      im.gboxes.push(q(x), q(y), q(x + w), q(y + h));
      im.gcls.push(c);
      // 0-3 predictions around each label: jittered (IoU spread over 0.3..1), some of another class
      const np = Math.floor(r() * 4);
      for (let p = 0; p < np; p++) {
        const j = r() * 0.35;
        im.pboxes.push(
          q(x + (r() - 0.5) * w * j),
          q(y + (r() - 0.5) * h * j),
          q(x + w + (r() - 0.5) * w * j),
          q(y + h + (r() - 0.5) * h * j),
        );
        im.pcls.push(r() < 0.85 ? c : Math.floor(r() * nc));
        // distinct scores: numpy's argsort is not stable, so exact ties may order differently
        im.pconf.push(Math.fround(r()));
      }
    }
    const nb = Math.floor(r() * 3); // background detections
    for (let b = 0; b < nb; b++) {
      const x = r() * 400;
      const y = r() * 400;
      im.pboxes.push(q(x), q(y), q(x + 30), q(y + 30));
      im.pcls.push(Math.floor(r() * nc));
      im.pconf.push(Math.fround(r() * 0.6));
    }
    out.push(im);
  }
  return out;
}

let tmp: string;
beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'loupe-metrics-'));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

describe('metrics agree with ultralytics', () => {
  for (const [seed, n, nc, conf] of [
    [11, 60, 3, 0.25],
    [12, 200, 6, 0.001],
    [13, 40, 1, 0.4],
  ] as const) {
    it(`match_predictions, ap_per_class and the confusion matrix (seed ${seed}, ${n} images, ${nc} classes)`, async () => {
      const images = synth(seed, n, nc);
      const ref = await ultralytics<{ tp: number[][]; p: number[]; r: number[]; ap: number[][]; classes: number[]; cm: number[][] }>(
        'metrics',
        { cwd: tmp, images, nc, conf },
      );
      const tps: number[][] = [];
      const confs: number[] = [];
      const pcls: number[] = [];
      const tcls: number[] = [];
      const cm = new ConfusionMatrix(nc, conf);
      for (const im of images) {
        const pb = Float32Array.from(im.pboxes);
        const gb = Float32Array.from(im.gboxes);
        const np = im.pcls.length;
        const tp =
          im.gcls.length && np
            ? matchPredictions(Int32Array.from(im.pcls), im.gcls, boxIou(gb, im.gcls.length, pb, np))
            : new Uint8Array(np * NIOU);
        for (let i = 0; i < np; i++) tps.push(Array.from(tp.subarray(i * NIOU, (i + 1) * NIOU)));
        confs.push(...im.pconf);
        pcls.push(...im.pcls);
        tcls.push(...im.gcls);
        cm.processBatch(pb, Float32Array.from(im.pconf), Int32Array.from(im.pcls), gb, im.gcls);
      }
      expect(tps).toEqual(ref.tp);
      expect(tps.flat().some((v) => v === 1) && tps.flat().some((v) => v === 0)).toBe(true);
      const s = apPerClass(Uint8Array.from(tps.flat()), Float32Array.from(confs), Int32Array.from(pcls), Int32Array.from(tcls));
      expect(s.classes).toEqual(ref.classes);
      for (let c = 0; c < s.classes.length; c++) {
        for (let t = 0; t < NIOU; t++) expect(s.ap[c][t]).toBeCloseTo(ref.ap[c][t], 12);
        expect(s.p[c]).toBeCloseTo(ref.p[c], 12);
        expect(s.r[c]).toBeCloseTo(ref.r[c], 12);
      }
      expect(cm.matrix).toEqual(ref.cm);
    }, 600_000);
  }
});

describe('metric building blocks', () => {
  it('interp follows numpy at duplicates and ends', () => {
    expect(Array.from(interp([-1, 0, 0.5, 1, 1.5, 2, 3], [0, 1, 1, 2], [10, 20, 30, 40]))).toEqual([10, 10, 15, 30, 35, 40, 40]);
    expect(Array.from(interp([-1, 5], [0, 1], [1, 2], 0, 9))).toEqual([0, 9]);
  }, 600_000);
  it('compute_ap: 101-point trapezoid, so a perfect detector scores 0.995 (as ultralytics: interp at recall 1 hits the appended 0)', () => {
    expect(computeAp([0.5, 1], [1, 1]).ap).toBeCloseTo(0.995, 12);
    expect(computeAp([0, 0], [0, 0]).ap).toBeCloseTo(0, 12);
  }, 600_000);
  it('a class with labels but no predictions scores 0 and still counts in the mean', () => {
    const s = apPerClass(Uint8Array.from([1, 1, 1, 1, 1, 1, 1, 1, 1, 1]), Float32Array.of(0.9), Int32Array.of(0), Int32Array.of(0, 1));
    expect(s.classes).toEqual([0, 1]);
    expect(s.ap[0][0]).toBeGreaterThan(0.99);
    expect(s.ap[1]).toEqual(new Array(NIOU).fill(0));
  }, 600_000);
});
