import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ERROR_CODES, LEGACY_DOTTED_CODES } from '../../lib/error-codes.js';
import { projectRoot } from '../../lib/paths.js';
import { checkCatalogue, scanErrorCodes } from './error-codes.js';

/** The folders whose code raises LoupeErrors (tests and launchers only match on codes). */
const SOURCE_FOLDERS = ['cli', 'cloud', 'components', 'contracts', 'embedded', 'lib'];
const CATALOGUE_FILE = 'lib/error-codes.ts';

/**
 * `new LoupeError(code, ...)` with a computed code, each reviewed: the parameter or value is typed
 * ErrorCode, so tsc holds the literals callers pass to the catalogue. A new computed site fails
 * here until it is looked at and added.
 */
const COMPUTED_SITES = [
  'cloud/dataset/label-check.ts', // labelError(code: ErrorCode, ...)
  'cloud/quantize/quantize.ts', // quantize.py's LOUPE_ERROR code, through codeFromText
  'cloud/registry/validate.ts', // bad(code: ErrorCode, ...)
  'cloud/training/local-trainer.ts', // train.py's LOUPE_ERROR code, through codeFromText
  'cloud/training/sagemaker-trainer.ts', // a train.py refusal in FailureReason, only when isErrorCode
  'components/detector/model-info.ts', // fail(code: ErrorCode, ...)
  'lib/json-config.ts', // readJsonConfig/parseJsonConfig(..., codes typed ErrorCode): callers write 'X' satisfies ErrorCode
];

describe('error code catalogue (lib/error-codes.ts)', () => {
  const codes = Object.keys(ERROR_CODES);

  it('lists every code the tree raises, and nothing it no longer raises', () => {
    const scan = scanErrorCodes(projectRoot, SOURCE_FOLDERS, [CATALOGUE_FILE]);
    // the scan sees the tree (a broken scan would pass vacuously)
    expect(scan.files).toBeGreaterThan(200);
    expect(scan.thrown.size).toBeGreaterThan(250);
    expect(scan.thrown.get('BASE_WRONG_TASK')?.[0]?.file).toBe('cloud/training/train.py');

    const areas = new Map<string, number>();
    for (const info of Object.values(ERROR_CODES)) areas.set(info.area, (areas.get(info.area) ?? 0) + 1);
    console.log(
      `error codes: ${codes.length} catalogued (${LEGACY_DOTTED_CODES.length} legacy dotted), ${scan.thrown.size} thrown literally, ` +
        `${scan.computed.length} computed sites, ${scan.files} files scanned\n` +
        [...areas]
          .sort(([a], [b]) => a.localeCompare(b))
          .map(([a, n]) => `  ${a}: ${n}`)
          .join('\n'),
    );

    const { missing, unused } = checkCatalogue(scan, codes);
    expect(missing, 'codes thrown but not in lib/error-codes.ts: add each with its meaning').toEqual([]);
    expect(unused, 'catalogue entries nothing throws any more: remove them').toEqual([]);
    expect([...new Set(scan.computed.map((s) => s.file))].sort()).toEqual(COMPUTED_SITES);
  });

  it('names new codes UPPER_SNAKE; the dotted ones are the frozen legacy list', () => {
    const dotted = codes.filter((c) => !/^[A-Z][A-Z0-9]*(_[A-Z0-9]+)*$/.test(c));
    expect(dotted.sort()).toEqual([...LEGACY_DOTTED_CODES].sort());
    for (const c of dotted) expect(c).toMatch(/^[a-z]+\.[a-z]+$/);
    expect(LEGACY_DOTTED_CODES).toHaveLength(40);
    for (const [c, info] of Object.entries(ERROR_CODES)) {
      expect(info.meaning.length, c).toBeGreaterThan(10);
      expect(info.area, c).toMatch(/^(cli|lib|contracts|(cloud|components|embedded)\/[a-z-]+)$/);
    }
  });

  const scratch = mkdtempSync(join(tmpdir(), 'loupe-codes-'));
  afterAll(() => rmSync(scratch, { recursive: true, force: true }));
  const put = (rel: string, text: string) => {
    mkdirSync(dirname(join(scratch, rel)), { recursive: true });
    writeFileSync(join(scratch, rel), text);
  };

  it('reads codes the way the tree writes them, and names what is missing or unused (a synthetic tree)', () => {
    put(
      'lib/a.ts',
      "throw new LoupeError(\n  'SPREAD_OVER_LINES',\n  'msg',\n);\n// new LoupeError('IN_A_COMMENT', 'x')\nconst s = \"new LoupeError('IN_A_STRING'\";\n",
    );
    put(
      'lib/b.ts',
      "throw new LoupeError(e.code === 'ENOENT' ? 'A_MISSING' : 'A_UNREADABLE', 'm');\nthrow new LoupeError(code, 'm');\nfail('VIA_HELPER', p, 'm');\n",
    );
    put('cloud/t.py', 'raise Refused(\n    "FROM_PYTHON",\n    "message",\n)\nrefuse("ALSO_PYTHON", "m")\n');
    put(
      'cloud/c.ts',
      "readJsonConfig(p, schema, {\n  missing: 'MARKED_NO_CONFIG' satisfies ErrorCode,\n  invalid: (bad ? 'MARKED_A' : 'MARKED_B') as errors.ErrorCode,\n});\n" +
        "const t = 'NOT_MARKED' satisfies string;\n",
    );
    const scan = scanErrorCodes(scratch, ['lib', 'cloud']);
    expect([...scan.thrown.keys()].sort()).toEqual([
      'ALSO_PYTHON',
      'A_MISSING',
      'A_UNREADABLE',
      'FROM_PYTHON',
      'MARKED_A',
      'MARKED_B',
      'MARKED_NO_CONFIG',
      'SPREAD_OVER_LINES',
    ]);
    expect(scan.thrown.get('MARKED_NO_CONFIG')).toEqual([{ file: 'cloud/c.ts', line: 2 }]);
    expect(scan.thrown.get('SPREAD_OVER_LINES')).toEqual([{ file: 'lib/a.ts', line: 1 }]);
    expect(scan.thrown.get('FROM_PYTHON')).toEqual([{ file: 'cloud/t.py', line: 1 }]);
    expect(scan.computed).toEqual([{ file: 'lib/b.ts', line: 2 }]);

    const r = checkCatalogue(scan, [
      'SPREAD_OVER_LINES',
      'A_MISSING',
      'A_UNREADABLE',
      'ALSO_PYTHON',
      'VIA_HELPER',
      'MARKED_A',
      'MARKED_B',
      'GONE',
    ]);
    // A marked code the catalogue lacks is missing, like a thrown one.
    expect(r.missing).toEqual(['FROM_PYTHON (thrown at cloud/t.py:1)', 'MARKED_NO_CONFIG (thrown at cloud/c.ts:2)']);
    expect(r.unused).toEqual(['GONE']); // VIA_HELPER counts: a helper passes it on to LoupeError
  });
});
