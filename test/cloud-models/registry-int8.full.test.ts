import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { sha256File } from '../../lib/fsutil.js';
import { deployedArtefact } from '../../cloud/registry/types.js';
import { projectRoot } from '../../lib/paths.js';
import { fixtureModel } from '../helpers/models.js';
import { useTempRegistry } from '../helpers/temp-registry.js';

/**
 * int8 files in the SQLite model registry. Full tier: the int8 fixtures are quantized in the
 * trainer venv (Python) when ~/.cache/loupe/test-models does not have them yet.
 */
const otherOnnx = join(projectRoot, 'test', 'fixtures', 'models', 'neu-det.onnx');

describe('SQLite model registry: int8 files', () => {
  const t = useTempRegistry();

  it('records an int8 file beside the fp32 one, with its metrics, and which of the two the fleet runs', async () => {
    const int8 = await fixtureModel('neu-det-int8');
    const v = await t.reg.register({
      group: 'neu-det',
      onnx: otherOnnx,
      onnxInt8: int8,
      fleetPrecision: 'int8',
      metrics: { map50: 0.68, int8_map50: 0.675 },
      source: 'test',
    });
    expect(v.fleetPrecision).toBe('int8');
    expect(v.artefacts.onnxInt8?.sha256).toBe(await sha256File(int8));
    expect(v.metrics).toEqual({ map50: 0.68, int8_map50: 0.675 });
    expect(deployedArtefact(v)).toEqual({ kind: 'onnxInt8', ref: v.artefacts.onnxInt8, precision: 'int8' });
    expect(await sha256File(await t.reg.artefactPath(v, 'onnxInt8'))).toBe(await sha256File(int8));
    expect((await t.reg.get(v.ref))?.fleetPrecision).toBe('int8');
    const fp32 = await t.reg.register({ group: 'neu-det', onnx: otherOnnx, onnxInt8: int8, source: 'test', idempotencyKey: 'fp32-runs' });
    expect(fp32.fleetPrecision).toBe('fp32');
    expect(deployedArtefact(fp32).kind).toBe('onnx');
    // an int8 file of another model is refused (fp32 graphs and a missing file: registry.test.ts)
    await expect(
      t.reg.register({
        group: 'neu-det',
        onnx: otherOnnx,
        onnxInt8: await fixtureModel('metal-tags-int8'),
        source: 'test',
        idempotencyKey: 'z',
      }),
    ).rejects.toThrow(/is not a quantization of the fp32 one/);
  });
});
