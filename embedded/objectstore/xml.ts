import { XMLParser } from 'fast-xml-parser';
import { S3Error } from './errors.js';

/** The S3 REST XML namespace every response root carries. */
const NS = 'http://s3.amazonaws.com/doc/2006-03-01/';

export type XmlValue = string | number | boolean | undefined | null | XmlChild[] | { [k: string]: XmlValue };
type XmlChild = [string, XmlValue];

export function escapeXml(s: string): string {
  // eslint-disable-next-line no-control-regex -- the control characters XML 1.0 cannot carry literally
  return s.replace(/[<>&'"\u0000-\u0008\u000b\u000c\u000e-\u001f]/g, (c) =>
    c === '<'
      ? '&lt;'
      : c === '>'
        ? '&gt;'
        : c === '&'
          ? '&amp;'
          : c === "'"
            ? '&apos;'
            : c === '"'
              ? '&quot;'
              : `&#x${c.charCodeAt(0).toString(16)};`,
  );
}

/**
 * Serialise an element tree. Children are given as [name, value] pairs (so an element may
 * repeat, as `Contents` does); undefined/null children are left out.
 */
export function el(name: string, value: XmlValue): string {
  if (value === undefined || value === null) return '';
  if (Array.isArray(value)) return `<${name}>${value.map(([n, v]) => el(n, v)).join('')}</${name}>`;
  if (typeof value === 'object')
    return `<${name}>${Object.entries(value)
      .map(([n, v]) => el(n, v))
      .join('')}</${name}>`;
  return `<${name}>${escapeXml(String(value))}</${name}>`;
}

export function document(root: string, children: XmlChild[]): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n<${root} xmlns="${NS}">${children.map(([n, v]) => el(n, v)).join('')}</${root}>`;
}

// Values are not trimmed: an object key may begin or end with spaces or newlines, and trimming
// made DeleteObjects delete "a" when asked for " a". Numeric character references (&#xA;) are
// decoded (htmlEntities) as XML requires.
const parser = new XMLParser({
  ignoreAttributes: true,
  parseTagValue: false,
  trimValues: false,
  htmlEntities: true,
  removeNSPrefix: true,
  isArray: (name) => name === 'Part' || name === 'Object',
});

/** Parse a request body (CompleteMultipartUpload, Delete); malformed XML is S3's MalformedXML. */
export function parseXml(body: string): Record<string, unknown> {
  try {
    const v = parser.parse(body, true) as unknown;
    if (typeof v !== 'object' || v === null) throw new Error('not an element');
    return v as Record<string, unknown>;
  } catch (e) {
    throw new S3Error(
      'MalformedXML',
      400,
      `The XML you provided was not well-formed or did not validate against our published schema: ${(e as Error).message}`,
    );
  }
}
