import { describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';

/** `loupe edge up` / `loupe build` option checks: refused before anything starts (the runs are in cli.full.test.ts). */
describe('loupe edge up', () => {
  it('refuses bad options with a message naming them', async () => {
    const a = await runCli(['edge', 'up', '--source', 'webcam:0', '--duration', '1']);
    expect(a.code).toBe(1);
    expect(a.stderr).toContain('--source webcam:0: unknown source kind "webcam"');
    const b = await runCli(['edge', 'up', '--fps', '0']);
    expect(b.code).toBe(1);
    expect(b.stderr).toContain('--fps: must be a positive number, got "0"');
    const c = await runCli(['build', '--platform', 'win-x64']);
    expect(c.code).toBe(1);
    expect(c.stderr).toContain('--platform win-x64: must be linux-x64 or linux-arm64');
  });
});
