import { copyFile, mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { datasetDir } from '../../lib/paths.js';
import { startEdgeStack, type EdgeStack } from '../../embedded/stack/edge.js';
import { ensureBuilt, until } from '../helpers/edge.js';

/**
 * Issue 14 item 11: `edge up` on a kept root (--root) counted every earlier run's uploads in
 * its summary. Two runs on one root, each over its own images: each summary counts its own.
 */
let dir: string;
const stacks: EdgeStack[] = [];
beforeAll(async () => {
  ensureBuilt();
  dir = await mkdtemp(join(tmpdir(), 'loupe-edge-sum-'));
  const bad = join(datasetDir('metal-tags'), 'bad');
  const files = (await readdir(bad)).sort();
  for (const [name, slice] of [
    ['a', files.slice(20, 23)],
    ['b', files.slice(40, 42)],
  ] as const) {
    await mkdir(join(dir, name));
    for (const f of slice) await copyFile(join(bad, f), join(dir, name, f));
  }
}, 300_000);
afterAll(async () => {
  for (const s of stacks) await s.stop().catch(() => {});
  if (!process.env.LOUPE_TEST_KEEP) await rm(dir, { recursive: true, force: true });
});

/** One `edge up` run over a folder, shown once, until every frame is inferred and its upload is in S3. */
async function run(folder: string, frames: number) {
  const stack = await startEdgeStack({
    root: join(dir, 'root'),
    source: { type: 'folder', path: folder, mode: 'once' },
    fps: 4,
    // every frame is selected (defect or not), so each run uploads all its images
    config: { uploader: { policies: [{ type: 'failed' }, { type: 'random', share: 1 }], limits: {} } },
  });
  stacks.push(stack);
  await until(() => stack.results.size >= frames, 240_000, 'every frame inferred');
  const mine = async () => (await stack.listUploads()).filter((k) => k.endsWith('.jpg'));
  await until(
    async () => (await stack.summary()).spoolPending === 0 && Number(stack.telemetry.uploader?.uploaded ?? -1) >= frames,
    120_000,
    // what the uploader last said, so a failure here explains itself
    () => `uploads done (uploader telemetry ${JSON.stringify(stack.telemetry.uploader)})`,
  );
  const summary = await stack.summary();
  const keys = await mine();
  await stack.stop();
  stacks.pop();
  return { summary, keys };
}

describe('edge stack summary on a kept root', () => {
  it("counts only this run's uploads, not earlier runs' (and not the uploader's own state files)", { timeout: 900_000 }, async () => {
    const first = await run(join(dir, 'a'), 3);
    expect(first.summary.uploaded).toBe(3);
    expect(first.keys).toHaveLength(3);
    const second = await run(join(dir, 'b'), 2);
    expect(second.keys).toHaveLength(5); // the bucket holds both runs' uploads
    expect(second.summary.uploaded).toBe(2); // the summary counts this run's
    expect(second.summary.spoolPending).toBe(0);
  });
});
