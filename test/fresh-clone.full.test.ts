import { execFileSync, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { projectRoot } from '../lib/paths.js';

/**
 * A plain clone runs the demo (issue 13 §1): the committed HEAD cloned into a temp folder with no
 * `../shared` beside it, the README's set-up parts that matter (build; `loupe setup python` finds
 * the cached trainer venv), then `loupe demo --fast --json` with LOUPE_SHARED pointing at a
 * folder that does not exist, under strace: the run ends with the JSON summary and no process
 * of it opened anything under /work/shared or the missing LOUPE_SHARED.
 * node_modules come from this checkout (hard-linked), as `npm ci` would install the same lockfile.
 */
let dir = '';
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 500 });
});

function run(
  cmd: string,
  args: string[],
  opts: { cwd: string; env: NodeJS.ProcessEnv; timeoutMs: number },
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: opts.cwd, env: opts.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    child.stderr.on('data', (b: Buffer) => (stderr = (stderr + b.toString()).slice(-20000)));
    const t = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(t);
      resolve({ code: code ?? -1, stdout, stderr });
    });
  });
}

describe('a fresh clone', () => {
  it('runs `loupe demo --fast` without ../shared', async () => {
    dir = await mkdtemp(join(tmpdir(), 'loupe-clone-'));
    // As root the nucleus runs components as ggc_user, who must reach the clone (mkdtemp makes it 0700).
    await chmod(dir, 0o755);
    const clone = join(dir, 'loupe');
    const head = execFileSync('git', ['-C', projectRoot, 'rev-parse', 'HEAD'], { encoding: 'utf8' }).trim();
    execFileSync('git', ['clone', '--quiet', '--no-checkout', projectRoot, clone]);
    execFileSync('git', ['-C', clone, 'checkout', '--quiet', head]);
    expect(existsSync(join(dir, 'shared'))).toBe(false);
    execFileSync('cp', ['-al', join(projectRoot, 'node_modules'), join(clone, 'node_modules')]);
    const missing = join(dir, 'no-shared-here');
    const env: NodeJS.ProcessEnv = { ...process.env, LOUPE_SHARED: missing, LOUPE_NO_PROGRESS: '1', LOUPE_HOME: '' };
    delete env.LOUPE_HOME;
    const build = await run('npm', ['run', 'build'], { cwd: clone, env, timeoutMs: 600_000 });
    expect(build.code, build.stderr).toBe(0);
    const setup = await run(process.execPath, ['bin/loupe.js', 'setup', 'python'], { cwd: clone, env, timeoutMs: 600_000 });
    expect(setup.code, setup.stderr).toBe(0);
    expect(JSON.parse(setup.stdout.trim())).toMatchObject({ part: 'python', ready: true });

    const trace = join(dir, 'strace.txt');
    const demo = await run(
      'strace',
      [
        '-f',
        '-qq',
        '-e',
        'trace=open,openat,stat,statx,newfstatat,access',
        '-o',
        trace,
        process.execPath,
        'bin/loupe.js',
        'demo',
        '--fast',
        '--json',
      ],
      { cwd: clone, env, timeoutMs: 1_500_000 },
    );
    expect(demo.code, demo.stderr.slice(-4000)).toBe(0);
    const summary = JSON.parse(demo.stdout.trim().split('\n').pop()!) as Record<string, unknown>;
    expect(summary).toMatchObject({ demo: 'loupe', fast: true, ok: true });
    const touched = readFileSync(trace, 'utf8')
      .split('\n')
      .filter((l) => l.includes('/work/shared') || l.includes(missing));
    // Looking for the optional folder (stat/access failing with ENOENT) is allowed; opening anything there is not.
    const opened = touched.filter((l) => /\bopen(at)?\(/.test(l) && !/= -1 ENOENT/.test(l));
    expect(opened, opened.slice(0, 5).join('\n')).toEqual([]);
    expect(touched.filter((l) => l.includes('/work/shared') && !/= -1 ENOENT/.test(l))).toEqual([]);
  }, 2_400_000);
});
