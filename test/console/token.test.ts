import { chmod, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { consoleToken } from '../../cli/commands/console.js';
import { runCli } from '../helpers/cli.js';

/** The console credential: environment or a 0600 file, never the command line. */
const dirs: string[] = [];
const saved = process.env.LOUPE_CONSOLE_TOKEN;
afterEach(async () => {
  if (saved === undefined) delete process.env.LOUPE_CONSOLE_TOKEN;
  else process.env.LOUPE_CONSOLE_TOKEN = saved;
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});
const temp = async () => {
  const d = await mkdtemp(join(tmpdir(), 'loupe-ctok-'));
  dirs.push(d);
  return d;
};

describe('the console credential', () => {
  it('the default file is created 0600 with a random credential, then read back', async () => {
    delete process.env.LOUPE_CONSOLE_TOKEN;
    const f = join(await temp(), 'console-token');
    const a = await consoleToken(f, true);
    expect(a).toMatchObject({ source: f, created: true });
    expect(a.token.length).toBeGreaterThanOrEqual(32);
    expect((await stat(f)).mode & 0o777).toBe(0o600);
    expect(await consoleToken(f, true)).toEqual({ token: a.token, source: f, created: false });
  });

  it('a file others can read is refused; a missing --token-file is an error; the environment wins', async () => {
    delete process.env.LOUPE_CONSOLE_TOKEN;
    const d = await temp();
    const f = join(d, 'tok');
    await writeFile(f, 'abcdefghijklmnopqrstuvwxyz\n');
    await chmod(f, 0o644);
    await expect(consoleToken(f, false)).rejects.toMatchObject({ code: 'CONSOLE_TOKEN_FILE_OPEN', input: f });
    await expect(consoleToken(join(d, 'nope'), false)).rejects.toMatchObject({ code: 'CONSOLE_NO_TOKEN' });
    process.env.LOUPE_CONSOLE_TOKEN = 'from-the-environment-123';
    expect(await consoleToken(f, false)).toMatchObject({ token: 'from-the-environment-123', source: 'LOUPE_CONSOLE_TOKEN' });
    expect(await readFile(f, 'utf8')).toBe('abcdefghijklmnopqrstuvwxyz\n');
  });

  it('`--token` on the command line is refused with the reason', async () => {
    const r = await runCli(['console', '--token', 'abc', '--home', await temp()]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/shows in ps and shell history/);
  });
});
