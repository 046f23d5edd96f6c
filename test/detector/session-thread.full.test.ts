import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { datasetDir } from '../../lib/paths.js';
import { Detector } from '../../components/detector/detector.js';
import { fixtureModel, type FixtureModel } from '../helpers/models.js';

// Every other kind of export (fp16 inputs and outputs move as Uint16Array, dynamic shapes regrow
// the pooled input buffers, nms=True exports, QDQ int8) gives the same boxes with its session in a
// worker thread as on the main thread. session-thread.test.ts covers the plain fp32 exports.
const exportsToCheck: FixtureModel[] = ['metal-tags-fp16', 'metal-tags-dynamic', 'metal-tags-nms', 'metal-tags-int8', 'neu-det-dynamic'];

describe("sessionThread: 'worker' on every kind of export", () => {
  for (const name of exportsToCheck) {
    it(`${name}: the main thread's boxes, in predict and val mode`, async () => {
      const ds = name.startsWith('neu-det') ? join(datasetDir('neu-det'), 'Validation_Images') : join(datasetDir('metal-tags'), 'bad');
      const files = readdirSync(ds)
        .sort()
        .slice(0, 3)
        .map((f) => join(ds, f));
      const model = await fixtureModel(name);
      const main = await Detector.load(model, { sessionThread: 'main' });
      const worker = await Detector.load(model, { sessionThread: 'worker' });
      try {
        for (const f of files) {
          expect((await worker.detect(f)).detections).toEqual((await main.detect(f)).detections);
          const [a, b] = [await worker.detectRaw(f, { mode: 'val' }), await main.detectRaw(f, { mode: 'val' })];
          expect([a.xyxy, a.conf, a.cls, a.geometry]).toEqual([b.xyxy, b.conf, b.cls, b.geometry]);
        }
      } finally {
        await main.dispose();
        await worker.dispose();
      }
    }, 900_000);
  }
});
