import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../lib/log.js';
import { datasetDir } from '../../lib/paths.js';
import type { ResultMessage } from '../../contracts/topics.js';
import { Deduper } from '../../components/uploader/dedup.js';
import { openSelector } from '../helpers/uploads.js';

/**
 * Issue 14 item 11: the uploader's de-duplication window lived in memory only, so after a
 * restart the same images were uploaded again (frame ids carry the run, so keys differ). The
 * window is now kept beside the spool, bounded and versioned, and the spool's own records
 * carry their hashes so a crash between the two loses nothing.
 */
let tmp: string;
let images: string[];
beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'loupe-upl-restart-'));
  const dir = join(datasetDir('metal-tags'), 'bad');
  images = (await readdir(dir))
    .sort()
    .slice(0, 3)
    .map((f) => join(dir, f));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

const result = (frameId: string, path: string): ResultMessage => ({
  frameId,
  camera: 'cam1',
  seq: 1,
  time: '2024-03-05T10:00:00.000Z',
  trigger: 'interval',
  path,
  bytes: 1,
  width: 450,
  height: 300,
  verdict: 'fail',
  reasons: ['scratch'],
  detections: [{ xyxy: [10, 10, 50, 40], conf: 0.9, cls: 0, name: 'scratch' }],
  model: { name: 'm', version: '1', sha256: 'x' },
  latencyMs: 1,
  inferMs: 1,
});

const start = openSelector;

describe('uploader de-duplication across restarts', () => {
  it('does not spool the same image again after a restart', async () => {
    const dir = join(tmp, 'a');
    const run1 = await start(dir);
    expect(await run1.selector.handle(result('cam1-run1-0000001', images[0]!))).toBe(true);
    expect(await run1.selector.handle(result('cam1-run1-0000002', images[0]!))).toBe(false); // same run: duplicate
    expect(await run1.selector.handle(result('cam1-run1-0000003', images[1]!))).toBe(true);
    // "uploaded": the spool empties, only the window remembers
    for (const id of [...(await readdir(dir))].filter((f) => f.endsWith('.json') && !f.startsWith('.')).map((f) => f.slice(0, -5)))
      await run1.spool.remove(id);
    expect(run1.spool.pending).toBe(0);

    const run2 = await start(dir);
    expect(await run2.selector.handle(result('cam1-run2-0000001', images[0]!))).toBe(false);
    expect(await run2.selector.handle(result('cam1-run2-0000002', images[1]!))).toBe(false);
    expect(run2.selector.stats).toMatchObject({ duplicates: 2, selected: 0 });
    expect(await run2.selector.handle(result('cam1-run2-0000003', images[2]!))).toBe(true);
  });

  it('recovers the hashes of spooled items when the window file was not written (crash in between)', async () => {
    const dir = join(tmp, 'b');
    const run1 = await start(dir);
    expect(await run1.selector.handle(result('cam1-run1-0000001', images[0]!))).toBe(true);
    await rm(join(dir, '.dedup.json'), { force: true });
    const run2 = await start(dir);
    expect(await run2.selector.handle(result('cam1-run2-0000001', images[0]!))).toBe(false);
  });

  it('keeps the window bounded and versioned; a foreign, corrupt, other-hash or older (/1: sharp-made hashes) file starts empty', async () => {
    const dir = join(tmp, 'c');
    const file = join(dir, '.dedup.json');
    const d = new Deduper({ hash: 'dhash', maxDistance: 0, window: 5 }, { file, log: silentLogger });
    await d.load();
    for (let i = 0n; i < 20n; i++) await d.remember(i % 2n ? 'cam1' : 'cam2', 1000n + i);
    const saved = JSON.parse(await readFile(file, 'utf8')) as { schema: string; hash: string; cameras: Record<string, string[]> };
    expect(saved.schema).toBe('loupe.uploader.dedup/2');
    expect(saved.hash).toBe('dhash');
    expect(Object.values(saved.cameras).map((l) => l.length)).toEqual([5, 5]);
    const again = new Deduper({ hash: 'dhash', maxDistance: 0, window: 5 }, { file, log: silentLogger });
    await again.load();
    expect(again.isDuplicate('cam1', 1019n)).toBe(true);
    expect(again.isDuplicate('cam1', 1001n)).toBe(false); // fell out of the window
    // a smaller window after a configuration change trims what was loaded
    const small = new Deduper({ hash: 'dhash', maxDistance: 0, window: 2 }, { file, log: silentLogger });
    await small.load();
    expect(small.isDuplicate('cam1', 1015n)).toBe(false);
    expect(small.isDuplicate('cam1', 1017n)).toBe(true);
    // the hash changed: the old window means nothing
    const p = new Deduper({ hash: 'phash', maxDistance: 0, window: 5 }, { file, log: silentLogger });
    await p.load();
    expect(p.isDuplicate('cam1', 1019n)).toBe(false);
    for (const bad of [
      '{"schema":"loupe.uploader.dedup/9","hash":"dhash","cameras":{"cam1":["3fb"]}}',
      '{not json',
      '[]',
      '{"schema":"loupe.uploader.dedup/2","hash":"dhash","cameras":{"cam1":["zz"]}}',
      '{"schema":"loupe.uploader.dedup/1","hash":"dhash","cameras":{"cam1":["3fb"]}}',
    ]) {
      await writeFile(file, bad);
      const x = new Deduper({ hash: 'dhash', maxDistance: 0, window: 5 }, { file, log: silentLogger });
      await x.load();
      expect(x.isDuplicate('cam1', 0x3fbn), bad).toBe(false);
    }
    // many cameras: only the most recent are kept
    const many = new Deduper({ hash: 'dhash', maxDistance: 0, window: 256 }, { file, log: silentLogger });
    await many.load();
    for (let c = 0; c < 70; c++) await many.remember(`cam-${c}`, BigInt(c * 1000));
    for (let i = 1; i < 3; i++) await many.remember('cam-69', BigInt(69_000 + i));
    const big = JSON.parse(await readFile(file, 'utf8')) as { cameras: Record<string, string[]> };
    expect(Object.keys(big.cameras).length).toBe(64);
    expect(big.cameras['cam-69']).toHaveLength(3);
    expect(big.cameras['cam-0']).toBeUndefined();
    expect((await stat(file)).size).toBeLessThan(64 * 256 * 24);
  });
});
