import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { importLabelStudio, writeLabelStudio } from '../../cloud/dataset/labelstudio.js';
import { importVoc } from '../../cloud/dataset/voc.js';
import { readYoloDataset } from '../../cloud/dataset/yolo-read.js';
import { readYoloLabelled } from '../../cloud/dataset/yolo-labelled.js';
import { writeYoloDataset } from '../../cloud/dataset/yolo-write.js';
import { boxToLabelStudio, labelStudioToBox } from '../../contracts/box.js';
import { runCli } from '../helpers/cli.js';
import { makeRecord, openLabelStore } from '../../cloud/labelstore/index.js';
import { tempDir, vocXml, writeJpeg, writeText } from './synth.js';

/**
 * Formats users bring from other tools (issue 13 §5): Label Studio JSON (its rectanglelabels
 * results, in percent), Roboflow-style data.yaml paths, VOC with a separate images folder.
 */

/** A result as Label Studio's own JSON export writes it. */
const lsRect = (x: number, y: number, w: number, h: number, label: string, extra: Record<string, unknown> = {}) => ({
  id: Math.random().toString(36).slice(2, 12),
  type: 'rectanglelabels',
  from_name: 'label',
  to_name: 'image',
  original_width: 200,
  original_height: 100,
  image_rotation: 0,
  value: { x, y, width: w, height: h, rotation: 0, rectanglelabels: [label] },
  ...extra,
});

describe('Label Studio JSON', () => {
  it('reads an export as Label Studio writes it: percent boxes, upload and local-storage refs, latest annotation, cancelled ones and backgrounds', async () => {
    const dir = await tempDir();
    const imgs = join(dir, 'media');
    for (const n of ['a', 'b', 'c', 'd']) await writeJpeg(join(imgs, `${n}.jpg`), 200, 100);
    const tasks = [
      // an upload: Label Studio prefixes the file name with 8 hex digits
      {
        id: 11,
        data: { image: '/data/upload/3/1a2b3c4d-a.jpg' },
        annotations: [
          {
            id: 1,
            result: [lsRect(10, 20, 25, 50, 'scratch'), lsRect(50, 0, 50, 100, 'dent')],
            was_cancelled: false,
            created_at: '2024-01-01T00:00:00Z',
          },
        ],
      },
      // local storage; two annotations: the later one counts, the cancelled one does not
      {
        id: 12,
        data: { image: '/data/local-files/?d=media%2Fb.jpg' },
        annotations: [
          { id: 2, result: [lsRect(0, 0, 10, 10, 'dent')], created_at: '2024-01-01T00:00:00Z', updated_at: '2024-01-02T00:00:00Z' },
          { id: 3, result: [lsRect(20, 20, 10, 10, 'scratch')], created_at: '2024-01-01T00:00:00Z', updated_at: '2024-01-03T00:00:00Z' },
          { id: 4, result: [], was_cancelled: true, updated_at: '2024-01-09T00:00:00Z' },
        ],
      },
      // labelled with no regions: a background
      {
        id: 13,
        data: { image: 's3://bucket/raw/c.jpg' },
        annotations: [{ id: 5, result: [] }],
        predictions: [{ result: [lsRect(1, 1, 5, 5, 'dent')] }],
      },
      // never labelled (predictions are not labels)
      { id: 14, data: { image: 'http://example.com/x/d.jpg' }, annotations: [], predictions: [{ result: [lsRect(1, 1, 5, 5, 'dent')] }] },
    ];
    await writeText(join(dir, 'export.json'), JSON.stringify(tasks));
    const ds = await importLabelStudio(join(dir, 'export.json'), { imagesDir: imgs });
    expect(ds.names).toEqual(['dent', 'scratch']);
    expect(ds.images.map((i) => [i.id, i.boxes])).toEqual([
      [
        'a.jpg',
        [
          { cls: 1, x1: 20, y1: 20, x2: 70, y2: 70 },
          { cls: 0, x1: 100, y1: 0, x2: 200, y2: 100 },
        ],
      ],
      ['b.jpg', [{ cls: 1, x1: 40, y1: 20, x2: 60, y2: 30 }]],
      ['c.jpg', []],
    ]);
    expect(ds.report).toMatchObject({ format: 'labelstudio', records: 4, images: 3, boxes: 3, superseded: 1, unlabelled: ['d.jpg'] });
  });

  it('a YOLO set → Label Studio folder → YOLO set gives the same label files and data set version', async () => {
    const dir = await tempDir();
    const images = [];
    for (let i = 0; i < 12; i++) {
      const p = join(dir, 'src', i % 2 ? 'bad' : 'good', `p${i}.jpg`);
      await writeJpeg(p, 90 + i, 60);
      images.push({
        id: `${i % 2 ? 'bad' : 'good'}/p${i}.jpg`,
        imagePath: p,
        width: 90 + i,
        height: 60,
        boxes: i % 3 === 0 ? [] : [{ cls: i % 2, x1: 3.5, y1: 4, x2: 40 + i, y2: 33.25 }],
      });
    }
    const y1 = await writeYoloDataset(['good', 'bad'], images, join(dir, 'y1'));
    const ls = await readYoloLabelled(y1.yamlPath);
    const w = await writeLabelStudio(ls.names, ls.images, join(dir, 'ls'));
    expect(w.tasks).toBe(12);
    expect((await readdir(w.root)).sort()).toEqual(['images', 'label_config.xml', 'tasks.json']);
    expect(await readFile(join(w.root, 'label_config.xml'), 'utf8')).toContain('<RectangleLabels name="label" toName="image">');
    const back = await importLabelStudio(w.jsonPath, { names: ['good', 'bad'] });
    const y2 = await writeYoloDataset(back.names, back.images, join(dir, 'y2'));
    expect(y2.version).toBe(y1.version);
    for (const f of y1.manifest.images) {
      const rel = join('labels', f.split, f.file.replace(/\.[^.]+$/, '.txt'));
      expect(await readFile(join(y2.root, rel), 'utf8')).toBe(await readFile(join(y1.root, rel), 'utf8'));
    }
  });

  it('percent ↔ pixels through contracts/box.ts agree both ways (to float rounding)', () => {
    const b = { cls: 2, x1: 12.5, y1: 7, x2: 190, y2: 99.5 };
    const r = boxToLabelStudio(b, 200, 100);
    const want = { x: 6.25, y: 7, width: 88.75, height: 92.5 };
    for (const k of Object.keys(want) as (keyof typeof want)[]) expect(r[k]).toBeCloseTo(want[k], 12);
    const back = labelStudioToBox(r, 2, 200, 100);
    expect(back.cls).toBe(2);
    for (const k of ['x1', 'y1', 'x2', 'y2'] as const) expect(back[k]).toBeCloseTo(b[k], 9);
  });

  it.each([
    [
      'a rotated rectangle',
      lsRect(10, 10, 10, 10, 'dent', { value: { x: 10, y: 10, width: 10, height: 10, rotation: 30, rectanglelabels: ['dent'] } }),
      'LABEL_ROTATED',
      /task 7 \(a\.jpg\) region 1: is rotated by 30 degrees/,
    ],
    [
      'a polygon',
      { type: 'polygonlabels', value: { points: [[1, 1]], polygonlabels: ['dent'] } },
      'LABEL_UNSUPPORTED',
      /region type "polygonlabels"/,
    ],
    [
      'two labels on one box',
      lsRect(10, 10, 10, 10, 'dent', { value: { x: 10, y: 10, width: 10, height: 10, rectanglelabels: ['dent', 'scratch'] } }),
      'LABEL_BAD_OBJECT',
      /exactly one class name/,
    ],
    ['a box outside the image', lsRect(95, 10, 20, 10, 'dent'), 'LABEL_OUTSIDE_IMAGE', /outside the 200x100 image/],
  ])('refuses %s, naming the task and region', async (_what, result, code, message) => {
    const dir = await tempDir();
    await writeJpeg(join(dir, 'a.jpg'), 200, 100);
    await writeText(join(dir, 't.json'), JSON.stringify([{ id: 7, data: { image: 'a.jpg' }, annotations: [{ result: [result] }] }]));
    const err = await importLabelStudio(join(dir, 't.json')).catch((e: unknown) => e);
    expect(err).toMatchObject({ code, input: join(dir, 't.json') });
    expect((err as Error).message).toMatch(message);
  });

  it('refuses a task whose image is not there, and an unknown class against --names', async () => {
    const dir = await tempDir();
    await writeJpeg(join(dir, 'a.jpg'), 200, 100);
    await writeText(
      join(dir, 't.json'),
      JSON.stringify([{ id: 1, data: { image: '/data/upload/1/deadbeef-zzz.jpg' }, annotations: [{ result: [] }] }]),
    );
    await expect(importLabelStudio(join(dir, 't.json'))).rejects.toMatchObject({
      code: 'IMAGE_MISSING',
      message: expect.stringMatching(/task 1 .*zzz\.jpg/),
    });
    await writeText(
      join(dir, 'u.json'),
      JSON.stringify([{ id: 1, data: { image: 'a.jpg' }, annotations: [{ result: [lsRect(1, 1, 5, 5, 'rust')] }] }]),
    );
    await expect(importLabelStudio(join(dir, 'u.json'), { names: ['dent'] })).rejects.toMatchObject({
      code: 'LABEL_UNKNOWN_CLASS',
      message: expect.stringMatching(/unknown class "rust"/),
    });
  });
});

describe('Roboflow-style data.yaml', () => {
  it('`train: ../train/images` beside train/ valid/ test/ resolves as ultralytics resolves it (the ../ dropped when the path does not exist)', async () => {
    const root = await tempDir();
    for (const [split, n] of [
      ['train', 3],
      ['valid', 2],
      ['test', 1],
    ] as const) {
      for (let i = 0; i < n; i++) {
        await writeJpeg(join(root, split, 'images', `${split}${i}.jpg`), 64, 48);
        await writeText(join(root, split, 'labels', `${split}${i}.txt`), '1 0.5 0.5 0.25 0.5\n');
      }
    }
    // Roboflow's export, word for word apart from the names
    await writeText(
      join(root, 'data.yaml'),
      "train: ../train/images\nval: ../valid/images\ntest: ../test/images\n\nnc: 2\nnames: ['dent', 'scratch']\n",
    );
    const ds = readYoloDataset(join(root, 'data.yaml'));
    expect(ds.names).toEqual(['dent', 'scratch']);
    expect(ds.splits.train?.map((i) => i.imagePath)).toEqual([0, 1, 2].map((i) => join(root, 'train', 'images', `train${i}.jpg`)));
    expect(ds.splits.val?.length).toBe(2);
    expect(ds.splits.test?.[0]?.labels).toEqual([{ cls: 1, cx: 0.5, cy: 0.5, w: 0.25, h: 0.5 }]);
    // A ../ path that does exist is taken as written.
    await writeJpeg(join(root, '..', `${root.split('/').pop()}-sib`, 'images', 'x.jpg'), 64, 48);
    await writeText(
      join(root, 'sib.yaml'),
      `train: ../${root.split('/').pop()}-sib/images\nval: ../valid/images\nnames: [dent, scratch]\n`,
    );
    expect(readYoloDataset(join(root, 'sib.yaml')).splits.train?.length).toBe(1);
  });

  it('`nc` must agree with `names`; `nc` alone names the classes class_0..; `validation` means val', async () => {
    const root = await tempDir();
    await writeJpeg(join(root, 'images', 'a.jpg'), 32, 32);
    await writeText(join(root, 'bad.yaml'), 'train: images\nval: images\nnc: 3\nnames: [a, b]\n');
    expect(() => readYoloDataset(join(root, 'bad.yaml'))).toThrow(/names has 2 entries but nc is 3/);
    await writeText(join(root, 'nc.yaml'), 'train: images\nvalidation: images\nnc: 2\n');
    const ds = readYoloDataset(join(root, 'nc.yaml'));
    expect(ds.names).toEqual(['class_0', 'class_1']);
    expect(ds.splits.val?.length).toBe(1);
  });
});

describe('Pascal VOC with a separate images folder', () => {
  it('`--from ANNOTATIONS --images IMAGES` gives the ids (and so the splits) the whole-tree import gives', async () => {
    const root = await tempDir();
    for (const n of ['crazing_1', 'crazing_2', 'patches_1']) {
      await writeJpeg(join(root, 'IMAGES', `${n}.jpg`), 64, 48);
      await writeText(join(root, 'ANNOTATIONS', `${n}.xml`), vocXml(`${n}.jpg`, 64, 48, [{ name: n.split('_')[0]!, box: [2, 3, 30, 40] }]));
    }
    await writeJpeg(join(root, 'IMAGES', 'unlabelled.jpg'), 64, 48);
    const tree = await importVoc(root);
    const split = await importVoc(join(root, 'ANNOTATIONS'), { imagesDir: join(root, 'IMAGES') });
    expect(split.images.map((i) => i.id)).toEqual(['IMAGES/crazing_1.jpg', 'IMAGES/crazing_2.jpg', 'IMAGES/patches_1.jpg']);
    expect(split.images).toEqual(tree.images);
    expect(split.report.unlabelled).toEqual(['IMAGES/unlabelled.jpg']);

    const out = await tempDir();
    const r = await runCli([
      'dataset',
      'import',
      '--format',
      'voc',
      '--from',
      join(root, 'ANNOTATIONS'),
      '--images',
      join(root, 'IMAGES'),
      '--out',
      join(out, 'y'),
      '--json',
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout.trim().split('\n').pop()!)).toMatchObject({
      images: 3,
      boxes: 3,
      names: ['crazing', 'patches'],
      unlabelled: 1,
    });
    const missing = await runCli([
      'dataset',
      'import',
      '--format',
      'voc',
      '--from',
      join(root, 'ANNOTATIONS'),
      '--images',
      join(root, 'nope'),
      '--out',
      join(out, 'z'),
    ]);
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toMatch(/nope: images folder not found/);
  });
});

describe('the label store and other tools', () => {
  it('imports a YOLO set and a Label Studio export (idempotent), and exports Label Studio tasks with labels and device predictions', async () => {
    const dir = await tempDir();
    const home = join(dir, 'home');
    const imgs = [];
    for (let i = 0; i < 4; i++) {
      const p = join(dir, 'src', `p${i}.jpg`);
      await writeJpeg(p, 120, 80);
      imgs.push({
        id: `p${i}.jpg`,
        imagePath: p,
        width: 120,
        height: 80,
        boxes: i === 0 ? [] : [{ cls: i % 2, x1: 10, y1: 8, x2: 70, y2: 48 }],
      });
    }
    const y = await writeYoloDataset(['dent', 'scratch'], imgs, join(dir, 'yolo'));
    const a = await runCli(['labels', 'import', '--home', home, '--yolo', y.yamlPath, '--ref-prefix', 's3://b/parts/', '--json']);
    expect(a.code, a.stderr).toBe(0);
    expect(JSON.parse(a.stdout)).toMatchObject({ images: 4, appended: 4, boxes: 3, names: ['dent', 'scratch'] });
    const again = await runCli(['labels', 'import', '--home', home, '--yolo', y.yamlPath, '--ref-prefix', 's3://b/parts/', '--json']);
    expect(JSON.parse(again.stdout)).toMatchObject({ appended: 0 });

    const lsFile = join(dir, 'ls.json');
    const e = await runCli(['labels', 'export', '--home', home, '--labelstudio', lsFile, '--classes', 'dent,scratch']);
    expect(e.code, e.stderr).toBe(0);
    const tasks = JSON.parse(await readFile(lsFile, 'utf8')) as {
      data: { image: string };
      annotations: { result: { value: { x: number; y: number; width: number; height: number; rectanglelabels: string[] } }[] }[];
    }[];
    const p1 = tasks.find((t) => t.data.image === 's3://b/parts/p1.jpg')!;
    expect(p1.annotations[0]!.result.map((r) => r.value)).toEqual([
      { x: (10 / 120) * 100, y: 10, width: 50, height: 50, rotation: 0, rectanglelabels: ['scratch'] },
    ]);

    // That export reads back (images by file name under --images) into the store under another prefix.
    const b = await runCli([
      'labels',
      'import',
      '--home',
      home,
      '--labelstudio',
      lsFile,
      '--images',
      join(dir, 'src'),
      '--names',
      'dent,scratch',
      '--ref-prefix',
      's3://b/again/',
      '--json',
    ]);
    expect(b.code, b.stderr).toBe(0);
    expect(JSON.parse(b.stdout)).toMatchObject({ images: 4, appended: 4, boxes: 3 });
    const list = await runCli(['labels', 'list', '--home', home, '--json']);
    const recs = list.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { source_ref: string; annotations: unknown[]; labeling_job: string; status: string });
    const again1 = recs.find((r) => r.source_ref === 's3://b/again/p1.jpg')!;
    expect(again1).toMatchObject({
      labeling_job: 'import/labelstudio',
      status: 'APPROVED',
      annotations: [{ class_id: 1, left: 10, top: 8, width: 60, height: 40 }],
    });

    // Device pre-annotations (an ingested, unlabelled record) go out as predictions with their scores.
    const store = openLabelStore(join(home, 'labels.db'));
    await store.append([
      makeRecord({
        source_ref: 's3://b/incoming/u.jpg',
        image_width: 120,
        image_height: 80,
        annotations: [{ class_id: 0, left: 12, top: 8, width: 24, height: 16, confidence: 0.61 }],
        event_time: 5,
        labeling_job: '',
        status: 'PENDING',
        model_version: '3',
      }),
    ]);
    await store.close();
    const e2 = await runCli(['labels', 'export', '--home', home, '--labelstudio', lsFile, '--classes', 'dent,scratch']);
    expect(e2.code, e2.stderr).toBe(0);
    const u = (
      JSON.parse(await readFile(lsFile, 'utf8')) as {
        data: { image: string };
        annotations: unknown[];
        predictions: { model_version: string; result: { score: number; value: object }[] }[];
      }[]
    ).find((t) => t.data.image === 's3://b/incoming/u.jpg')!;
    expect(u.annotations).toEqual([]);
    expect(u.predictions).toMatchObject([
      { model_version: '3', result: [{ score: 0.61, value: { x: 10, y: 10, width: 20, height: 20, rectanglelabels: ['dent'] } }] },
    ]);
    const bad = await runCli(['labels', 'import', '--home', home, '--yolo', y.yamlPath]);
    expect(bad.stderr).toMatch(/--ref-prefix/);
    const both = await runCli(['labels', 'export', '--home', home, '--labelstudio', lsFile, '--csv', join(dir, 'x.csv')]);
    expect(both.stderr).toMatch(/exactly one of --csv, --labelstudio/);
  });
});
