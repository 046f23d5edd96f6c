import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parsePyLiteral, parsePyNames, type PyValue } from '../../lib/pyliteral.js';
import { FUZZ_SECONDS, fuzz } from './harness.js';

/**
 * Fuzz target: the Python-literal parser (lib/pyliteral.ts), which reads ONNX
 * metadata (names, imgsz, args) and labels.csv annotations. Two properties:
 * - round trip: a value rendered as Python writes it (repr) parses back to the same value;
 * - hostile text: garbage, mutated literals, deep nesting and long runs of one character give a
 *   value or a LoupeError, in bounded time (a regular expression that backtracks
 *   quadratically on a long run is a hang here).
 */
type Py = null | boolean | number | string | Py[] | { tuple: Py[] } | { dict: [string | number, Py][] };

const pyStr = (s: string): string => {
  // Python's repr: single quotes unless the text has one and no double quote
  const q = s.includes("'") && !s.includes('"') ? '"' : "'";
  let out = q;
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    if (ch === '\\') out += '\\\\';
    else if (ch === q) out += '\\' + q;
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\t') out += '\\t';
    else if (c < 0x20 || c === 0x7f) out += '\\x' + c.toString(16).padStart(2, '0');
    else out += ch;
  }
  return out + q;
};

function render(v: Py): string {
  if (v === null) return 'None';
  if (v === true) return 'True';
  if (v === false) return 'False';
  if (typeof v === 'number') return Number.isInteger(v) ? String(v) : v.toExponential();
  if (typeof v === 'string') return pyStr(v);
  if (Array.isArray(v)) return `[${v.map(render).join(', ')}]`;
  if ('tuple' in v) return v.tuple.length === 1 ? `(${render(v.tuple[0]!)},)` : `(${v.tuple.map(render).join(', ')})`;
  return `{${v.dict.map(([k, x]) => `${typeof k === 'number' ? String(k) : pyStr(k)}: ${render(x)}`).join(', ')}}`;
}

/** What parsePyLiteral should give: tuples become lists, dicts plain objects (last value of a repeated key wins). */
function plain(v: Py): PyValue {
  if (v === null || typeof v !== 'object') return v;
  if (Array.isArray(v)) return v.map(plain);
  if ('tuple' in v) return v.tuple.map(plain);
  const o: Record<string, PyValue> = {};
  for (const [k, x] of v.dict)
    Object.defineProperty(o, String(k), { value: plain(x), enumerable: true, writable: true, configurable: true });
  return o;
}

const { value: pyValue } = fc.letrec<{ value: Py }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.constant(null),
    fc.boolean(),
    fc.integer({ min: -(2 ** 40), max: 2 ** 40 }),
    fc.double({ noNaN: true, noDefaultInfinity: true, min: -1e300, max: 1e300 }).filter((d) => !Object.is(d, -0)),
    fc.string({ unit: 'binary', maxLength: 20 }),
    fc.array(tie('value'), { maxLength: 5 }),
    fc.array(tie('value'), { maxLength: 4 }).map((tuple) => ({ tuple })),
    fc
      .array(fc.tuple(fc.oneof(fc.string({ maxLength: 8 }), fc.nat({ max: 1000 })), tie('value')), { maxLength: 4 })
      .map((dict) => ({ dict })),
  ),
}));

const hostile = fc.oneof(
  fc.string({ unit: 'grapheme', maxLength: 80 }),
  fc.stringMatching(/^[[\](){}:,'"\\rbuxU0-9a-fA-F_.eE+\- \nTFN]{0,60}$/),
  // long runs of one character, then something: catches backtracking and deep recursion
  fc
    .record({
      pre: fc.constantFrom('', '[', '-', "'", '0x', '1.', '1e'),
      ch: fc.constantFrom('1', '_', '[', '(', '{', '-', ' ', "'", '\\', 'e', '.', '0'),
      n: fc.integer({ min: 100, max: 40_000 }),
      post: fc.constantFrom('', 'a', ']', "'", 'x', '.', ' 1', 'e'),
    })
    .map(({ pre, ch, n, post }) => pre + ch.repeat(n) + post),
  // a valid literal with a few characters changed
  fc
    .record({ v: pyValue, at: fc.nat(), ch: fc.constantFrom('', '[', ']', "'", '"', '\\', ':', ',', '(', '}', 'x', '_', '.') })
    .map(({ v, at, ch }) => {
      const s = render(v);
      const i = s.length ? at % s.length : 0;
      return s.slice(0, i) + ch + s.slice(i + 1);
    }),
);

describe('fuzz: Python-literal parser', () => {
  it(
    'parses back what Python would write (round trip)',
    () => {
      const r = fuzz('pyliteral-roundtrip', pyValue, (v, stats) => {
        const text = render(v);
        stats.check(() => {
          const got = parsePyLiteral(text, { input: 'fuzz' });
          expect(got).toEqual(plain(v));
          return got;
        });
      });
      expect(r.refused).toBe(0);
      expect(r.iterations).toBeGreaterThanOrEqual(20); // the budget is time: a loaded machine runs fewer
    },
    FUZZ_SECONDS * 1000 + 60_000,
  );

  it(
    'never crashes or hangs on hostile text: a value or a LoupeError',
    () => {
      const r = fuzz('pyliteral-hostile', hostile, (text, stats) => {
        stats.check(
          () => parsePyLiteral(text, { input: 'fuzz' }),
          (v) => ((JSON.stringify(v)?.length ?? 0) > 8 * text.length + 64 ? 'value larger than its text' : null),
        );
        stats.check(
          () => parsePyNames(text, { input: 'fuzz' }),
          (names) => (names.length > text.length ? `${names.length} names from ${text.length} characters` : null),
        );
      });
      expect(r.iterations).toBeGreaterThanOrEqual(20); // the budget is time: a loaded machine runs fewer
    },
    FUZZ_SECONDS * 1000 + 60_000,
  );
});
