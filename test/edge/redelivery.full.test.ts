import { copyFile, mkdir, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { datasetDir, projectRoot } from '../../lib/paths.js';
import { startEdgeStack, type EdgeStack } from '../../embedded/stack/edge.js';
import { dropping, ensureBuilt, until } from '../helpers/edge.js';
import { tempRoot } from '../helpers/nucleus.js';

/**
 * A new loupe.Model version restarts loupe.Inference (HARD dependency) while the camera keeps
 * taking frames. The camera's ack timeout and redelivery budget here are far shorter than the
 * restart (0.1 s, one redelivery): a camera that spent its budget while Inference was away
 * would give those frames up. It must hold them until Inference is back instead, so every frame
 * gets a result and the camera reports nothing lost.
 */
let root: string;
let watchDir: string;
let stack: EdgeStack;
let images: string[];
let counter = 0;

beforeAll(async () => {
  ensureBuilt();
  root = tempRoot('lredeliver-');
  watchDir = join(root, 'camera-in');
  await mkdir(watchDir, { recursive: true });
  const ds = datasetDir('metal-tags');
  images = (await readdir(join(ds, 'bad'))).sort().map((f) => join(ds, 'bad', f));
  stack = await startEdgeStack({
    root: join(root, 'stack'),
    source: { type: 'folder', path: watchDir, mode: 'watch', pollMs: 100 },
    fps: 8,
    config: {
      camera: { delivery: { redeliver: true, ackTimeoutMs: 100, maxRedeliveries: 1, maxUnacked: 5000 } },
      uploader: { dedup: { enabled: false } },
    },
  });
}, 300_000);

afterAll(async () => {
  await stack?.stop();
  if (root && !process.env.LOUPE_TEST_KEEP) await rm(root, { recursive: true, force: true });
});

/** Drop images into the watched folder at `fps` until stopAfter(n) has dropped n more; resolves to the last seq. */
const feeding = (fps: number) =>
  dropping(fps, async () => {
    counter++;
    await copyFile(images[counter % images.length]!, join(watchDir, `${String(counter).padStart(5, '0')}.jpg`));
    return counter;
  });

const seqsWithResults = () => new Set([...stack.results.values()].map((r) => r.seq));

describe('camera redelivery across an Inference restart', () => {
  it('a new loupe.Model version mid-stream: every frame gets a result, none lost', async () => {
    const feed = feeding(4);
    await until(() => seqsWithResults().size >= 5, 60_000, 'frames flowing before the deployment');
    // The same weights as a new version: loupe.Model changes, so Inference restarts.
    const dir = join(root, 'model-1.1.0');
    await mkdir(dir, { recursive: true });
    await copyFile(join(projectRoot, 'models', 'metal-tags', 'model.onnx'), join(dir, 'model.onnx'));
    const rec = await stack.deployModel({ dir, version: '1.1.0' });
    expect(rec.status).toBe('SUCCEEDED');
    await until(() => [...stack.results.values()].some((r) => r.model.version === '1.1.0'), 120_000, 'results from 1.1.0');
    const last = await feed.stopAfter(4);
    await until(
      () => seqsWithResults().size >= last,
      90_000,
      () =>
        `results for all ${last} frames (missing ${Array.from({ length: last }, (_, i) => i + 1).filter((s) => !seqsWithResults().has(s))}; ` +
        `camera delivery ${JSON.stringify((stack.telemetry.camera as { delivery?: unknown } | undefined)?.delivery)})`,
    );
    expect([...seqsWithResults()].sort((a, b) => a - b)).toEqual(Array.from({ length: last }, (_, i) => i + 1));
    // The camera's own account: frames were held while Inference was away, none given up. Only a
    // report sent after every result was seen counts (an earlier one may predate a late answer).
    const allSeen = Date.now();
    const health = await until(
      () => {
        const t = stack.telemetry.camera as { time?: string; delivery?: { unacked: number; held: number; lost: number } } | undefined;
        const d = t?.delivery;
        return d && d.unacked === 0 && Date.parse(t.time ?? '') > allSeen ? d : undefined;
      },
      60_000,
      'camera health with nothing unanswered',
    );
    expect(health, JSON.stringify(health)).toMatchObject({ lost: 0 });
    expect(health.held).toBeGreaterThan(0);
  }, 600_000);
});
