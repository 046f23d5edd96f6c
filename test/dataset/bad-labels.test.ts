import { existsSync } from 'node:fs';
import { truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { isLoupeError, type LoupeError } from '../../lib/errors.js';
import { importDataset, type ImportFormat } from '../../cloud/dataset/import.js';
import { writeYoloDataset } from '../../cloud/dataset/yolo-write.js';
import { runCli } from '../helpers/cli.js';
import { entries, tempDir, vocXml, writeJpeg, writeText } from './synth.js';

/**
 * Each bad-label case, in each of the four import formats: a tiny real data set (JPEGs of
 * 100x80) with one defect. The library raises a LoupeError naming the label file and the record;
 * the CLI exits non-zero with that message and writes nothing.
 */
const W = 100;
const H = 80;
type B = { cls: number; x1: number; y1: number; x2: number; y2: number };
interface Scene {
  /** image stem → its boxes; cls 9 is a class the data set does not have */
  labels: Record<string, B[]>;
  /** stems with an image file on disk (default: every labelled stem) */
  present?: string[];
  /** stem whose image file is not a decodable image */
  corrupt?: string;
  /** stem whose JPEG is cut short */
  truncated?: string;
}

/** The importers this file feeds bad records (Label Studio and YOLO have their own tests). */
type Tested = Extract<ImportFormat, 'featurestore' | 'voc' | 'groundtruth' | 'coco'>;

const good: B = { cls: 0, x1: 10, y1: 10, x2: 40, y2: 30 };

const cases: { name: string; scene: Scene; code: string; text: RegExp; record: Record<Tested, RegExp> }[] = [
  {
    name: 'box outside the image by more than 1 px',
    scene: { labels: { one: [good], two: [good, { cls: 0, x1: 50, y1: 10, x2: W + 5, y2: 30 }] } },
    code: 'LABEL_OUTSIDE_IMAGE',
    text: /outside the 100x80 image by more than 1 px/,
    record: {
      featurestore: /row 3 \(a\/two\.jpg\) box 2/,
      voc: /object 2/,
      groundtruth: /line 2 \(.*two\.jpg\) annotation 2/,
      coco: /annotation id \d+ \(a\/two\.jpg\)/,
    },
  },
  {
    name: 'box with zero area',
    scene: { labels: { one: [{ cls: 0, x1: 10, y1: 10, x2: 10, y2: 30 }], two: [good] } },
    code: 'LABEL_ZERO_AREA',
    text: /zero or negative area/,
    record: {
      featurestore: /row 2 \(a\/one\.jpg\) box 1/,
      voc: /object 1/,
      groundtruth: /line 1 \(.*one\.jpg\) annotation 1/,
      coco: /annotation id 1 \(a\/one\.jpg\)/,
    },
  },
  {
    name: 'box with negative area',
    scene: { labels: { one: [good], two: [{ cls: 0, x1: 40, y1: 10, x2: 20, y2: 30 }] } },
    code: 'LABEL_ZERO_AREA',
    text: /zero or negative area/,
    record: {
      featurestore: /row 3 \(a\/two\.jpg\) box 1/,
      voc: /object 1/,
      groundtruth: /line 2 \(.*two\.jpg\) annotation 1/,
      coco: /annotation id 2 \(a\/two\.jpg\)/,
    },
  },
  {
    name: 'unknown class',
    scene: { labels: { one: [good, { cls: 9, x1: 1, y1: 1, x2: 5, y2: 5 }], two: [good] } },
    code: 'LABEL_UNKNOWN_CLASS',
    text: /unknown class/,
    record: {
      featurestore: /row 2 \(a\/one\.jpg\) box 2/,
      voc: /object 2 \(ghost\)/,
      groundtruth: /line 1 \(.*one\.jpg\) annotation 2/,
      coco: /annotation id 2 \(a\/one\.jpg\)/,
    },
  },
  {
    name: 'missing image',
    scene: { labels: { one: [good], two: [good] }, present: ['one'] },
    code: 'IMAGE_MISSING',
    text: /two/,
    record: {
      featurestore: /row 3 \(a\/two\.jpg\)/,
      voc: /annotation/,
      groundtruth: /line 2 \(.*two\.jpg\)/,
      coco: /image id 2 \(a\/two\.jpg\)/,
    },
  },
  {
    name: 'unreadable image (not an image)',
    scene: { labels: { one: [good], two: [good] }, corrupt: 'two' },
    code: 'IMAGE_UNREADABLE',
    text: /cannot be decoded/,
    record: {
      featurestore: /row 3 \(a\/two\.jpg\)/,
      voc: /annotation/,
      groundtruth: /line 2 \(.*two\.jpg\)/,
      coco: /image id 2 \(a\/two\.jpg\)/,
    },
  },
  {
    name: 'unreadable image (truncated JPEG)',
    scene: { labels: { one: [good], two: [good] }, truncated: 'one' },
    code: 'IMAGE_UNREADABLE',
    text: /cannot be decoded/,
    record: {
      featurestore: /row 2 \(a\/one\.jpg\)/,
      voc: /annotation/,
      groundtruth: /line 1 \(.*one\.jpg\)/,
      coco: /image id 1 \(a\/one\.jpg\)/,
    },
  },
];

const FORMATS: Tested[] = ['featurestore', 'voc', 'groundtruth', 'coco'];

/** Writes the scene in one format; returns what `import` needs and the label file errors must name. */
async function writeScene(
  format: ImportFormat,
  dir: string,
  scene: Scene,
): Promise<{ from: string; images?: string; labelFile: (stem: string) => string; names?: string[] }> {
  const stems = Object.keys(scene.labels);
  const imgDir = format === 'voc' ? join(dir, 'IMAGES') : join(dir, 'a');
  for (const s of scene.present ?? stems) {
    const p = join(imgDir, `${s}.jpg`);
    if (s === scene.corrupt) await writeText(p, 'this is not a JPEG\n');
    else {
      await writeJpeg(p, W, H);
      if (s === scene.truncated) await truncate(p, 300);
    }
  }
  if (format === 'featurestore') {
    const rows = stems.map((s) => {
      const ann = scene.labels[s]!.map(
        (b) => `{'class_id': ${b.cls}, 'top': ${b.y1}, 'left': ${b.x1}, 'height': ${b.y2 - b.y1}, 'width': ${b.x2 - b.x1}}`,
      ).join(', ');
      return `s3://bucket/pipeline/assets/images/2021-01-28/a/${s}.jpg,${W},${H},3,"[${ann}]",1657199072.0,labeling-job/x,APPROVED`;
    });
    const csv = join(dir, 'labels.csv');
    await writeText(
      csv,
      `source_ref,image_width,image_height,image_depth,annotations,event_time,labeling_job,status\n${rows.join('\n')}\n`,
    );
    return { from: csv, labelFile: () => csv };
  }
  if (format === 'voc') {
    for (const s of stems) {
      const objs = scene.labels[s]!.map((b) => ({
        name: b.cls === 9 ? 'ghost' : 'scratch',
        box: [b.x1, b.y1, b.x2, b.y2] as [number, number, number, number],
      }));
      await writeText(join(dir, 'ANNOTATIONS', `${s}.xml`), vocXml(`${s}.jpg`, W, H, objs));
    }
    return { from: dir, labelFile: (s) => join(dir, 'ANNOTATIONS', `${s}.xml`), names: ['scratch'] };
  }
  if (format === 'groundtruth') {
    const lines = stems.map((s) =>
      JSON.stringify({
        'source-ref': `s3://bucket/jobs/in/a/${s}.jpg`,
        'bounding-box': {
          image_size: [{ width: W, height: H, depth: 3 }],
          annotations: scene.labels[s]!.map((b) => ({ class_id: b.cls, left: b.x1, top: b.y1, width: b.x2 - b.x1, height: b.y2 - b.y1 })),
        },
        'bounding-box-metadata': {
          objects: scene.labels[s]!.map(() => ({ confidence: 0.9 })),
          'class-map': { '0': 'scratch' },
          type: 'groundtruth/object-detection',
          'human-annotated': 'yes',
          'creation-date': '2024-01-01T00:00:00',
          'job-name': 'labeling-job/t',
        },
      }),
    );
    const manifest = join(dir, 'output.manifest');
    await writeText(manifest, lines.join('\n') + '\n');
    return { from: manifest, images: dir, labelFile: () => manifest };
  }
  let annId = 0;
  const coco = {
    images: stems.map((s, i) => ({ id: i + 1, file_name: `a/${s}.jpg`, width: W, height: H })),
    annotations: stems.flatMap((s, i) =>
      scene.labels[s]!.map((b) => ({
        id: ++annId,
        image_id: i + 1,
        category_id: b.cls === 9 ? 99 : 7,
        bbox: [b.x1, b.y1, b.x2 - b.x1, b.y2 - b.y1],
        area: 1,
        iscrowd: 0,
      })),
    ),
    categories: [{ id: 7, name: 'scratch' }],
  };
  const json = join(dir, 'instances.json');
  await writeText(json, JSON.stringify(coco));
  return { from: json, images: dir, labelFile: () => json };
}

function stemOf(c: (typeof cases)[number]): string {
  const s = c.scene;
  if (s.corrupt) return s.corrupt;
  if (s.truncated) return s.truncated;
  if (s.present) return Object.keys(s.labels).find((k) => !s.present!.includes(k))!;
  return Object.entries(s.labels).find(([, bs]) => bs.some((b) => b.cls === 9 || b.x2 <= b.x1 || b.y2 <= b.y1 || b.x2 > W + 1))![0];
}

describe.each(FORMATS)('bad labels: %s importer', (format) => {
  it.each(cases)('$name: clear error naming the file and the record', async (c) => {
    const dir = await tempDir();
    const s = await writeScene(format, dir, c.scene);
    let err: LoupeError | undefined;
    try {
      await importDataset(format, s.from, { imagesDir: s.images, names: s.names });
    } catch (e) {
      if (!isLoupeError(e)) throw e;
      err = e;
    }
    expect(err, 'import should have failed').toBeDefined();
    expect(err!.code).toBe(c.code);
    expect(err!.message).toContain(s.labelFile(stemOf(c)));
    expect(err!.message).toMatch(c.record[format]);
    expect(err!.message).toMatch(c.text);
  });

  it('CLI: non-zero exit, the message on stderr, nothing written', async () => {
    for (const c of [cases[0]!, cases[3]!, cases[4]!]) {
      const dir = await tempDir();
      const s = await writeScene(format, dir, c.scene);
      const outParent = await tempDir('lds-out-');
      const out = join(outParent, 'yolo');
      const args = ['dataset', 'import', '--format', format, '--from', s.from, '--out', out, '--json'];
      if (s.images) args.push('--images', s.images);
      if (s.names) args.push('--names', s.names.join(','));
      const r = await runCli(args);
      expect(r.code, r.stderr).not.toBe(0);
      expect(r.stdout).toBe('');
      expect(r.stderr).toContain(`loupe: ${s.labelFile(stemOf(c))}`);
      expect(r.stderr).toMatch(c.record[format]);
      expect(existsSync(out)).toBe(false);
      expect(await entries(outParent)).toEqual([]);
    }
  });

  it('clips a box that overhangs by at most 1 px and counts it', async () => {
    const dir = await tempDir();
    const s = await writeScene(format, dir, { labels: { one: [{ cls: 0, x1: -1, y1: 5, x2: W + 1, y2: H + 0.5 }], two: [good] } });
    const ds = await importDataset(format, s.from, { imagesDir: s.images, names: s.names });
    expect(ds.report.clipped).toBe(1);
    const one = ds.images.find((i) => i.id.endsWith('one.jpg'));
    expect(one?.boxes).toEqual([{ cls: 0, x1: 0, y1: 5, x2: W, y2: H }]);
  });
});

describe('the YOLO writer leaves nothing half-written', () => {
  it('removes its temp folder when an image cannot be placed, and never creates the output', async () => {
    const dir = await tempDir();
    await writeJpeg(join(dir, 'src', 'one.jpg'), W, H);
    const outParent = await tempDir('lds-out-');
    const images = [
      { id: 'a/one.jpg', imagePath: join(dir, 'src', 'one.jpg'), width: W, height: H, boxes: [good] },
      { id: 'a/two.jpg', imagePath: join(dir, 'src', 'vanished.jpg'), width: W, height: H, boxes: [good] },
    ];
    await expect(writeYoloDataset(['scratch'], images, join(outParent, 'yolo'))).rejects.toThrow(/vanished\.jpg/);
    expect(await entries(outParent)).toEqual([]);
  });

  it('refuses to write over a non-empty folder unless told to, and then swaps it whole', async () => {
    const dir = await tempDir();
    await writeJpeg(join(dir, 'one.jpg'), W, H);
    const out = join(dir, 'yolo');
    await writeText(join(out, 'keep.txt'), 'precious\n');
    const images = [{ id: 'a/one.jpg', imagePath: join(dir, 'one.jpg'), width: W, height: H, boxes: [good] }];
    await expect(writeYoloDataset(['scratch'], images, out)).rejects.toMatchObject({ code: 'OUT_EXISTS' });
    expect(existsSync(join(out, 'keep.txt'))).toBe(true);
    const w = await writeYoloDataset(['scratch'], images, out, { overwrite: true });
    expect(existsSync(join(out, 'keep.txt'))).toBe(false);
    expect(existsSync(w.yamlPath)).toBe(true);
    expect((await entries(dir)).filter((e) => e.startsWith('.'))).toEqual([]);
  });

  it('refuses ids that would escape the folder or collide', async () => {
    const dir = await tempDir();
    await writeFile(join(dir, 'x.jpg'), '');
    const img = (id: string) => ({ id, imagePath: join(dir, 'x.jpg'), width: W, height: H, boxes: [] });
    await expect(writeYoloDataset(['a'], [img('../x.jpg')], join(dir, 'o1'))).rejects.toMatchObject({ code: 'DATA_BAD_ID' });
    await expect(writeYoloDataset(['a'], [img('a/x.jpg'), img('a/x.jpg')], join(dir, 'o2'))).rejects.toMatchObject({
      code: 'DATA_DUPLICATE_ID',
    });
  });
});
