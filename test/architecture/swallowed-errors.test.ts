import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { projectRoot } from '../../lib/paths.js';
import { swallowedErrors } from './swallowed-errors.js';

const SOURCE_FOLDERS = ['cli', 'cloud', 'components', 'contracts', 'embedded', 'lib'];

/**
 * Drops not yet explained, by file and count: files other branches were rewriting when the rest
 * were explained (issue 10 item 6). Explain them (a comment, or a log line) and remove the entry.
 */
const NOT_YET_EXPLAINED: Record<string, number> = {};

describe('swallowed errors', () => {
  it('each say why: every empty catch block and do-nothing .catch handler carries a comment', () => {
    const all = swallowedErrors(projectRoot, SOURCE_FOLDERS);
    const bare = all.filter((s) => !s.explained);
    console.log(
      `swallowed errors: ${all.length} (${all.filter((s) => s.kind === 'catch-block').length} catch blocks, ${all.filter((s) => s.kind === 'catch-handler').length} .catch handlers), ${bare.length} without a reason`,
    );
    expect(all.length).toBeGreaterThan(30); // the scan sees the tree
    const counts: Record<string, number> = {};
    for (const s of bare) counts[s.file] = (counts[s.file] ?? 0) + 1;
    const unexpected = bare.filter((s) => counts[s.file] !== NOT_YET_EXPLAINED[s.file]).map((s) => `${s.file}:${s.line} (${s.kind})`);
    expect(unexpected, 'say why the error is safe to drop (a comment on or above the line), or log it').toEqual([]);
    for (const f of Object.keys(NOT_YET_EXPLAINED))
      expect(counts[f], `${f} is explained now: drop it from NOT_YET_EXPLAINED`).toBe(NOT_YET_EXPLAINED[f]);
  });

  const scratch = mkdtempSync(join(tmpdir(), 'loupe-swallow-'));
  afterAll(() => rmSync(scratch, { recursive: true, force: true }));

  it('tells explained drops from bare ones (a synthetic file)', () => {
    const f = join(scratch, 'lib/x.ts');
    mkdirSync(dirname(f), { recursive: true });
    writeFileSync(
      f,
      [
        'try { a(); } catch {}',
        'try { a(); } catch {',
        '  // gone already',
        '}',
        'await p.catch(() => {});',
        '// best effort: may be gone',
        'await p.catch(() => {});',
        'await p.catch(() => undefined); // absent is fine',
        'await p.catch((e) => log.warn(e));',
        "const s = '.catch(() => {})';",
      ].join('\n'),
    );
    expect(swallowedErrors(scratch, ['lib']).map((s) => `${s.line} ${s.kind} ${s.explained}`)).toEqual([
      '1 catch-block false',
      '2 catch-block true',
      '5 catch-handler false',
      '7 catch-handler true',
      '8 catch-handler true',
    ]);
  });
});
