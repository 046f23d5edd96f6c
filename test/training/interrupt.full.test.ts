import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { projectRoot } from '../../lib/paths.js';
import { metalTagsSubset } from './yolo-fixture.js';

/**
 * Ctrl-C during `loupe train`: the CLI forwards SIGINT to train.py, which stops, keeps the last
 * checkpoint as last.pt and exits; the CLI then exits 130 with a message saying where last.pt
 * is, and no Python process is left running.
 */
let tmp: string;
let data: string;

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'lt-int-'));
  data = await metalTagsSubset(join(tmp, 'data'), { limit: { train: 16, val: 4, test: 0 } });
});

afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('loupe train and Ctrl-C', () => {
  it('stops cleanly after SIGINT, keeps last.pt, exits 130 and leaves no process behind', async () => {
    const out = join(tmp, 'out');
    const child = spawn(
      process.execPath,
      [
        join(projectRoot, 'bin', 'loupe.js'),
        'train',
        '--data',
        data,
        '--epochs',
        '40',
        '--imgsz',
        '160',
        '--batch',
        '8',
        '--no-eval',
        '--out',
        out,
      ],
      {
        env: { ...process.env, LOUPE_NO_PROGRESS: '1' },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let stderr = '';
    let pythonPid: number | undefined;
    let sent = false;
    child.stderr.on('data', (b: Buffer) => {
      stderr += b.toString();
      for (const line of stderr.split('\n')) {
        if (!line.startsWith('{')) continue;
        const rec = JSON.parse(line) as { msg: string; pid?: number };
        if (rec.msg === 'train.py started') pythonPid = rec.pid;
        // interrupt once the first epoch has finished (so there is a checkpoint to keep)
        if (rec.msg === 'train 1/40' && !sent) {
          sent = true;
          child.kill('SIGINT'); // to the CLI process only, as `kill -INT` would
        }
      }
    });
    const killer = setTimeout(() => child.kill('SIGKILL'), 600_000);
    const code = await new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
    clearTimeout(killer);
    expect(sent, stderr.slice(-2000)).toBe(true);
    expect(code).toBe(130);
    expect(stderr).toMatch(
      new RegExp(
        `loupe: training interrupted after \\d+ epoch\\(s\\); the last checkpoint is kept at ${join(out, 'last.pt').replace(/[.]/g, '\\.')}`,
      ),
    );
    expect(existsSync(join(out, 'last.pt'))).toBe(true);
    expect(existsSync(join(out, 'model.onnx'))).toBe(false);
    expect(pythonPid).toBeGreaterThan(0);
    expect(alive(pythonPid!)).toBe(false);
  }, 600_000);
});
