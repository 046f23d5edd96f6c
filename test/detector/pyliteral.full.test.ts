import { describe, expect, it } from 'vitest';
import { parsePyLiteral, parsePyLiteralEntries, parsePyNames, PyDictEntries } from '../../lib/pyliteral.js';
import { LoupeError } from '../../lib/errors.js';
import { runPython } from '../helpers/python.js';

// Literals as ultralytics metadata and Ground Truth labels write them, plus the odd corners.
const cases = [
  "{0: 'scratch'}",
  "{0: 'crazing', 1: 'inclusion', 2: 'patches', 3: 'pitted_surface', 4: 'rolled-in_scale', 5: 'scratches'}",
  '[480, 480]',
  '(640, 480)',
  "{'batch': 1, 'half': False, 'dynamic': True, 'simplify': False, 'opset': None, 'nms': False}",
  "[{'class_id': 0, 'top': 123, 'left': 81, 'height': 97, 'width': 82}, {'class_id': 0, 'top': 1, 'left': 2, 'height': 3, 'width': 4}]",
  '[]',
  '()',
  '(1,)',
  '((1, 2), [3, (4,)], {"a": {"b": [None, True]}})',
  '{"it\'s": "say \\"hi\\"", \'tab\': \'a\\tb\\n\', "u": "\\u00e9\\x41\\101"}',
  '\'adj\' "acent"',
  '-1.5e-3',
  '+7',
  '1_000',
  '0x1F',
  '.5',
  '3.',
  "r'C:\\path\\n'",
  "'''tri'ple'''",
  "{'a': 1, 'a': 2, 'b': 3}",
  '[1, 2, 3,]',
  '( 1 , 2 )',
];

describe('pyliteral', () => {
  it('parses like ast.literal_eval (cross-checked in the pinned venv)', async () => {
    const code =
      `import ast, json, sys\ncases = ${JSON.stringify(JSON.stringify(cases))}\n` +
      `def conv(v):\n  if isinstance(v, dict): return {str(k) if not isinstance(k, bool) else ('True' if k else 'False'): conv(x) for k, x in v.items()}\n` +
      `  if isinstance(v, (list, tuple, set)): return [conv(x) for x in v]\n  return v\n` +
      `print(json.dumps([conv(ast.literal_eval(c)) for c in json.loads(cases)]))`;
    const want = JSON.parse(await runPython(code)) as unknown[];
    const got = cases.map((c) => parsePyLiteral(c));
    for (let i = 0; i < cases.length; i++) expect(got[i], cases[i]).toEqual(want[i]);
  }, 600_000);

  it('keeps int dict keys with parsePyLiteralEntries', () => {
    const v = parsePyLiteralEntries("{0: 'a', '0': 'b'}");
    expect(v).toBeInstanceOf(PyDictEntries);
    expect((v as PyDictEntries).entries).toEqual([
      [0, 'a'],
      ['0', 'b'],
    ]);
  }, 600_000);

  it('parses names dicts and lists into dense arrays', () => {
    expect(parsePyNames("{1: 'b', 0: 'a'}")).toEqual(['a', 'b']);
    expect(parsePyNames('["x", \'y\']')).toEqual(['x', 'y']);
    expect(() => parsePyNames("{0: 'a', 2: 'c'}", { input: 'm.onnx names' })).toThrow(/m\.onnx names: class names skip class id 1/);
    expect(() => parsePyNames("{'a': 'b'}")).toThrow(/non-integer key/);
    expect(() => parsePyNames('5')).toThrow(LoupeError);
  }, 600_000);

  it('refuses what is not a literal, naming the input and the place', () => {
    const bad = ["{0: 'a'", '[1, 2', "'open", 'foo(1)', '1 2', '{[1]: 2}', "{'a' 1}", '01', '', "'a\nb'", '__import__("os")'];
    for (const b of bad) {
      let err: unknown;
      try {
        parsePyLiteral(b, { input: 'labels.csv row 3 annotations' });
      } catch (e) {
        err = e;
      }
      expect(err, b).toBeInstanceOf(LoupeError);
      expect((err as LoupeError).message, b).toMatch(/^labels\.csv row 3 annotations: not a Python literal: .+ \(offset \d+/);
      expect((err as LoupeError).code).toBe('PYLITERAL_SYNTAX');
    }
  }, 600_000);

  it('does not let a __proto__ key reach the prototype', () => {
    const v = parsePyLiteral("{'__proto__': {'polluted': 1}}") as Record<string, unknown>;
    expect(Object.getPrototypeOf(v)).toBe(Object.prototype);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(Object.keys(v)).toEqual(['__proto__']);
  }, 600_000);
});
