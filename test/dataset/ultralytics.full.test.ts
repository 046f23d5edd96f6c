import { copyFile, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { datasetStats } from '../../cloud/dataset/stats.js';
import { writeYoloDataset } from '../../cloud/dataset/yolo-write.js';
import { readYoloDataset } from '../../cloud/dataset/yolo-read.js';
import { importShared } from '../helpers/datasets.js';
import { requireDataset } from '../../lib/paths.js';
import { runPython } from '../helpers/python.js';
import { tempDir } from './synth.js';

/**
 * The folders loupe writes are read by ultralytics itself (the pinned venv): its dataset check
 * and its label loader see the same names, images, boxes and backgrounds per split as loupe's
 * stats. Each export goes to a temp folder, since ultralytics writes labels/*.cache files.
 */
describe('ultralytics reads loupe YOLO exports as loupe does', () => {
  it.each(['metal-tags', 'neu-det'] as const)('%s', async (name) => {
    const ds = await importShared(name);
    const dir = await tempDir();
    const w = await writeYoloDataset(ds.names, ds.images, join(dir, name));
    const code = [
      'import json',
      'from ultralytics.data.utils import check_det_dataset',
      'from ultralytics.data import YOLODataset',
      `d = check_det_dataset(${JSON.stringify(w.yamlPath)})`,
      "out = {'names': [d['names'][i] for i in range(d['nc'])], 'splits': {}}",
      "for s in ('train', 'val', 'test'):",
      "    y = YOLODataset(img_path=d[s], data=d, task='detect', imgsz=256, augment=False, cache=False)",
      "    out['splits'][s] = {'images': len(y.labels), 'boxes': int(sum(len(l['cls']) for l in y.labels)), 'backgrounds': sum(1 for l in y.labels if len(l['cls']) == 0)}",
      'print(json.dumps(out))',
    ].join('\n');
    const stdout = await runPython(code, { timeoutMs: 300_000 });
    const ul = JSON.parse(stdout.trim().split('\n').pop() as string) as {
      names: string[];
      splits: Record<string, { images: number; boxes: number; backgrounds: number }>;
    };
    const ours = await datasetStats(w.yamlPath);
    expect(ul.names).toEqual(ds.names);
    for (const s of ['train', 'val', 'test'] as const) {
      const o = ours.splits[s]!;
      expect(ul.splits[s]).toEqual({ images: o.images, boxes: o.boxes, backgrounds: o.backgrounds });
      expect(o.images).toBe(w.manifest.counts[s]);
    }
  });

  it('a label file with duplicate rows reads as ultralytics reads it (unique rows, sorted)', async () => {
    const dir = await tempDir();
    await mkdir(join(dir, 'images', 'val'), { recursive: true });
    await mkdir(join(dir, 'labels', 'val'), { recursive: true });
    await copyFile(join(requireDataset('neu-det'), 'IMAGES', 'crazing_1.jpg'), join(dir, 'images', 'val', 'a.jpg'));
    await writeFile(join(dir, 'labels', 'val', 'a.txt'), '1 0.5 0.5 0.2 0.2\n0 0.3 0.3 0.1 0.1\n1 0.5 0.5 0.2 0.2\n0 0.2 0.9 0.1 0.1\n');
    await writeFile(join(dir, 'data.yaml'), `path: ${dir}\ntrain: images/val\nval: images/val\nnames: [a, b]\n`);
    const code = [
      'import json',
      'from ultralytics.data.utils import check_det_dataset',
      'from ultralytics.data import YOLODataset',
      `d = check_det_dataset(${JSON.stringify(join(dir, 'data.yaml'))})`,
      "y = YOLODataset(img_path=d['val'], data=d, task='detect', imgsz=256, augment=False, cache=False)",
      'l = y.labels[0]',
      "print(json.dumps([[int(c)] + [round(float(v), 6) for v in b] for c, b in zip(l['cls'].ravel(), l['bboxes'])]))",
    ].join('\n');
    const ul = JSON.parse((await runPython(code, { timeoutMs: 300_000 })).trim().split('\n').pop() as string) as number[][];
    const ours = readYoloDataset(join(dir, 'data.yaml')).splits.val![0]!.labels.map((l) => [l.cls, l.cx, l.cy, l.w, l.h]);
    expect(ul).toHaveLength(3);
    expect(ours).toEqual(ul);
  });
});
