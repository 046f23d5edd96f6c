import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { importCoco } from '../../cloud/dataset/coco.js';
import { importFeatureStore } from '../../cloud/dataset/featurestore.js';
import { importGroundTruth } from '../../cloud/dataset/groundtruth-manifest.js';
import { importVoc } from '../../cloud/dataset/voc.js';
import { tempDir, vocXml, writeJpeg, writeText } from './synth.js';

const HEADER = 'source_ref,image_width,image_height,image_depth,annotations,event_time,labeling_job,status';
const row = (name: string, ann: string, t: number, status = 'APPROVED') =>
  `s3://b/assets/2021/bad/${name}.jpg,60,40,3,"${ann}",${t}.0,labeling-job/j${t},${status}`;

describe('feature-store records', () => {
  it('per image the latest APPROVED record by event_time wins; other statuses are left out', async () => {
    const dir = await tempDir();
    await writeJpeg(join(dir, 'bad', 'x.jpg'), 60, 40);
    await writeJpeg(join(dir, 'bad', 'y.jpg'), 60, 40);
    await writeJpeg(join(dir, 'bad', 'z.jpg'), 60, 40);
    const one = "[{'class_id': 0, 'top': 1, 'left': 2, 'height': 10, 'width': 20}]";
    const two =
      "[{'class_id': 0, 'top': 1, 'left': 2, 'height': 10, 'width': 20}, {'class_id': 0, 'top': 20, 'left': 30, 'height': 5, 'width': 5}]";
    const csv = join(dir, 'labels.csv');
    await writeText(
      csv,
      [
        HEADER,
        row('x', two, 200), // newest APPROVED for x (listed first: order in the file does not matter)
        row('x', one, 100),
        row('x', '[]', 300, 'PENDING_REVIEW'), // newer, but not approved
        row('y', two, 50, 'REJECTED'), // y has no approved record at all
        row('z', '[]', 10),
      ].join('\n') + '\n',
    );
    const ds = await importFeatureStore(csv);
    expect(ds.images.map((i) => [i.id, i.boxes.length])).toEqual([
      ['bad/x.jpg', 2],
      ['bad/z.jpg', 0],
    ]);
    expect(ds.report).toMatchObject({ records: 5, superseded: 1, rejected: 2, images: 2, boxes: 2 });
    expect(ds.report.unlabelled).toEqual(['bad/y.jpg']);
  });

  it('refuses a row whose image_width/height disagree with the image', async () => {
    const dir = await tempDir();
    await writeJpeg(join(dir, 'bad', 'x.jpg'), 61, 40);
    await writeText(join(dir, 'labels.csv'), `${HEADER}\n${row('x', '[]', 1)}\n`);
    await expect(importFeatureStore(join(dir, 'labels.csv'))).rejects.toThrow(
      /labels\.csv: row 2 \(bad\/x\.jpg\): image_width x image_height say 60x40 but .* is 61x40/,
    );
  });

  it('refuses a CSV without the feature-store columns', async () => {
    const dir = await tempDir();
    await writeText(join(dir, 'labels.csv'), 'source_ref,annotations\ns3://b/bad/x.jpg,[]\n');
    await expect(importFeatureStore(join(dir, 'labels.csv'))).rejects.toThrow(
      /header lacks column\(s\) image_width, image_height, image_depth, event_time, labeling_job, status/,
    );
  });
});

describe('COCO categories and crowd boxes', () => {
  it('makes arbitrary category ids contiguous in id order, skips iscrowd, keeps images without boxes', async () => {
    const dir = await tempDir();
    await writeJpeg(join(dir, 'images', 'p', 'a.jpg'), 50, 50);
    await writeJpeg(join(dir, 'images', 'p', 'b.jpg'), 50, 50);
    const coco = {
      images: [
        { id: 10, file_name: 'p/a.jpg', width: 50, height: 50 },
        { id: 11, file_name: 'p/b.jpg', width: 50, height: 50 },
      ],
      annotations: [
        { id: 1, image_id: 10, category_id: 42, bbox: [1, 2, 10, 10], area: 100, iscrowd: 0 },
        { id: 2, image_id: 10, category_id: 7, bbox: [20, 20, 5, 6], area: 30, iscrowd: 0 },
        { id: 3, image_id: 10, category_id: 7, bbox: [0, 0, 50, 50], area: 2500, iscrowd: 1 },
      ],
      categories: [
        { id: 42, name: 'dent' },
        { id: 7, name: 'scratch' },
      ],
    };
    await writeFile(join(dir, 'instances.json'), JSON.stringify(coco));
    const ds = await importCoco(join(dir, 'instances.json')); // images/ beside the JSON by default
    expect(ds.names).toEqual(['scratch', 'dent']);
    expect(ds.report.skippedCrowd).toBe(1);
    expect(ds.images.map((i) => i.id)).toEqual(['p/a.jpg', 'p/b.jpg']);
    expect(ds.images[0]!.boxes).toEqual([
      { cls: 1, x1: 1, y1: 2, x2: 11, y2: 12 },
      { cls: 0, x1: 20, y1: 20, x2: 25, y2: 26 },
    ]);
    expect(ds.images[1]!.boxes).toEqual([]);
    // with --names the categories are matched by name
    const named = await importCoco(join(dir, 'instances.json'), { names: ['dent', 'scratch'] });
    expect(named.images[0]!.boxes.map((b) => b.cls)).toEqual([0, 1]);
  });

  it('refuses an annotation that points at no image', async () => {
    const dir = await tempDir();
    await writeFile(
      join(dir, 'c.json'),
      JSON.stringify({
        images: [],
        annotations: [{ id: 5, image_id: 3, category_id: 1, bbox: [0, 0, 1, 1] }],
        categories: [{ id: 1, name: 'a' }],
      }),
    );
    await expect(importCoco(join(dir, 'c.json'))).rejects.toThrow(
      /c\.json: annotation id 5: refers to image id 3, which is not in "images"/,
    );
  });
});

describe('Ground Truth class maps', () => {
  const line = (name: string, ann: { class_id: number }[], classMap: Record<string, string>) =>
    JSON.stringify({
      'source-ref': `s3://b/in/a/${name}.jpg`,
      lbl: {
        image_size: [{ width: 40, height: 40, depth: 3 }],
        annotations: ann.map((a) => ({ ...a, left: 1, top: 1, width: 5, height: 5 })),
      },
      'lbl-metadata': {
        objects: ann.map(() => ({ confidence: 1 })),
        'class-map': classMap,
        type: 'groundtruth/object-detection',
        'human-annotated': 'yes',
        'creation-date': '2024-01-01T00:00:00',
        'job-name': 'j',
      },
    });

  it('sparse class ids (0 dog, 5 bone) become contiguous; a later line for the same image wins', async () => {
    const dir = await tempDir();
    await writeJpeg(join(dir, 'a', 'p.jpg'), 40, 40);
    await writeJpeg(join(dir, 'a', 'q.jpg'), 40, 40);
    await writeText(
      join(dir, 'out.manifest'),
      [
        line('p', [{ class_id: 0 }], { '0': 'dog' }),
        line('q', [{ class_id: 5 }, { class_id: 0 }], { '0': 'dog', '5': 'bone' }),
        line('p', [{ class_id: 5 }], { '5': 'bone' }),
      ].join('\n'),
    );
    const ds = await importGroundTruth(join(dir, 'out.manifest'));
    expect(ds.names).toEqual(['dog', 'bone']);
    expect(ds.report.superseded).toBe(1);
    expect(ds.images.map((i) => [i.id, i.boxes.map((b) => b.cls)])).toEqual([
      ['a/p.jpg', [1]],
      ['a/q.jpg', [1, 0]],
    ]);
  });

  it('refuses class maps that disagree between lines', async () => {
    const dir = await tempDir();
    await writeText(
      join(dir, 'out.manifest'),
      [line('p', [{ class_id: 0 }], { '0': 'dog' }), line('q', [{ class_id: 0 }], { '0': 'cat' })].join('\n'),
    );
    await expect(importGroundTruth(join(dir, 'out.manifest'))).rejects.toThrow(
      /out\.manifest: line 2: class-map says 0="cat" but an earlier line says 0="dog"/,
    );
  });
});

describe('Pascal VOC details', () => {
  it('refuses a <size> that disagrees with the image, naming the XML', async () => {
    const dir = await tempDir();
    await writeJpeg(join(dir, 'JPEGImages', 'a.jpg'), 64, 48);
    await writeText(join(dir, 'Annotations', 'a.xml'), vocXml('a.jpg', 48, 64, [{ name: 'x', box: [1, 1, 5, 5] }]));
    await expect(importVoc(dir)).rejects.toThrow(/Annotations\/a\.xml: <size>: says 48x64 but .*a\.jpg is 64x48/);
  });

  it('pairs Annotations/ with JPEGImages/ (VOC2007 layout) and reports images without XML', async () => {
    const dir = await tempDir();
    await writeJpeg(join(dir, 'JPEGImages', 'a.jpg'), 64, 48);
    await writeJpeg(join(dir, 'JPEGImages', 'b.jpg'), 64, 48);
    await writeText(
      join(dir, 'Annotations', 'a.xml'),
      vocXml('a.jpg', 64, 48, [
        { name: 'x', box: [1, 1, 5, 5] },
        { name: 'y', box: [2, 2, 9, 9], difficult: true },
      ]),
    );
    const ds = await importVoc(dir);
    expect(ds.names).toEqual(['x', 'y']);
    expect(ds.images.map((i) => i.id)).toEqual(['JPEGImages/a.jpg']);
    expect(ds.report.unlabelled).toEqual(['JPEGImages/b.jpg']);
    expect(ds.report.skippedDifficult).toBe(1);
  });

  it('refuses a file that is not XML, naming it', async () => {
    const dir = await tempDir();
    await writeJpeg(join(dir, 'IMAGES', 'a.jpg'), 64, 48);
    await writeText(join(dir, 'ANNOTATIONS', 'a.xml'), '<annotation><object><name>x</name>');
    await expect(importVoc(dir)).rejects.toThrow(/ANNOTATIONS\/a\.xml: not valid XML/);
  });
});

describe('duplicate boxes', () => {
  it('drops exact duplicates (same class and box) and counts them, as ultralytics does', async () => {
    const dir = await tempDir();
    await writeJpeg(join(dir, 'IMAGES', 'a.jpg'), 64, 48);
    const box: [number, number, number, number] = [1, 1, 20, 20];
    await writeText(
      join(dir, 'ANNOTATIONS', 'a.xml'),
      vocXml('a.jpg', 64, 48, [
        { name: 'x', box },
        { name: 'x', box },
        { name: 'y', box },
      ]),
    );
    const ds = await importVoc(dir);
    expect(ds.report.duplicates).toBe(1);
    expect(ds.images[0]!.boxes.map((b) => b.cls)).toEqual([0, 1]);
  });
});

describe('reading YOLO label files', () => {
  it('refuses label lines ultralytics would reject, naming the file and the line', async () => {
    const { readYoloDataset } = await import('../../cloud/dataset/yolo-read.js');
    const dir = await tempDir();
    await writeJpeg(join(dir, 'images', 'val', 'a.jpg'), 32, 32);
    await writeText(join(dir, 'data.yaml'), `path: ${dir}\nval: images/val\nnames: [a]\n`);
    for (const [line, re] of [
      ['1 0.5 0.5 0.2 0.2', /labels\/val\/a\.txt: line 2: class 1 is not one of 0\.\.0/],
      ['0 0.5 0.5 1.2 0.2', /labels\/val\/a\.txt: line 2: "0 0.5 0.5 1.2 0.2" has coordinates outside 0\.\.1/],
      ['0 0.5 0.5 0.2', /labels\/val\/a\.txt: line 2: expected "cls cx cy w h"/],
    ] as const) {
      await writeText(join(dir, 'labels', 'val', 'a.txt'), `0 0.1 0.1 0.1 0.1\n${line}\n`);
      expect(() => readYoloDataset(join(dir, 'data.yaml'))).toThrow(re);
    }
  });
});
