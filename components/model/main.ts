import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { LoupeError } from '../../lib/errors.js';
import { sha256File } from '../../lib/fsutil.js';
import { runComponent, type ComponentContext } from '../ipc/runtime.js';
import { TOPICS, type ModelAnnouncement } from '../../contracts/topics.js';
import { modelConfigSchema, type ModelConfig } from './config.js';

/**
 * loupe.Model: the model as its own component. Its artefacts are model.onnx and card.json; the
 * recipe carries their SHA-256 digests (Greengrass checks them on download) and the model's
 * digest again in its configuration, which this program checks once more on the device before
 * announcing the model on `loupe/model` (and again whenever someone asks on `loupe/model/query`).
 * Inference depends on it (HARD): a new model is a new loupe.Model version.
 */


async function start(ctx: ComponentContext<ModelConfig>) {
  const { ipc, log, config } = ctx;
  const dir = resolve(config.dir ?? process.env.LOUPE_MODEL_DIR ?? '.');
  const path = join(dir, config.modelFile);
  const actual = await sha256File(path).catch((e: Error) => {
    throw new LoupeError('model.read', `cannot read the model artefact: ${e.message}`, { input: path });
  });
  if (actual !== config.sha256.toLowerCase()) throw new LoupeError('model.digest', `SHA-256 mismatch: configuration says ${config.sha256}, artefact has ${actual}`, { input: path });
  let card: Record<string, unknown> | undefined;
  try {
    card = JSON.parse(await readFile(join(dir, config.cardFile), 'utf8')) as Record<string, unknown>;
  } catch {
    log.warn({ card: join(dir, config.cardFile) }, 'no readable model card');
  }
  const announcement: ModelAnnouncement = { name: config.name, version: config.version, sha256: actual, path, ...(card ? { card } : {}) };
  const announce = () => ipc.publish(TOPICS.model, announcement as unknown as Record<string, unknown>);
  const unsub = await ipc.subscribe(TOPICS.modelQuery, () => void announce().catch(() => {}));
  await announce();
  log.info({ model: { name: config.name, version: config.version, sha256: actual }, path }, 'model announced');
  return {
    async stop() {
      await unsub();
    },
  };
}

await runComponent('loupe.Model', modelConfigSchema, start, {
  configOverride: (raw) => ({ ...((raw as Record<string, unknown>) ?? {}), ...(process.env.LOUPE_MODEL_DIR ? { dir: process.env.LOUPE_MODEL_DIR } : {}) }),
});
