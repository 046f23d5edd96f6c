import { readFileSync } from 'node:fs';
import { relative, sep } from 'node:path';
import ts from 'typescript';
import { sourceFiles } from './imports.js';

/** Where a code is raised or named: project-relative file (`/`) and line. */
export interface Site {
  file: string;
  line: number;
}

export interface CodeScan {
  /**
   * Codes given literally to `new LoupeError(...)` (both arms of a `?:` count), written
   * `'CODE' satisfies ErrorCode` (or `as ErrorCode`) for a helper that raises it (lib/json-config.ts),
   * or refused by a Python script.
   */
  thrown: Map<string, Site[]>;
  /** `new LoupeError(x, ...)` whose code is computed: the type checker holds these to ErrorCode. */
  computed: Site[];
  /** Every string literal in the TypeScript and JavaScript (helpers such as `fail('MODEL_NOT_ONNX', ...)` pass codes on). */
  literals: Set<string>;
  files: number;
}

const toPosix = (p: string) => p.split(sep).join('/');

function add(map: Map<string, Site[]>, code: string, site: Site): void {
  const sites = map.get(code) ?? [];
  sites.push(site);
  map.set(code, sites);
}

/** The string codes an expression can evaluate to, or undefined when it is not made of literals. */
function literalCodes(e: ts.Expression): string[] | undefined {
  if (ts.isStringLiteralLike(e)) return [e.text];
  if (ts.isParenthesizedExpression(e)) return literalCodes(e.expression);
  if (ts.isConditionalExpression(e)) {
    const a = literalCodes(e.whenTrue);
    const b = literalCodes(e.whenFalse);
    return a && b ? [...a, ...b] : undefined;
  }
  return undefined;
}

/** The type `ErrorCode` (or `x.ErrorCode`), as written in a `satisfies`/`as` marker. */
function isErrorCodeType(t: ts.TypeNode): boolean {
  if (!ts.isTypeReferenceNode(t)) return false;
  const name = ts.isIdentifier(t.typeName) ? t.typeName.text : t.typeName.right.text;
  return name === 'ErrorCode';
}

/** train.py raises `Refused("CODE", ...)`, quantize.py calls `refuse("CODE", ...)`. */
const PY_REFUSAL = /\b(?:Refused|refuse)\(\s*"([^"]+)"/g;

/**
 * The codes the tree under `root` raises: parsed with the TypeScript compiler (so a call spread
 * over lines, a code in a comment or a string that merely looks like a call are read right),
 * plus the Python scripts' refusals, which the drivers re-raise with the same code. `skip` names
 * files left out (the catalogue itself, whose keys would otherwise count as uses).
 */
export function scanErrorCodes(root: string, folders: readonly string[], skip: readonly string[] = []): CodeScan {
  const scan: CodeScan = { thrown: new Map(), computed: [], literals: new Set(), files: 0 };
  for (const abs of sourceFiles(root, folders)) {
    const file = toPosix(relative(root, abs));
    if (skip.includes(file)) continue;
    const sf = ts.createSourceFile(abs, readFileSync(abs, 'utf8'), ts.ScriptTarget.Latest, true);
    scan.files++;
    const lineOf = (n: ts.Node) => sf.getLineAndCharacterOfPosition(n.getStart(sf)).line + 1;
    const visit = (n: ts.Node): void => {
      if (ts.isStringLiteralLike(n)) scan.literals.add(n.text);
      // A code handed to a helper that raises it, marked for tsc and for this scan: `'CODE' satisfies ErrorCode`.
      if ((ts.isSatisfiesExpression(n) || ts.isAsExpression(n)) && isErrorCodeType(n.type)) {
        const codes = literalCodes(n.expression);
        if (codes) for (const c of codes) add(scan.thrown, c, { file, line: lineOf(n) });
      }
      if (ts.isNewExpression(n) && ts.isIdentifier(n.expression) && n.expression.text === 'LoupeError' && n.arguments?.length) {
        const codes = literalCodes(n.arguments[0] as ts.Expression);
        if (codes) for (const c of codes) add(scan.thrown, c, { file, line: lineOf(n) });
        else scan.computed.push({ file, line: lineOf(n) });
      }
      ts.forEachChild(n, visit);
    };
    visit(sf);
  }
  for (const abs of sourceFiles(root, folders, /\.py$/)) {
    const file = toPosix(relative(root, abs));
    const text = readFileSync(abs, 'utf8');
    scan.files++;
    for (const m of text.matchAll(PY_REFUSAL)) add(scan.thrown, m[1] as string, { file, line: text.slice(0, m.index).split('\n').length });
  }
  return scan;
}

export interface CatalogueCheck {
  /** Thrown codes the catalogue lacks, with where they are thrown. */
  missing: string[];
  /** Catalogue entries no code in the tree names any more. */
  unused: string[];
}

/** Compare a scan with the catalogue: `unused` counts a code as used wherever the tree names it as a string. */
export function checkCatalogue(scan: CodeScan, catalogue: readonly string[]): CatalogueCheck {
  const known = new Set(catalogue);
  const missing = [...scan.thrown]
    .filter(([c]) => !known.has(c))
    .map(([c, sites]) => `${c} (thrown at ${sites.map((s) => `${s.file}:${s.line}`).join(', ')})`)
    .sort();
  const unused = catalogue.filter((c) => !scan.thrown.has(c) && !scan.literals.has(c)).sort();
  return { missing, unused };
}
