import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { projectRoot } from '../../lib/paths.js';
import { checkImports, formatViolations, importsIn } from './imports.js';
import { CODE_FOLDERS, DEPENDENCY_RULES } from './rules.js';

describe('dependency rules between top-level folders', () => {
  it('hold for every import in the tree', () => {
    const edges = importsIn(projectRoot, CODE_FOLDERS);
    // the scan sees the tree (a broken scan would pass vacuously)
    expect(edges.length).toBeGreaterThan(500);
    expect(edges.some((e) => e.file.startsWith('cloud/') && e.target.startsWith('components/detector/'))).toBe(true);
    const violations = checkImports(edges, DEPENDENCY_RULES);
    if (violations.length) console.error(formatViolations(violations));
    expect(formatViolations(violations)).toBe('');
  });

  const scratch = mkdtempSync(join(tmpdir(), 'loupe-deps-'));
  afterAll(() => rmSync(scratch, { recursive: true, force: true }));
  const put = (rel: string, text: string) => {
    mkdirSync(dirname(join(scratch, rel)), { recursive: true });
    writeFileSync(join(scratch, rel), text);
  };

  it('fail, naming file and line, when a rule is broken (a synthetic tree)', () => {
    put('lib/errors.ts', "import { z } from 'zod';\nexport const x = 1;\n");
    put(
      'lib/bad.ts',
      "// import { no } from '../cloud/not-an-import.js'\nimport { x } from './errors.js';\nimport type { T } from '../contracts/t.js';\n",
    );
    put('contracts/t.ts', "import { x } from '../lib/errors.js';\nexport type T = number;\n");
    put(
      'components/camera/main.ts',
      "import { x } from '../../lib/errors.js';\nimport { q } from '../uploader/q.js';\n\nconst s = await import('../../cloud/loop/loop.js');\n",
    );
    put('components/uploader/q.ts', "export { y } from '../../embedded/broker/broker.js';\n");
    put(
      'cloud/gate/gate.ts',
      "import { D } from '../../components/detector/detector.js';\nimport { C } from '../../components/camera/main.js';\nimport { R } from '../../components/build/recipes.js';\n",
    );
    put(
      'cloud/publish/p.ts',
      "import { R } from '../../components/build/recipes.js';\nimport { N } from '../../embedded/nucleus/cli-client.js';\nimport { M } from '../../embedded/nucleus/nucleus.js';\n",
    );
    put(
      'embedded/stack/edge.ts',
      "import { R } from '../../components/build/recipes.js';\nimport { L } from '../../cloud/loop/loop.js';\n",
    );
    put('cli/demo.ts', "import { L } from '../cloud/loop/loop.js';\nimport { E } from '../embedded/stack/edge.js';\n");
    put('tools/x.ts', "import { x } from '../lib/errors.js';\n");
    put('test/x.test.ts', "import { y } from '../../outside/thing.js';\n");
    put('test/fixtures/vendored/a.ts', "import { y } from '../../../cloud/loop/loop.js';\n");

    const v = checkImports(importsIn(scratch, [...CODE_FOLDERS, 'tools']), DEPENDENCY_RULES);
    expect(v.map((x) => `${x.file}:${x.line} -> ${x.target}`)).toEqual([
      'cloud/gate/gate.ts:2 -> components/camera/main.ts',
      'cloud/gate/gate.ts:3 -> components/build/recipes.ts',
      'cloud/publish/p.ts:3 -> embedded/nucleus/nucleus.ts',
      'components/camera/main.ts:4 -> cloud/loop/loop.ts',
      'components/uploader/q.ts:1 -> embedded/broker/broker.ts',
      'embedded/stack/edge.ts:2 -> cloud/loop/loop.ts',
      'lib/bad.ts:3 -> contracts/t.ts',
      'test/x.test.ts:1 -> ../outside/thing.ts',
      'tools/x.ts:1 -> lib/errors.ts',
    ]);
    const text = formatViolations(v);
    expect(text).toContain('lib/bad.ts:3: lib may import only nothing of ours, not contracts/t.ts');
    expect(text).toContain('cloud/publish/p.ts:3: cloud + cloud/publish may import only');
    expect(text).toContain('tools/x.ts:1: no dependency rule covers tools/');
    expect(text).toContain('test/x.test.ts:1: imports ../../outside/thing.js, outside the project');
  });
});
