import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { afterAll, describe, expect, it } from 'vitest';
import { projectRoot } from '../../lib/paths.js';
import { FakeTty } from '../helpers/screen.js';

/**
 * `loupe demo --fast` at a real pseudo-terminal (util-linux `script`), its bytes replayed into a
 * terminal emulator (xterm.js headless) of the same size, the screen rendered to HTML and
 * screenshotted in Chromium (test-artifacts/terminal/demo.png). On that screen no row holds both
 * a log line and a progress bar, and the run ends with the JSON summary.
 */
const COLS = 140;
const SHOTS = join(projectRoot, 'test-artifacts', 'terminal');
let dir = '';
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 500 });
});

function underPty(cmd: string, env: NodeJS.ProcessEnv, timeoutMs: number): Promise<{ code: number; bytes: string }> {
  return new Promise((resolve, reject) => {
    // script gives the command a terminal; stty sets its size before loupe reads it.
    const child = spawn('script', ['-q', '-e', '-c', `stty cols ${COLS} rows 50; ${cmd}`, '/dev/null'], {
      env,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let bytes = '';
    child.stdout.on('data', (b: Buffer) => (bytes += b.toString('utf8')));
    child.stderr.on('data', (b: Buffer) => (bytes += b.toString('utf8')));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, bytes });
    });
  });
}

describe('the demo at a terminal', () => {
  it('bars and log lines never share a row; a screenshot of the run', async () => {
    dir = await mkdtemp(join(tmpdir(), 'loupe-demo-tty-'));
    const env: NodeJS.ProcessEnv = { ...process.env, TERM: 'xterm-256color', LOUPE_NO_PROGRESS: '', LOUPE_LOG_FORMAT: '', NO_COLOR: '' };
    delete env.LOUPE_NO_PROGRESS;
    delete env.LOUPE_LOG_FORMAT;
    delete env.NO_COLOR;
    const run = await underPty(
      `${JSON.stringify(process.execPath)} ${JSON.stringify(join(projectRoot, 'bin', 'loupe.js'))} demo --fast --home ${JSON.stringify(join(dir, 'home'))}`,
      env,
      1_500_000,
    );
    await writeFile(join(dir, 'raw.txt'), run.bytes);
    expect(run.code, run.bytes.slice(-3000)).toBe(0);
    expect(run.bytes).toContain('\x1b[2K'); // bars were drawn and erased: this was a terminal

    const screen = new FakeTty(COLS, 50);
    screen.write(run.bytes.replace(/\r\n/g, '\n'));
    const rows = await screen.lines();
    const isLog = (r: string) => /^\[?\d\d:\d\d:\d\d\]? (INFO|WARN|ERROR|DEBUG)/.test(r);
    const isBar = (r: string) => /[█▏▎▍▌▋▊▉]|\s\d{1,3}%\s/.test(r) && /\d+\/\d+/.test(r) && /<\d+:\d\d|<\?/.test(r);
    expect(rows.filter(isLog).length).toBeGreaterThan(5);
    for (const r of rows) expect(isLog(r) && isBar(r), `a row with a log line and a bar: ${r}`).toBe(false);
    // the summary is the last stdout line: one JSON object
    const last = [...rows].reverse().find((r) => r.trim())!;
    const summary = JSON.parse(rows.slice(rows.findIndex((r) => r.startsWith('{'))).join('')) as Record<string, unknown>;
    expect(last.endsWith('}')).toBe(true);
    expect(summary).toMatchObject({ demo: 'loupe', fast: true, ok: true });

    await mkdir(SHOTS, { recursive: true });
    const html = await screen.html();
    await writeFile(join(SHOTS, 'demo.html'), html);
    const browser = await chromium.launch({
      executablePath: '/usr/bin/chromium',
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
    });
    try {
      const page = await browser.newPage({ viewport: { width: 1300, height: 900 } });
      await page.setContent(html);
      await page.screenshot({ path: join(SHOTS, 'demo.png'), fullPage: true });
      // What the browser shows is the emulator's screen: the same rows, no row with both
      const shown = (await page.locator('pre').innerText()).split('\n').map((r) => r.replace(/\u00a0/g, ' ').trimEnd());
      for (const r of shown) expect(isLog(r) && isBar(r)).toBe(false);
      expect(shown.some((r) => isLog(r))).toBe(true);
    } finally {
      await browser.close();
    }
  }, 1_600_000);
});
