import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { describe, it } from 'vitest';
import { yoloDataset } from '../helpers/datasets.js';
import { roundTrip } from './roundtrip-check.js';

/** The round trip of roundtrip.test.ts at full scale: all 1800 neu-det images (six classes). */
describe('YOLO → COCO → YOLO round trip at full scale', () => {
  it('neu-det: same ids, splits, label files and version', async () => {
    const yaml = await yoloDataset('neu-det');
    const { version } = JSON.parse(readFileSync(join(yaml, '..', 'manifest.json'), 'utf8')) as { version: string };
    await roundTrip(yaml, version);
  });
});
