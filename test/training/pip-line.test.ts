import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parsePipLine } from '../../cloud/training/venv.js';
import { projectRoot } from '../../lib/paths.js';

/**
 * parsePipLine on real pip output: test/fixtures/pip/install-raw.txt is pip 24.3.1's own transcript
 * of `pip install --progress-bar raw --no-cache-dir setuptools==75.6.0 packaging==24.1`, recorded
 * on this machine (what `loupe setup python` reads to draw its download bars).
 */
describe('parsePipLine', () => {
  it('reads a real pip --progress-bar raw transcript', () => {
    const lines = readFileSync(join(projectRoot, 'test', 'fixtures', 'pip', 'install-raw.txt'), 'utf8')
      .split('\n')
      .filter(Boolean);
    const parsed = lines.map(parsePipLine);
    expect(parsed.filter((p) => p.kind !== 'text')).toEqual([
      { kind: 'collecting', what: 'setuptools==75.6.0' },
      { kind: 'download', file: 'setuptools-75.6.0-py3-none-any.whl', bytes: 1_200_000 },
      { kind: 'progress', done: 0, total: 1224032 },
      { kind: 'progress', done: 262144, total: 1224032 },
      { kind: 'progress', done: 1224032, total: 1224032 },
      { kind: 'collecting', what: 'packaging==24.1' },
      { kind: 'download', file: 'packaging-24.1-py3-none-any.whl', bytes: 53_000 },
      { kind: 'installing', what: 'setuptools, packaging' },
      { kind: 'installed', what: 'packaging-24.1 setuptools-75.6.0' },
    ]);
    // everything else is kept as text, trimmed (uninstall chatter, the links line)
    expect(parsed.filter((p) => p.kind === 'text').map((p) => (p as { text: string }).text)).toEqual([
      'Looking in links: /opt/wheels',
      'Attempting uninstall: setuptools',
      'Found existing installation: setuptools 65.5.0',
      'Uninstalling setuptools-65.5.0:',
      'Successfully uninstalled setuptools-65.5.0',
    ]);
  });

  it('reads download lines that name a URL, with and without a size, and every size unit', () => {
    expect(
      parsePipLine('  Downloading https://files.pythonhosted.org/packages/ab/cd/torch-2.5.1-cp311-cp311-manylinux1_x86_64.whl (906.4 MB)'),
    ).toEqual({ kind: 'download', file: 'torch-2.5.1-cp311-cp311-manylinux1_x86_64.whl', bytes: 906_400_000 });
    expect(parsePipLine('Downloading numpy-2.1.0.tar.gz')).toEqual({ kind: 'download', file: 'numpy-2.1.0.tar.gz', bytes: null });
    expect(parsePipLine('Downloading a.whl (12 KB)')).toMatchObject({ bytes: 12_000 });
    expect(parsePipLine('Downloading a.whl (2.5 GB)')).toMatchObject({ bytes: 2_500_000_000 });
    expect(parsePipLine('Downloading a.whl (17 B)')).toMatchObject({ bytes: 17 });
    expect(parsePipLine('Progress 10 of')).toEqual({ kind: 'text', text: 'Progress 10 of' });
  });
});
