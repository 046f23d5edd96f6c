import { LoupeError } from './errors.js';

/**
 * Parser for Python literals as `ast.literal_eval` accepts them: what ultralytics writes into ONNX
 * metadata (`names`, `imgsz`, `args`) and what SageMaker Ground Truth / the reference solution's
 * feature store writes as `annotations` in labels.csv (`str(list_of_dicts)`).
 *
 * Hand-written because no maintained npm package parses Python literals (JSON parsers reject
 * single quotes, True/False/None, tuples and int dict keys), and the grammar is small.
 *
 * Mapping to JS: int/float -> number, str/bytes -> string, True/False -> boolean, None -> null,
 * list/tuple/set -> array, dict -> plain object (keys converted to strings, as JSON would; use
 * `parsePyLiteralEntries` when key types matter, e.g. `{0: 'scratch'}`).
 */

export type PyValue = null | boolean | number | string | PyValue[] | PyDict;
export interface PyDict {
  [key: string]: PyValue;
}

/** A dict kept with its original key types (int vs str), in source order. */
export class PyDictEntries {
  constructor(readonly entries: Array<[PyValue, PyValue]>) {}
}

type RawValue = null | boolean | number | string | RawValue[] | PyDictEntries;

export interface PyLiteralOptions {
  /** Names the input in error messages (a file, a metadata key, a CSV row). */
  input?: string;
}

/** Parse a Python literal; dicts become plain objects with string keys. */
export function parsePyLiteral(text: string, opts: PyLiteralOptions = {}): PyValue {
  return toPlain(parseRaw(text, opts));
}

/** Parse a Python literal keeping dicts as `PyDictEntries` (original key types and order). */
export function parsePyLiteralEntries(text: string, opts: PyLiteralOptions = {}): RawValue {
  return parseRaw(text, opts);
}

/**
 * Parse ultralytics' `names` metadata (`{0: 'a', 1: 'b'}` or a list `['a', 'b']`) into a dense
 * array indexed by class id. Refuses gaps and non-int keys, naming the input.
 */
export function parsePyNames(text: string, opts: PyLiteralOptions = {}): string[] {
  const v = parseRaw(text, opts);
  const fail = (why: string): never => {
    throw new LoupeError('PYLITERAL_NAMES', `class names ${why}: ${truncate(text)}`, { input: opts.input });
  };
  if (Array.isArray(v)) {
    return v.map((n) => (typeof n === 'string' ? n : fail('must be strings')));
  }
  if (!(v instanceof PyDictEntries)) return fail('must be a dict {id: name} or a list');
  const out: string[] = [];
  for (const [k, n] of v.entries) {
    if (typeof k !== 'number' || !Number.isInteger(k) || k < 0) return fail(`have a non-integer key ${JSON.stringify(k)}`);
    if (typeof n !== 'string') return fail(`have a non-string name for class ${k}`);
    out[k] = n;
  }
  for (let i = 0; i < out.length; i++) if (out[i] === undefined) fail(`skip class id ${i}`);
  return out;
}

function toPlain(v: RawValue): PyValue {
  if (Array.isArray(v)) return v.map(toPlain);
  if (v instanceof PyDictEntries) {
    // Object.fromEntries defines own properties, so a '__proto__' key cannot reach the prototype.
    return Object.fromEntries(v.entries.map(([k, val]) => [keyString(k), toPlain(val as RawValue)]));
  }
  return v;
}

function keyString(k: PyValue): string {
  if (k === null) return 'None';
  if (typeof k === 'boolean') return k ? 'True' : 'False';
  if (typeof k === 'object') return JSON.stringify(k);
  return String(k);
}

function truncate(s: string, n = 80): string {
  return s.length > n ? `${s.slice(0, n)}…` : s;
}

function parseRaw(text: string, opts: PyLiteralOptions): RawValue {
  const p = new Parser(text, opts.input);
  p.ws();
  const v = p.value();
  p.ws();
  if (p.pos < text.length) p.fail('unexpected text after the value');
  return v;
}

const IDENT_RE = /[A-Za-z_][A-Za-z0-9_]*/y;
// The integer and fraction digits are separate groups (`\d[\d_]*(?:\.[\d_]*)?`), never two
// adjacent `[\d_]*` around an optional dot: that form backtracks quadratically when the lookahead
// fails after a long run of digits (16,000 digits and an 'e' took 3 s; found by test/fuzz).
const NUMBER_RE =
  /(?:0[xX][0-9a-fA-F_]+|0[oO][0-7_]+|0[bB][01_]+|(?:\d[\d_]*(?:\.[\d_]*)?|\.\d[\d_]*)(?:[eE][+-]?\d[\d_]*)?)(?![A-Za-z0-9_.])/y;

class Parser {
  pos = 0;
  private depth = 0;

  constructor(
    private readonly s: string,
    private readonly input?: string,
  ) {}

  fail(why: string): never {
    const at = this.pos < this.s.length ? ` near ${JSON.stringify(this.s.slice(this.pos, this.pos + 20))}` : ' at end of input';
    throw new LoupeError('PYLITERAL_SYNTAX', `not a Python literal: ${why} (offset ${this.pos}${at})`, {
      input: this.input,
    });
  }

  ws(): void {
    const s = this.s;
    while (this.pos < s.length) {
      const c = s.charCodeAt(this.pos);
      if (c === 32 || c === 9 || c === 10 || c === 13) this.pos++;
      else if (c === 92 && (s[this.pos + 1] === '\n' || s[this.pos + 1] === '\r'))
        this.pos += 2; // line continuation
      else break;
    }
  }

  value(): RawValue {
    if (++this.depth > 200) this.fail('nested too deeply');
    try {
      return this.valueInner();
    } finally {
      this.depth--;
    }
  }

  private valueInner(): RawValue {
    const s = this.s;
    const c = s[this.pos];
    if (c === undefined) this.fail('expected a value');
    if (c === '[') return this.sequence(']');
    if (c === '(') return this.tuple();
    if (c === '{') return this.dictOrSet();
    if (c === '-' || c === '+') {
      this.pos++;
      this.ws();
      const v = this.value();
      if (typeof v !== 'number') this.fail(`sign ${c} before a non-number`);
      return c === '-' ? -v : v;
    }
    if (c === "'" || c === '"') return this.strings();
    IDENT_RE.lastIndex = this.pos;
    const id = IDENT_RE.exec(s);
    if (id) {
      const word = id[0];
      const q = s[this.pos + word.length];
      if ((q === "'" || q === '"') && /^(?:[rRuUbB]|[rR][bB]|[bB][rR])$/.test(word)) return this.strings();
      this.pos += word.length;
      if (word === 'True') return true;
      if (word === 'False') return false;
      if (word === 'None') return null;
      this.pos -= word.length;
      this.fail(`unknown name ${word}`);
    }
    return this.number();
  }

  private number(): number {
    NUMBER_RE.lastIndex = this.pos;
    const m = NUMBER_RE.exec(this.s);
    if (!m || m[0] === '' || m[0] === '.') this.fail('expected a value');
    const raw = m[0].replace(/_/g, '');
    this.pos += m[0].length;
    let v: number;
    if (/^0[xX]/.test(raw)) v = parseInt(raw.slice(2), 16);
    else if (/^0[oO]/.test(raw)) v = parseInt(raw.slice(2), 8);
    else if (/^0[bB]/.test(raw)) v = parseInt(raw.slice(2), 2);
    else {
      if (/^0\d/.test(raw) && !/[.eE]/.test(raw) && /[1-9]/.test(raw)) this.fail('leading zeros in an int');
      v = Number(raw);
    }
    if (!Number.isFinite(v)) this.fail('number out of range');
    return v;
  }

  private sequence(close: string): RawValue[] {
    this.pos++; // opening bracket
    const out: RawValue[] = [];
    this.ws();
    while (this.s[this.pos] !== close) {
      out.push(this.value());
      this.ws();
      if (this.s[this.pos] === ',') {
        this.pos++;
        this.ws();
      } else if (this.s[this.pos] !== close) this.fail(`expected ',' or '${close}'`);
    }
    this.pos++;
    return out;
  }

  /** `()` empty tuple, `(x,)` tuple, `(x)` parenthesised value, `(a, b)` tuple. */
  private tuple(): RawValue {
    this.pos++;
    this.ws();
    if (this.s[this.pos] === ')') {
      this.pos++;
      return [];
    }
    const first = this.value();
    this.ws();
    if (this.s[this.pos] === ')') {
      this.pos++;
      return first;
    }
    if (this.s[this.pos] !== ',') this.fail("expected ',' or ')'");
    return [first, ...this.sequenceAfterFirst(')')];
  }

  /** The rest of a tuple/set after its first item; `pos` is on the comma. */
  private sequenceAfterFirst(close: string): RawValue[] {
    const out: RawValue[] = [];
    this.pos++;
    this.ws();
    while (this.s[this.pos] !== close) {
      out.push(this.value());
      this.ws();
      if (this.s[this.pos] === ',') {
        this.pos++;
        this.ws();
      } else if (this.s[this.pos] !== close) this.fail(`expected ',' or '${close}'`);
    }
    this.pos++;
    return out;
  }

  private dictOrSet(): RawValue {
    this.pos++;
    this.ws();
    if (this.s[this.pos] === '}') {
      this.pos++;
      return new PyDictEntries([]);
    }
    const first = this.value();
    this.ws();
    if (this.s[this.pos] !== ':') {
      // a set literal: keep as a list
      if (this.s[this.pos] === '}') {
        this.pos++;
        return [first];
      }
      if (this.s[this.pos] !== ',') this.fail("expected ':', ',' or '}'");
      return [first, ...this.sequenceAfterFirst('}')];
    }
    const entries: Array<[PyValue, PyValue]> = [];
    let key: RawValue = first;
    for (;;) {
      if (key instanceof PyDictEntries || Array.isArray(key)) this.fail('unhashable dict key');
      this.pos++; // ':'
      this.ws();
      const v = this.value();
      entries.push([key as PyValue, v as PyValue]);
      this.ws();
      if (this.s[this.pos] === ',') {
        this.pos++;
        this.ws();
      } else if (this.s[this.pos] !== '}') this.fail("expected ',' or '}'");
      if (this.s[this.pos] === '}') {
        this.pos++;
        return new PyDictEntries(dedupe(entries));
      }
      key = this.value();
      this.ws();
      if (this.s[this.pos] !== ':') this.fail("expected ':'");
    }
  }

  /** One string literal or several adjacent ones (Python concatenates them). */
  private strings(): string {
    let out = this.stringLit();
    for (;;) {
      const save = this.pos;
      this.ws();
      const c = this.s[this.pos];
      const pre = /^[rRuUbB]{1,2}(?=['"])/.exec(this.s.slice(this.pos, this.pos + 3));
      if (c === "'" || c === '"' || pre) out += this.stringLit();
      else {
        this.pos = save;
        return out;
      }
    }
  }

  private stringLit(): string {
    const s = this.s;
    let raw = false;
    while (/[rRuUbB]/.test(s[this.pos] ?? '')) {
      if (s[this.pos] === 'r' || s[this.pos] === 'R') raw = true;
      this.pos++;
    }
    const q = s[this.pos];
    if (q !== "'" && q !== '"') this.fail('expected a quote');
    const triple = s.startsWith(q.repeat(3), this.pos);
    const delim = triple ? q.repeat(3) : q;
    this.pos += delim.length;
    let out = '';
    for (;;) {
      if (this.pos >= s.length) this.fail('unterminated string');
      if (s.startsWith(delim, this.pos)) {
        this.pos += delim.length;
        return out;
      }
      const c = s[this.pos];
      if (!triple && (c === '\n' || c === '\r')) this.fail('newline inside a string');
      if (c !== '\\') {
        out += c;
        this.pos++;
        continue;
      }
      if (raw) {
        // raw strings keep the backslash, but it still protects the next char from ending the string
        out += c + (s[this.pos + 1] ?? '');
        this.pos += 2;
        continue;
      }
      out += this.escape();
    }
  }

  private escape(): string {
    const s = this.s;
    const e = s[this.pos + 1];
    this.pos += 2;
    switch (e) {
      case '\n':
        return '';
      case '\\':
      case "'":
      case '"':
        return e;
      case 'n':
        return '\n';
      case 't':
        return '\t';
      case 'r':
        return '\r';
      case 'a':
        return '\x07';
      case 'b':
        return '\b';
      case 'f':
        return '\f';
      case 'v':
        return '\v';
      case 'x':
        return this.hexEscape(2);
      case 'u':
        return this.hexEscape(4);
      case 'U':
        return this.hexEscape(8);
      case 'N': {
        this.pos -= 2;
        return this.fail('\\N{...} escapes are not supported');
      }
      case undefined:
        return this.fail('unterminated string');
      default: {
        if (e >= '0' && e <= '7') {
          let j = this.pos - 1;
          let d = '';
          while (d.length < 3 && s[j] >= '0' && s[j] <= '7') d += s[j++];
          this.pos = j;
          return String.fromCodePoint(parseInt(d, 8));
        }
        return `\\${e}`; // Python keeps unknown escapes verbatim
      }
    }
  }

  private hexEscape(n: number): string {
    const h = this.s.slice(this.pos, this.pos + n);
    if (h.length !== n || !/^[0-9a-fA-F]+$/.test(h)) this.fail(`bad \\x/\\u escape`);
    this.pos += n;
    const cp = parseInt(h, 16);
    if (cp > 0x10ffff) this.fail('escape out of Unicode range');
    return String.fromCodePoint(cp);
  }
}

/** Python dicts keep the last value for a repeated key, at the first key's position. */
function dedupe(entries: Array<[PyValue, PyValue]>): Array<[PyValue, PyValue]> {
  const idx = new Map<unknown, number>();
  const out: Array<[PyValue, PyValue]> = [];
  for (const [k, v] of entries) {
    const id = typeof k === 'boolean' ? Number(k) : k; // True == 1 in Python
    const at = idx.get(id);
    if (at === undefined) {
      idx.set(id, out.length);
      out.push([k, v]);
    } else out[at] = [out[at][0], v];
  }
  return out;
}
