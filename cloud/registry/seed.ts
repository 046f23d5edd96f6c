import { existsSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { readModelCard } from '../../contracts/model-card.js';
import { LoupeError } from '../../lib/errors.js';
import { sha256File } from '../../lib/fsutil.js';
import { projectRoot } from '../../lib/paths.js';
import type { SqliteModelRegistry } from './sqlite-registry.js';
import type { ModelVersion } from './types.js';

/** The model shipped in the repository: the first champion of the `metal-tags` group unless the loop names another (`seedModel`). */
export const SHIPPED_MODEL_DIR = join(projectRoot, 'models', 'metal-tags');
export const DEFAULT_GROUP = 'metal-tags';

/**
 * Register the shipped model as an approved version if the group has none yet (idempotent:
 * the key is the ONNX digest, so seeding twice adds nothing). Metrics come from its card's
 * test metrics (loupe eval) when the card has them, else from the trainer's val numbers,
 * named `val_*` so they are never mistaken for test-split scores.
 */
export async function seedShippedModel(registry: SqliteModelRegistry, opts: { dir?: string; group?: string } = {}): Promise<ModelVersion> {
  const dir = opts.dir ?? SHIPPED_MODEL_DIR;
  const group = opts.group ?? DEFAULT_GROUP;
  const onnx = join(dir, 'model.onnx');
  if (!existsSync(onnx)) throw new LoupeError('SEED_MISSING', 'shipped model has no model.onnx', { input: dir });
  const pt = join(dir, 'model.pt');
  const card = join(dir, 'card.json');
  const metrics: Record<string, number> = {};
  let datasetVersion: string | null = null;
  if (existsSync(card)) {
    const c = await readModelCard(card);
    for (const [k, v] of Object.entries(c.metrics.test ?? {})) if (typeof v === 'number') metrics[k] = v;
    datasetVersion = c.dataset.versionId;
  }
  const tm = join(dir, 'train-metrics.json');
  if (existsSync(tm)) {
    const t = JSON.parse(readFileSync(tm, 'utf8')) as { val?: Record<string, unknown> };
    for (const [k, v] of Object.entries(t.val ?? {})) if (typeof v === 'number') metrics[`val_${k}`] = v;
  }
  const digest = await sha256File(onnx);
  return registry.register({
    group,
    onnx,
    pt: existsSync(pt) ? pt : undefined,
    card: existsSync(card) ? card : undefined,
    metrics,
    datasetVersion,
    source: 'seed',
    idempotencyKey: `seed:${group}:${digest}`,
    status: {
      status: 'approved',
      reason: `the shipped model (${dir.startsWith(projectRoot) ? relative(projectRoot, dir) : dir}), first champion`,
      by: 'seed',
    },
  });
}
