import { readFileSync } from 'node:fs';
import { relative, sep } from 'node:path';
import ts from 'typescript';
import { sourceFiles } from './imports.js';

/** A place that drops an error without handling it. */
export interface SwallowedError {
  file: string;
  line: number;
  /** `catch {}` or `.catch(() => {})` (also `=> undefined`, `=> null`, `=> void x`). */
  kind: 'catch-block' | 'catch-handler';
  /** A comment inside it, at the end of its line or on the line above says why. */
  explained: boolean;
}

const toPosix = (p: string) => p.split(sep).join('/');

function isEmptyHandler(f: ts.Expression): boolean {
  if (!ts.isArrowFunction(f) && !ts.isFunctionExpression(f)) return false;
  const b = f.body;
  if (ts.isBlock(b)) return b.statements.length === 0;
  return (ts.isIdentifier(b) && b.text === 'undefined') || b.kind === ts.SyntaxKind.NullKeyword || ts.isVoidExpression(b);
}

/** Every empty `catch` block and do-nothing `.catch` handler under `folders`, parsed with the TypeScript compiler. */
export function swallowedErrors(root: string, folders: readonly string[]): SwallowedError[] {
  const out: SwallowedError[] = [];
  for (const abs of sourceFiles(root, folders)) {
    const text = readFileSync(abs, 'utf8');
    const lines = text.split('\n');
    const sf = ts.createSourceFile(abs, text, ts.ScriptTarget.Latest, true);
    const file = toPosix(relative(root, abs));
    const explained = (n: ts.Node, body: ts.Node): boolean => {
      if (/\/\/|\/\*/.test(text.slice(body.getStart(sf), body.getEnd()))) return true;
      const line = sf.getLineAndCharacterOfPosition(n.getStart(sf)).line;
      const endLine = sf.getLineAndCharacterOfPosition(n.getEnd()).line;
      if (/\/\/|\/\*/.test(lines[endLine]?.slice(sf.getLineAndCharacterOfPosition(n.getEnd()).character) ?? '')) return true;
      const above = (lines[line - 1] ?? '').trim();
      return above.startsWith('//') || above.endsWith('*/');
    };
    const visit = (n: ts.Node): void => {
      const line = () => sf.getLineAndCharacterOfPosition(n.getStart(sf)).line + 1;
      if (ts.isCatchClause(n) && n.block.statements.length === 0)
        out.push({ file, line: line(), kind: 'catch-block', explained: explained(n, n.block) });
      if (
        ts.isCallExpression(n) &&
        ts.isPropertyAccessExpression(n.expression) &&
        n.expression.name.text === 'catch' &&
        n.arguments.length === 1 &&
        isEmptyHandler(n.arguments[0] as ts.Expression)
      ) {
        out.push({ file, line: line(), kind: 'catch-handler', explained: explained(n, n.arguments[0] as ts.Node) });
      }
      ts.forEachChild(n, visit);
    };
    visit(sf);
  }
  return out;
}
