import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { projectRoot } from '../../lib/paths.js';
import { imageDifferences } from '../../cloud/gate/differences.js';
import { loupeEvaluator } from '../../cloud/gate/evaluator.js';
import { runGate, writeGateReport } from '../../cloud/gate/gate.js';
import type { ImageDetail } from '../../cloud/evaluation/evaluate.js';
import { yoloDataset } from '../helpers/datasets.js';
import { worseMetalTagsModel } from '../helpers/worse-model.js';

// The gate report shows per-image differences between challenger and champion (new misses, new
// false positives) with the images and boxes drawn; a Chromium screenshot is kept in
// test-artifacts/gate/.

type B = [number, number, number, number];
const img = (labels: B[], ch: Array<[B, number]>, cp: Array<[B, number]>): [ImageDetail, ImageDetail] => [
  {
    image: '/x.jpg',
    width: 100,
    height: 100,
    labels: labels.map((xyxy) => ({ cls: 0, xyxy })),
    predictions: ch.map(([xyxy, conf]) => ({ cls: 0, conf, xyxy })),
  },
  {
    image: '/x.jpg',
    width: 100,
    height: 100,
    labels: labels.map((xyxy) => ({ cls: 0, xyxy })),
    predictions: cp.map(([xyxy, conf]) => ({ cls: 0, conf, xyxy })),
  },
];

describe('per-image differences', () => {
  it('names new misses, fixed misses, new and removed false positives at conf > 0.25, IoU >= 0.5', () => {
    const t1: B = [0, 0, 10, 10];
    const t2: B = [50, 50, 70, 70];
    const fpA: B = [80, 0, 95, 10];
    const fpB: B = [0, 80, 10, 95];
    // champion finds t1 and t2 and has fpB; challenger finds t1 only (t2 below conf 0.25), has fpA.
    const [a, b] = img(
      [t1, t2],
      [
        [t1, 0.9],
        [t2, 0.2],
        [fpA, 0.6],
      ],
      [
        [t1, 0.8],
        [t2, 0.7],
        [fpB, 0.5],
      ],
    );
    const [d] = imageDifferences([a], [b]);
    expect(d!.newMisses).toEqual([1]);
    expect(d!.fixedMisses).toEqual([]);
    expect(d!.challenger.map((p) => p.xyxy)).toEqual([t1, fpA]);
    expect(d!.newFalsePositives).toEqual([1]);
    expect(d!.removedFalsePositives).toEqual([2]); // fpB, third of the champion's predictions
    // identical predictions: no difference at all
    const [c, e] = img([t1], [[t1, 0.9]], [[t1, 0.9]]);
    expect(imageDifferences([c], [e])).toEqual([]);
  });
});

describe('gate report with image differences', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'loupe-gate-diff-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("draws the challenger's new misses and false positives next to the champion, and renders in Chromium", async () => {
    const data = await yoloDataset('metal-tags');
    const worse = await worseMetalTagsModel();
    const champion = { ref: 'metal-tags:1', onnx: join(projectRoot, 'models', 'metal-tags', 'model.onnx') };
    const report = await runGate({ challenger: { ref: 'metal-tags:160px', onnx: worse }, champion, data, evaluate: loupeEvaluator });
    const diffs = report.differences!;
    expect(diffs.length).toBeGreaterThan(0);
    const newMisses = diffs.reduce((s, d) => s + d.newMisses.length, 0);
    // a third of the resolution loses thin scratches: it misses boxes the champion found
    expect(newMisses).toBeGreaterThan(0);
    for (const d of diffs) {
      for (const k of d.newMisses) expect(d.truth[k]).toBeDefined();
      for (const i of d.newFalsePositives) expect(d.challenger[i]!.conf).toBeGreaterThan(0.25);
    }
    const paths = await writeGateReport(report, join(dir, 'report'));
    const html = await readFile(paths.html, 'utf8');
    expect(html).toContain('Per-image differences');
    expect(html).toContain(`<b>${newMisses} new misses</b>`);
    const pictures = html.match(/src="data:image\/jpeg;base64,/g) ?? [];
    expect(pictures.length).toBe(2 * Math.min(diffs.length, 24));
    const json = JSON.parse(await readFile(paths.json, 'utf8')) as { differences: unknown[] };
    expect(json.differences).toHaveLength(diffs.length);

    const browser = await chromium.launch({
      executablePath: '/usr/bin/chromium',
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
    });
    try {
      const page = await browser.newPage({ viewport: { width: 1000, height: 900 } });
      await page.goto(pathToFileURL(paths.html).href);
      const loaded = await page.$$eval('.diff img', (imgs) => imgs.map((i) => (i as HTMLImageElement).naturalWidth));
      expect(loaded.length).toBe(pictures.length);
      expect(loaded.every((w) => w > 0)).toBe(true);
      await mkdir(join(projectRoot, 'test-artifacts', 'gate'), { recursive: true });
      await page.screenshot({ path: join(projectRoot, 'test-artifacts', 'gate', 'gate-report-differences.png'), fullPage: true });
    } finally {
      await browser.close();
    }
  }, 400_000);
});
