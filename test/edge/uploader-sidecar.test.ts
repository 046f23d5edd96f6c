import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ResultMessage } from '../../contracts/topics.js';
import { parseUploadSidecar } from '../../contracts/upload.js';
import { datasetDir } from '../../lib/paths.js';
import { openSelector } from '../helpers/uploads.js';

/**
 * Found by the fault matrix (test/faults/matrix.full.test.ts): Inference's results carry the
 * model's precision (fp32, fp16, int8) since int8 came in, the uploader copied that model ref
 * into the loupe.upload/1 sidecar, whose model is strictly {name, version, sha256}, and every
 * selected frame failed with "could not spool the image": nothing was uploaded at all.
 */
let tmp: string;
let image: string;
beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'loupe-upl-sidecar-'));
  const dir = join(datasetDir('metal-tags'), 'bad');
  image = join(dir, (await readdir(dir)).sort()[0]!);
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

describe('uploader sidecar', () => {
  it.each(['fp32', 'int8'] as const)(
    'spools a result from a %s model; the sidecar holds the loupe.upload/1 model ref',
    async (precision) => {
      const { spool, selector } = await openSelector(join(tmp, precision));
      const dir = spool.dir;
      const r: ResultMessage = {
        schema: 'loupe.result/2',
        frameId: `cam1-run1-${precision}`,
        camera: 'cam1',
        seq: 1,
        time: '2024-03-05T10:00:00.000Z',
        trigger: 'interval',
        path: image,
        bytes: 1,
        width: 450,
        height: 300,
        verdict: 'fail',
        reasons: ['defect'],
        detections: [{ xyxy: [10, 10, 50, 40], conf: 0.9, cls: 0, name: 'scratch' }],
        model: { name: 'metal-tags', version: '1.1.0', sha256: 'ab'.repeat(32), precision },
        latencyMs: 1,
        inferMs: 1,
      };
      expect(await selector.handle(r)).toBe(true);
      expect(spool.pending).toBe(1);
      const record = (await readdir(dir)).find((f) => f.endsWith('.json') && !f.startsWith('.'))!;
      const item = JSON.parse(await readFile(join(dir, record), 'utf8')) as { sidecar: unknown };
      const sidecar = parseUploadSidecar(JSON.stringify(item.sidecar), record);
      expect(sidecar.model).toEqual({ name: 'metal-tags', version: '1.1.0', sha256: 'ab'.repeat(32) });
      // the same frame again (the camera re-announced it): dealt with already, not spooled twice
      expect(await selector.process(r)).toBe('duplicate');
      // a frame it cannot spool now is an 'error' (the uploader then does not answer for it, so the camera announces it again)
      expect(await selector.process({ ...r, frameId: 'cam1-run1-gone', path: join(tmp, 'no-such-frame.jpg') })).toBe('error');
      expect(spool.pending).toBe(1);
    },
  );
});
