import fc from 'fast-check';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { projectRoot } from '../../lib/paths.js';
import { modelInfoFromBytes } from '../../components/detector/model-info.js';
import { fields, lengthDelimited } from '../helpers/protobuf.js';
import { FUZZ_SECONDS, fuzz, mutated } from './harness.js';

/**
 * Fuzz target: the ONNX metadata reader (components/detector/onnx-proto.ts) through
 * modelInfoFromBytes, the detector's and the registry's entry point. Seeds: the shipped and
 * fixture models reduced to their skeleton (header, metadata, graph inputs/outputs; no weights
 * or nodes), so each mutated input is small and close to a real export.
 */
/** A model without weights or nodes: what the metadata reader looks at, small enough to mutate fast. */
function skeleton(model: Uint8Array): Uint8Array {
  const parts: number[] = [];
  for (const [field, , start, body, end] of fields(model)) {
    if (field !== 7) {
      parts.push(...model.subarray(start, end));
      continue;
    }
    const graph: number[] = [];
    const g = model.subarray(body, end);
    for (const [gf, , gs, , ge] of fields(g)) if (gf !== 1 && gf !== 5) graph.push(...g.subarray(gs, ge));
    parts.push(...lengthDelimited(7, graph));
  }
  return new Uint8Array(parts);
}

const models = ['models/metal-tags/model.onnx', 'test/fixtures/models/metal-tags-fp16.onnx', 'test/fixtures/models/neu-det.onnx'].map((p) =>
  skeleton(readFileSync(join(projectRoot, p))),
);

describe('fuzz: ONNX metadata reader', () => {
  it('the skeletons are models the reader accepts (the seeds are valid)', () => {
    for (const m of models) expect(modelInfoFromBytes(m, 'seed.onnx').task).toBe('detect');
    expect(models.every((m) => m.length < 4000)).toBe(true);
  });

  it(
    'never crashes, hangs or blows up on mutated and random bytes: a model or a LoupeError',
    () => {
      const input = fc.oneof({ weight: 8, arbitrary: mutated(models) }, { weight: 1, arbitrary: fc.uint8Array({ maxLength: 512 }) });
      const r = fuzz('onnx-metadata', input, (bytes, stats) =>
        stats.check(
          () => modelInfoFromBytes(bytes, 'fuzz.onnx'),
          (info) => {
            // everything it returns comes out of the input: strings and names cannot outgrow it
            const size = JSON.stringify(info.metadata).length + info.names.join('').length;
            return size > 4 * bytes.length + 1024 ? `${size} characters of metadata from ${bytes.length} bytes` : null;
          },
        ),
      );
      expect(r.iterations).toBeGreaterThanOrEqual(20); // the budget is time: a loaded machine runs fewer
    },
    FUZZ_SECONDS * 1000 + 60_000,
  );
});
