import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readYoloDataset } from '../../cloud/dataset/yolo-read.js';
import { runPython } from '../helpers/python.js';
import { tempDir, writeJpeg, writeText } from './synth.js';

/**
 * Roboflow's YOLOv8 export layout (data.yaml beside train/ valid/ test/, saying `../train/images`)
 * and a plain layout: ultralytics' own check_det_dataset (the pinned venv) resolves every split to
 * the same folder loupe's reader lists images from.
 */
describe('data.yaml paths resolve as ultralytics resolves them', () => {
  it.each([
    ['roboflow', 'train: ../train/images\nval: ../valid/images\ntest: ../test/images\nnc: 1\nnames: [part]\n'],
    ['relative', 'train: train/images\nval: valid/images\ntest: test/images\nnames: {0: part}\n'],
  ])(
    '%s',
    async (_name, yaml) => {
      const root = await tempDir();
      for (const split of ['train', 'valid', 'test']) {
        await writeJpeg(join(root, split, 'images', `${split}.jpg`), 40, 30);
        await writeText(join(root, split, 'labels', `${split}.txt`), '0 0.5 0.5 0.5 0.5\n');
      }
      await writeText(join(root, 'data.yaml'), yaml);
      const ours = readYoloDataset(join(root, 'data.yaml'));
      const code = [
        'import json',
        'from ultralytics.data.utils import check_det_dataset',
        `d = check_det_dataset(${JSON.stringify(join(root, 'data.yaml'))})`,
        "print(json.dumps({k: str(d[k]) for k in ('train', 'val', 'test')}))",
      ].join('\n');
      const theirs = JSON.parse((await runPython(code, { timeoutMs: 120_000 })).trim().split('\n').pop()!) as Record<string, string>;
      for (const [k, folder] of [
        ['train', 'train'],
        ['val', 'valid'],
        ['test', 'test'],
      ] as const) {
        expect(theirs[k]).toBe(join(root, folder, 'images'));
        expect(ours.splits[k]?.map((i) => i.imagePath)).toEqual([join(theirs[k]!, `${folder}.jpg`)]);
      }
    },
    180_000,
  );
});
