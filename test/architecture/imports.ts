import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import ts from 'typescript';
import type { DependencyRule } from './rules.js';

/** One relative import: the importing file and line, and the file it names (project-relative, `/`). */
export interface ImportEdge {
  file: string;
  line: number;
  spec: string;
  target: string;
}

export interface Violation extends ImportEdge {
  message: string;
}

const toPosix = (p: string) => p.split(sep).join('/');
const lineOf = (text: string, pos: number) => text.slice(0, pos).split('\n').length;

const CODE_FILE = /\.(ts|mts|js|mjs)$/;

function walk(dir: string, out: string[], name: RegExp): void {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    // fixtures are data (some are other projects' code), not part of the tree's structure
    if (e.isDirectory()) {
      if (e.name !== 'node_modules' && e.name !== 'fixtures') walk(p, out, name);
    } else if (name.test(e.name) && !e.name.endsWith('.d.ts')) out.push(p);
  }
}

/** The files under `root`'s `folders` whose names match `name` (default: TypeScript and JavaScript), sorted, absolute. */
export function sourceFiles(root: string, folders: readonly string[], name: RegExp = CODE_FILE): string[] {
  const files: string[] = [];
  for (const f of folders) if (existsSync(join(root, f))) walk(join(root, f), files, name);
  return files.sort();
}

/**
 * Every relative import in the code folders under `root`, parsed with the TypeScript
 * compiler's own pre-processor (static, type-only, re-exports, dynamic `import()`; comments and
 * strings are not imports).
 */
export function importsIn(root: string, folders: readonly string[]): ImportEdge[] {
  const edges: ImportEdge[] = [];
  for (const abs of sourceFiles(root, folders)) {
    const text = readFileSync(abs, 'utf8');
    const info = ts.preProcessFile(text, true, true);
    for (const imp of info.importedFiles) {
      if (!imp.fileName.startsWith('.')) continue;
      const target = toPosix(relative(root, resolve(dirname(abs), imp.fileName))).replace(/\.js$/, '.ts');
      edges.push({ file: toPosix(relative(root, abs)), line: lineOf(text, imp.pos), spec: imp.fileName, target });
    }
  }
  return edges;
}

const within = (path: string, area: string) => path === area || path.startsWith(area + '/');

/** The imports no rule allows, each with the rules that applied. */
export function checkImports(edges: readonly ImportEdge[], rules: readonly DependencyRule[]): Violation[] {
  const out: Violation[] = [];
  for (const e of edges) {
    const applying = rules.filter((r) => within(e.file, r.from));
    if (applying.length === 0) {
      out.push({ ...e, message: `no dependency rule covers ${e.file.split('/')[0]}/ (add one to test/architecture/rules.ts)` });
      continue;
    }
    if (e.target.startsWith('..')) {
      out.push({ ...e, message: `imports ${e.spec}, outside the project` });
      continue;
    }
    const ok = applying.some((r) => within(e.target, r.from) || r.may.some((m) => m === '*' || within(e.target, m)));
    if (!ok)
      out.push({
        ...e,
        message: `${applying.map((r) => r.from).join(' + ')} may import only ${[...new Set(applying.flatMap((r) => r.may))].join(', ') || 'nothing of ours'}, not ${e.target}`,
      });
  }
  return out;
}

export function formatViolations(vs: readonly Violation[]): string {
  return vs.map((v) => `${v.file}:${v.line}: ${v.message}`).join('\n');
}
