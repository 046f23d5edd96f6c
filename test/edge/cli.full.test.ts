import { existsSync, readdirSync } from 'node:fs';
import { chmod, copyFile, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { datasetDir } from '../../lib/paths.js';
import { runCli } from '../helpers/cli.js';
import { ensureBuilt } from '../helpers/edge.js';

let dir: string;
beforeAll(async () => {
  ensureBuilt();
  dir = await mkdtemp(join(tmpdir(), 'loupe-edge-cli-'));
  // The camera runs as ggc_user when the tests run as root (as on a device): let it read the frames.
  await chmod(dir, 0o755);
  const bad = join(datasetDir('metal-tags'), 'bad');
  for (const f of (await readdir(bad)).sort().slice(0, 6)) await copyFile(join(bad, f), join(dir, f));
}, 300_000);
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** `loupe edge up` for real: the whole edge stack (nucleus, components, broker, object store) as child processes. */
describe('loupe edge up', () => {
  it('runs the stack for --duration and prints one JSON summary line', async () => {
    const r = await runCli(['edge', 'up', '--source', `folder:${dir}`, '--fps', '4', '--duration', '12', '--json'], { timeoutMs: 120_000 });
    expect(r.code, r.stderr.slice(-2000)).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines).toHaveLength(1);
    const s = JSON.parse(lines[0]!) as Record<string, number>;
    expect(Object.keys(s).sort()).toEqual(
      ['defects', 'errors', 'frames', 'inferred', 'modelVersion', 'seconds', 'spoolPending', 'uploaded'].sort(),
    );
    expect(s.frames).toBeGreaterThan(0);
    expect(s.inferred).toBeGreaterThan(0);
    expect(s.inferred).toBeLessThanOrEqual(s.frames);
    expect(s.errors).toBe(0);
    expect(s.uploaded + s.spoolPending).toBeGreaterThanOrEqual(0);
  });

  it('prints the endpoints a user needs (object store with its keys, broker, nucleus socket) from the stack itself', async () => {
    const r = await runCli(['edge', 'up', '--source', `folder:${dir}`, '--fps', '4', '--duration', '6', '--log-format', 'human'], {
      timeoutMs: 120_000,
    });
    expect(r.code, r.stderr.slice(-2000)).toBe(0);
    const obj = /object store {2}(http:\/\/127\.0\.0\.1:\d+) {2}bucket loupe-incoming/.exec(r.stderr);
    expect(obj, r.stderr).not.toBeNull();
    expect(r.stderr).toMatch(/AWS_ACCESS_KEY_ID=\S+ AWS_SECRET_ACCESS_KEY=\S+/);
    expect(r.stderr).toMatch(/MQTT broker {3}mqtt:\/\/127\.0\.0\.1:\d+ {2}topics loupe\/loupe-edge-1\/#/);
    expect(r.stderr).toMatch(/IPC socket \/\S+\/gg\/ipc\.socket/);
    // the folder was temporary and nothing failed: it is gone
    const root = /folder {8}(\S+)/.exec(r.stderr)![1]!;
    expect(existsSync(root)).toBe(false);
  });

  it('fails loudly: a component that errors is named with its reason, exit 1, logs kept', async () => {
    const r = await runCli(['edge', 'up', '--source', 'folder:/nonexistent-loupe-camera', '--duration', '6', '--json'], {
      timeoutMs: 120_000,
    });
    expect(r.code, r.stderr.slice(-2000)).toBe(1);
    const summary = JSON.parse(r.stdout.trim()) as { errors: number };
    expect(summary.errors).toBeGreaterThan(0);
    expect(r.stderr).toContain('loupe.Camera cam1');
    expect(r.stderr).toContain('/nonexistent-loupe-camera: is not a readable folder');
    const kept = /component logs kept in (\S+) \(working folder (\S+)\)/.exec(r.stderr);
    expect(kept, r.stderr.slice(-1500)).not.toBeNull();
    try {
      expect(readdirSync(kept![1]!)).toContain('loupe.Camera.log');
    } finally {
      await rm(kept![2]!, { recursive: true, force: true });
    }
  });

  it('names frames that could not be inferred, with a reason, exit 1', async () => {
    const withCorrupt = await mkdtemp(join(tmpdir(), 'loupe-edge-corrupt-'));
    try {
      await chmod(withCorrupt, 0o755);
      await copyFile(join(dir, (await readdir(dir)).sort()[0]!), join(withCorrupt, 'a-good.jpg'));
      await writeFile(join(withCorrupt, 'b-corrupt.jpg'), Buffer.from('this is not a JPEG'));
      const r = await runCli(['edge', 'up', '--source', `folder:${withCorrupt}`, '--fps', '4', '--duration', '8', '--json'], {
        timeoutMs: 120_000,
      });
      expect(r.code, r.stderr.slice(-2000)).toBe(1);
      const s = JSON.parse(r.stdout.trim()) as { errors: number; inferred: number };
      expect(s.inferred).toBeGreaterThan(0);
      expect(s.errors).toBeGreaterThan(0);
      expect(r.stderr).toMatch(/loupe\.Inference: \d+ frame\(s\) could not be inferred, e\.g\. \S/);
      const kept = /working folder (\S+)\)/.exec(r.stderr);
      if (kept) await rm(kept[1]!, { recursive: true, force: true });
    } finally {
      await rm(withCorrupt, { recursive: true, force: true });
    }
  });
});
