import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { datasetDir } from '../../lib/paths.js';
import { silentLogger } from '../../lib/log.js';
import { readImageIds } from '../../cloud/dataset/id-list.js';
import { splitOf } from '../../cloud/dataset/split.js';
import { importFeatureStoreCsv, openLabelStore } from '../../cloud/labelstore/index.js';
import { ImageSource, metalTagsMapping } from '../../cloud/labeling/images.js';
import { createSnapshot } from '../../cloud/snapshot/index.js';
import { parseLoopConfig, loopHome } from '../../cloud/loop/config.js';
import { LoopEnv } from '../../cloud/loop/env.js';
import { scoreOnBenchmark, writeBenchmarkSet } from '../../cloud/loop/benchmark.js';
import {
  BENCHMARK_CARD,
  DEMO_CHAMPION_DIR,
  DEMO_HISTORY_UNTIL,
  benchmarkImageIds,
  imagesFirstLabelledAfter,
} from '../../cloud/loop/reference.js';
import { SHIPPED_MODEL_DIR } from '../../cloud/registry/seed.js';
import { readModelCard } from '../../cloud/training/card.js';
import { runCli } from '../helpers/cli.js';

/**
 * The demo's story rests on a split of the reference data that these tests pin down: a held-out
 * benchmark set (the shipped model's 35 test images) that the camera never shows and the label
 * history leaves out; a starting champion trained on exactly the history as of
 * DEMO_HISTORY_UNTIL minus that set; the camera showing the rest. Real files, real label store,
 * real snapshot, loupe's evaluator on the real models.
 */
const metal = datasetDir('metal-tags');
const csv = join(metal, 'labels.csv');
const until = Date.parse(DEMO_HISTORY_UNTIL) / 1000;
const idOf = (f: string) => f.split('/').slice(-2).join('/');

describe('the demo benchmark set, history and camera', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'loupe-bench-set-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("is the shipped model's 35 test images, all in the test split by loupe's rule", () => {
    const ids = benchmarkImageIds();
    expect(ids).toHaveLength(35);
    expect(new Set(ids).size).toBe(35);
    expect(ids.every((id) => splitOf(id) === 'test')).toBe(true);
    expect(ids).toEqual(JSON.parse(readFileSync(join(SHIPPED_MODEL_DIR, 'card.json'), 'utf8')).dataset.testImages);
  });

  it('the camera shows the 163 photos labelled after the history point, none of the benchmark set', () => {
    const bench = new Set(benchmarkImageIds());
    const all = imagesFirstLabelledAfter(csv, metal, until);
    const shown = imagesFirstLabelledAfter(csv, metal, until, bench);
    expect(all).toHaveLength(191);
    expect(shown).toHaveLength(163);
    expect(shown.filter((f) => bench.has(idOf(f)))).toEqual([]);
    expect(all.filter((f) => bench.has(idOf(f)))).toHaveLength(28);
  });

  it('the history leaves the benchmark set out; its snapshot is the data set the starting champion was trained on', async () => {
    const store = openLabelStore(join(dir, 'labels.db'));
    try {
      const r = await importFeatureStoreCsv(store, csv, { until, exclude: benchmarkImageIds() });
      // 44 images in the first two labelling jobs, 7 of them benchmark images.
      expect(r).toEqual({ read: 235, appended: 37, images: 37, later: 163, excluded: 35 });
      const bench = new Set(benchmarkImageIds());
      expect((await store.latest()).filter((x) => bench.has(idOf(x.source_ref)))).toEqual([]);
      const snap = await createSnapshot({
        store,
        images: new ImageSource({ mappings: [metalTagsMapping(metal)] }),
        classes: ['scratch'],
        outDir: join(dir, 'snapshots'),
      });
      expect(snap.manifest.counts).toMatchObject({ images: 37, train: 30, val: 7, test: 0 });
      const card = await readModelCard(join(DEMO_CHAMPION_DIR, 'card.json'));
      expect(card.dataset.versionId).toBe(snap.manifest.datasetVersion);
      expect(card.dataset.counts).toMatchObject({ train: { images: 30 }, val: { images: 7 } });
      expect(card.trainer.base).toBe('yolov8n.yaml');
    } finally {
      await store.close();
    }
  });

  it("scores with loupe's evaluator: the shipped model as its card says, the starting champion as its card says", async () => {
    const b = await writeBenchmarkSet({ labelsCsv: csv, imagesDir: metal, ids: benchmarkImageIds(), outDir: join(dir, 'benchmark') });
    expect(b).toMatchObject({ images: 35, boxes: 73 });
    const shipped = await scoreOnBenchmark(b.dataYaml, join(SHIPPED_MODEL_DIR, 'model.onnx'));
    const shippedCard = await readModelCard(join(SHIPPED_MODEL_DIR, 'card.json'));
    expect(shipped.images).toBe(35);
    expect(shipped.map50).toBeCloseTo(shippedCard.metrics.test!.map50, 10);
    expect(shipped.map50_95).toBeCloseTo(shippedCard.metrics.test!.map50_95, 10);
    const early = await scoreOnBenchmark(b.dataYaml, join(DEMO_CHAMPION_DIR, 'model.onnx'));
    const earlyCard = await readModelCard(join(DEMO_CHAMPION_DIR, 'card.json'));
    expect(earlyCard.metrics.test).toMatchObject({ images: 35, instances: 73, evaluator: 'loupe eval' });
    expect(early.map50).toBeCloseTo(earlyCard.metrics.test!.map50, 10);
    expect(early.map50_95).toBeCloseTo(earlyCard.metrics.test!.map50_95, 10);
    // Trained on 30 images, it has much to learn from the parts the camera will show.
    expect(early.map50).toBeLessThan(shipped.map50 - 0.2);
  });

  it('refuses a benchmark image outside the test split, or one without a label, by name', async () => {
    const train = 'bad/image-2020-04-22-10-51-14-06-cropped-left-top.jpg';
    expect(splitOf(train)).toBe('train');
    await expect(writeBenchmarkSet({ labelsCsv: csv, imagesDir: metal, ids: [train], outDir: join(dir, 'b2') })).rejects.toThrow(
      /bad\/image-2020-04-22-10-51-14-06-cropped-left-top\.jpg falls in the train split by loupe's rule, not test/,
    );
    await expect(writeBenchmarkSet({ labelsCsv: csv, imagesDir: metal, ids: ['bad/nope.jpg'], outDir: join(dir, 'b3') })).rejects.toThrow(
      /benchmark image bad\/nope\.jpg has no approved label/,
    );
    expect(existsSync(join(dir, 'b2'))).toBe(false);
  });

  it('reads id lists from a model card or a text file, and names a bad entry', async () => {
    expect(readImageIds(BENCHMARK_CARD)).toHaveLength(35);
    const txt = join(dir, 'ids.txt');
    await writeFile(txt, '# held out\nbad/a.jpg\n\n  good/b.jpg  # a comment\n');
    expect(readImageIds(txt)).toEqual(['bad/a.jpg', 'good/b.jpg']);
    await writeFile(txt, 'bad/a.jpg\n../etc/passwd\n');
    expect(() => readImageIds(txt)).toThrow(/ids\.txt: entry 2 \("\.\.\/etc\/passwd"\) is not an image id/);
    await writeFile(txt, '{"dataset": {}}');
    expect(() => readImageIds(txt)).toThrow(/a model card with dataset\.testImages/);
    expect(() => readImageIds(join(dir, 'none.txt'))).toThrow(/none\.txt: image id list not found/);
  });

  it('loop config: history.exclude (ids or a file) and seedModel, resolved against the file; the env seeds that model and leaves the images out', async () => {
    const c = parseLoopConfig({ history: { labelsCsv: 'labels.csv', exclude: 'card.json' }, seedModel: 'models/early' }, 'x', '/srv/loupe');
    expect(c.history.exclude).toBe('/srv/loupe/card.json');
    expect(c.seedModel).toBe('/srv/loupe/models/early');
    expect(parseLoopConfig({ history: { exclude: ['bad/a.jpg'] } }, 'x').history.exclude).toEqual(['bad/a.jpg']);
    expect(() => parseLoopConfig({ history: { exclude: 3 } }, '/h/loop.json')).toThrow(/history\.exclude: .*\(got 3\)/);

    const home = loopHome(join(dir, 'home'));
    await mkdir(home.dir, { recursive: true });
    const config = parseLoopConfig(
      {
        storage: {
          endpoint: 'http://127.0.0.1:9',
          bucket: 'loupe',
          credentials: { accessKeyId: 'LOUPETESTKEY', secretAccessKey: 'unused-no-request-is-made' },
        },
        history: { labelsCsv: csv, imagesDir: metal, until: DEMO_HISTORY_UNTIL, exclude: BENCHMARK_CARD },
        seedModel: DEMO_CHAMPION_DIR,
      },
      'test',
    );
    const env = await LoopEnv.open(config, home, silentLogger);
    try {
      const champ = (await env.registry.champion('metal-tags'))!;
      expect(champ.ref).toBe('metal-tags:1');
      expect(champ.statusReason).toBe('the shipped model (models/metal-tags-early), first champion');
      expect(champ.artefacts.onnx.sha256).toBe((await readModelCard(join(DEMO_CHAMPION_DIR, 'card.json'))).files.onnx.sha256);
      expect(await env.labels.latest()).toHaveLength(37);
    } finally {
      await env.close();
    }
  });

  it('`loupe labels import --exclude CARD` leaves the benchmark set out of the history', async () => {
    const h = join(dir, 'cli-home');
    const r = await runCli([
      'labels',
      'import',
      '--home',
      h,
      '--csv',
      csv,
      '--until',
      DEMO_HISTORY_UNTIL,
      '--exclude',
      BENCHMARK_CARD,
      '--json',
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ read: 235, appended: 37, images: 37, later: 163, excluded: 35 });
    const bad = await runCli(['labels', 'import', '--home', h, '--csv', csv, '--exclude', join(dir, 'missing.txt')]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('missing.txt: image id list not found');
  });
});
