import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeRecord, openLabelStore } from '../cloud/labelstore/index.js';
import { projectRoot } from '../lib/paths.js';

/**
 * `loupe labels list | head` (issue 13 §5): a reader that leaves early closes the pipe, and the
 * next write fails with EPIPE. The CLI's output layer handles that once for every command: no
 * stack trace, the command's own exit code. Run through a real shell pipe, as a user runs it.
 */
const sh = promisify(execFile);
const loupe = `${JSON.stringify(process.execPath)} ${JSON.stringify(join(projectRoot, 'bin', 'loupe.js'))}`;
let dir = '';

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'loupe-pipe-'));
  const store = openLabelStore(join(dir, 'labels.db'));
  // ~3,000 lines (~400 kB): far more than a pipe buffer holds, so the writer must hit the closed pipe.
  await store.append(
    Array.from({ length: 3000 }, (_, i) =>
      makeRecord({
        source_ref: `s3://bucket/incoming/line-1/cam-0/${String(i).padStart(6, '0')}.jpg`,
        image_width: 640,
        image_height: 480,
        annotations: [{ class_id: 0, left: 1, top: 2, width: 3, height: 4 }],
        event_time: i,
        labeling_job: '',
        status: 'PENDING',
      }),
    ),
  );
  await store.close();
}, 60_000);
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** Run `loupe ARGS | READER` in bash; loupe's exit code and stderr, and what the reader printed. */
async function piped(
  args: string,
  reader: string,
  env: Record<string, string> = {},
): Promise<{ code: number; stderr: string; out: string }> {
  const err = join(dir, `err-${Math.random().toString(36).slice(2)}`);
  const script = `${loupe} ${args} 2>${err} | ${reader}; echo "rc=\${PIPESTATUS[0]}"`;
  const { stdout } = await sh('bash', ['-c', script], { env: { ...process.env, LOUPE_NO_PROGRESS: '1', ...env }, maxBuffer: 1 << 24 });
  const m = /rc=(\d+)\s*$/.exec(stdout);
  return { code: Number(m?.[1] ?? -1), stderr: await readFile(err, 'utf8'), out: stdout.slice(0, m?.index ?? stdout.length) };
}

describe('a reader that leaves early (EPIPE)', () => {
  it('`labels list | head -1`: one line, exit 0, nothing on stderr', async () => {
    const r = await piped(`labels list --home ${dir}`, 'head -1');
    expect(r.out.trim().split('\n')).toHaveLength(1);
    expect(r.out).toMatch(/^PENDING\s+unlabelled/);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
  });

  it('`labels list --json | head -c 10` and a reader that reads nothing at all (`| true`)', async () => {
    const a = await piped(`labels list --json --home ${dir}`, 'head -c 10');
    expect(a.out).toBe('{"seq":1,"');
    expect([a.code, a.stderr]).toEqual([0, '']);
    const b = await piped(`labels list --home ${dir}`, 'true');
    expect([b.code, b.stderr]).toEqual([0, '']);
  });

  it('other commands too: --help, and JSON log lines on stderr sent into the same closed pipe', async () => {
    const h = await piped('labels --help', 'head -1');
    expect([h.code, h.stderr]).toEqual([0, '']);
    // stderr into the pipe as well (2>&1): the log destination must not crash either.
    const script = `${loupe} labels stats --home ${dir} --log-format json 2>&1 | true; echo "rc=\${PIPESTATUS[0]}"`;
    const { stdout, stderr } = await sh('bash', ['-c', script], { env: { ...process.env, LOUPE_NO_PROGRESS: '1' } });
    expect(stdout.trim()).toBe('rc=0');
    expect(stderr).toBe('');
  });

  it('errors still reach the user: a failing command keeps its message and exit code', async () => {
    const r = await piped(`labels history s3://nope/x.jpg --home ${dir}`, 'head -1');
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/LABEL_UNKNOWN|no records for this image/);
  });
});
