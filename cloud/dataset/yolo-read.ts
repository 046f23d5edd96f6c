import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, extname, isAbsolute, join, resolve, sep } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { LoupeError } from '../../lib/errors.js';
import type { SplitName, YoloDataset, YoloSplitItem } from './types.js';

export const IMAGE_EXTENSIONS = new Set(['.jpg', '.jpeg', '.png', '.bmp', '.webp', '.tif', '.tiff']);

/** ultralytics' image→label mapping: the last `/images/` becomes `/labels/`, extension `.txt`. */
export function labelPathFor(imagePath: string): string {
  const marker = `${sep}images${sep}`;
  const i = imagePath.lastIndexOf(marker);
  const swapped = i >= 0 ? imagePath.slice(0, i) + `${sep}labels${sep}` + imagePath.slice(i + marker.length) : imagePath;
  return swapped.slice(0, swapped.length - extname(swapped).length) + '.txt';
}

function namesOf(raw: unknown, yamlPath: string): string[] {
  if (Array.isArray(raw)) return raw.map(String);
  if (raw && typeof raw === 'object') {
    const entries = Object.entries(raw as Record<string, unknown>).map(([k, v]) => [Number(k), String(v)] as const);
    entries.sort((a, b) => a[0] - b[0]);
    entries.forEach(([k], i) => {
      if (k !== i) throw new LoupeError('DATA_BAD_NAMES', `names keys must be 0..n-1, found ${k} at position ${i}`, { input: yamlPath });
    });
    return entries.map(([, v]) => v);
  }
  throw new LoupeError('DATA_BAD_NAMES', '`names` is missing (a list or a {index: name} map)', { input: yamlPath });
}

function listImages(entry: string, root: string): string[] {
  const p = isAbsolute(entry) ? entry : resolve(root, entry);
  if (!existsSync(p)) return [];
  if (statSync(p).isDirectory()) {
    const out: string[] = [];
    const walk = (d: string) => {
      for (const e of readdirSync(d, { withFileTypes: true })) {
        const full = join(d, e.name);
        if (e.isDirectory()) walk(full);
        else if (IMAGE_EXTENSIONS.has(extname(e.name).toLowerCase())) out.push(full);
      }
    };
    walk(p);
    return out.sort();
  }
  // A list file: one image path per line, relative to the data set root.
  return readFileSync(p, 'utf8')
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter(Boolean)
    .map((l) => (isAbsolute(l) ? l : resolve(root, l)));
}

function readLabels(labelPath: string, nc: number): YoloSplitItem['labels'] {
  if (!existsSync(labelPath)) return [];
  const out: YoloSplitItem['labels'] = [];
  readFileSync(labelPath, 'utf8')
    .split(/\r?\n/)
    .forEach((line, i) => {
      const t = line.trim();
      if (!t) return;
      const parts = t.split(/\s+/).map(Number);
      if (parts.length < 5 || parts.some((v) => !Number.isFinite(v))) {
        throw new LoupeError('LABEL_BAD_LINE', `line ${i + 1}: expected "cls cx cy w h", got "${t}"`, { input: labelPath });
      }
      const [cls, cx, cy, w, h] = parts as [number, number, number, number, number];
      // ultralytics drops the whole image as corrupt on these; loupe refuses with a clear message instead
      if (!Number.isInteger(cls) || cls < 0 || cls >= nc) {
        throw new LoupeError('LABEL_UNKNOWN_CLASS', `line ${i + 1}: class ${cls} is not one of 0..${nc - 1}`, { input: labelPath });
      }
      if ([cx, cy, w, h].some((v) => v > 1 || v < -0.01)) {
        throw new LoupeError(
          'LABEL_OUTSIDE_IMAGE',
          `line ${i + 1}: "${t}" has coordinates outside 0..1 (not normalised, or outside the image)`,
          { input: labelPath },
        );
      }
      out.push({ cls, cx, cy, w, h });
    });
  return dropDuplicateRows(out);
}

/**
 * ultralytics' label check (verify_image_label) parses rows as float32 and, when some are equal,
 * keeps `np.unique(rows, axis=0)`: the distinct rows in lexicographic order. The evaluator must
 * see the same instances, so do the same; files without duplicates are returned untouched.
 */
function dropDuplicateRows(rows: YoloSplitItem['labels']): YoloSplitItem['labels'] {
  const key = (r: YoloSplitItem['labels'][number]) => [r.cls, r.cx, r.cy, r.w, r.h].map(Math.fround);
  const seen = new Set(rows.map((r) => key(r).join(' ')));
  if (seen.size === rows.length) return rows;
  const unique = new Map(rows.map((r) => [key(r).join(' '), r] as const));
  return [...unique.values()].sort((a, b) => {
    const ka = key(a);
    const kb = key(b);
    for (let i = 0; i < ka.length; i++) if (ka[i] !== kb[i]) return (ka[i] as number) - (kb[i] as number);
    return 0;
  });
}

/**
 * Where a split's entry points, as ultralytics' check_det_dataset resolves it: relative to the
 * data set root; and when that does not exist and the entry starts with `../`, relative to the
 * root without that step. Roboflow's exports rely on it: their data.yaml sits beside
 * `train/ valid/ test/` yet says `train: ../train/images`.
 */
export function splitPath(entry: string, root: string): string {
  const p = resolve(root, entry);
  if (!existsSync(p) && entry.startsWith('../')) return resolve(root, entry.slice(3));
  return p;
}

/** `names` (list or map), or `nc` alone (names class_0..), checked against each other as ultralytics does. */
function classNames(doc: Record<string, unknown>, yamlPath: string): string[] {
  const nc = doc.nc;
  if ((doc.names === undefined || doc.names === null) && typeof nc === 'number' && Number.isInteger(nc) && nc > 0) {
    return Array.from({ length: nc }, (_, i) => `class_${i}`);
  }
  const names = namesOf(doc.names, yamlPath);
  if (nc !== undefined && nc !== null && Number(nc) !== names.length) {
    throw new LoupeError('DATA_BAD_NAMES', `names has ${names.length} entries but nc is ${String(nc)}; they must match`, {
      input: yamlPath,
    });
  }
  return names;
}

/** Read a YOLO data set described by data.yaml (path/train/val/test/names, ultralytics' layout). */
export function readYoloDataset(yamlPath: string): YoloDataset {
  const abs = resolve(yamlPath);
  if (!existsSync(abs)) throw new LoupeError('DATA_MISSING', 'data set description not found', { input: abs });
  let doc: Record<string, unknown>;
  try {
    doc = (parseYaml(readFileSync(abs, 'utf8')) ?? {}) as Record<string, unknown>;
  } catch (e) {
    throw new LoupeError('DATA_BAD_YAML', `not valid YAML (${(e as Error).message})`, { input: abs });
  }
  const names = classNames(doc, abs);
  const rawRoot = typeof doc.path === 'string' && doc.path ? doc.path : dirname(abs);
  const root = isAbsolute(rawRoot) ? rawRoot : resolve(dirname(abs), rawRoot);
  // ultralytics renames a `validation` key to `val` (check_det_dataset); so does loupe.
  if ((doc.val === undefined || doc.val === null) && doc.validation !== undefined) doc.val = doc.validation;
  const splits: YoloDataset['splits'] = {};
  for (const split of ['train', 'val', 'test'] as SplitName[]) {
    const entry = doc[split];
    if (entry === undefined || entry === null) continue;
    const entries = Array.isArray(entry) ? entry.map((e) => resolve(root, String(e))) : [splitPath(String(entry), root)];
    splits[split] = entries
      .flatMap((e) => listImages(e, root))
      .map((imagePath) => {
        const labelPath = labelPathFor(imagePath);
        return { imagePath, labelPath, labels: readLabels(labelPath, names.length) };
      });
  }
  return { yamlPath: abs, root, names, splits };
}
