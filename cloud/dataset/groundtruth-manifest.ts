import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { Logger } from 'pino';
import { LoupeError } from '../../lib/errors.js';
import { writeFileAtomic } from '../../lib/fsutil.js';
import { Progress } from '../../lib/progress.js';
import { mapLimit, readImageInfo } from './image-info.js';
import { checkBox, checkClass, dropDuplicateBoxes, labelError, type LabelSource } from './label-check.js';
import { idFromSourceRef, localPathFor } from './source-ref.js';
import { emptyReport, type ImportedDataset, type LabelledImage } from './types.js';
import { gtToBox, type Box, type GtBox } from '../../contracts/box.js';

/**
 * SageMaker Ground Truth bounding-box output manifests (JSON lines), as documented in the
 * SageMaker developer guide ("Labeling job output data", bounding box, adjustment and
 * verification job output): each line has `source-ref`, a label attribute
 * `{image_size: [{width, height, depth}], annotations: [{class_id, left, top, width, height}]}`
 * and `<attribute>-metadata` `{objects: [{confidence}], class-map: {"id": name}, type:
 * "groundtruth/object-detection", human-annotated, creation-date, job-name[, adjustment-status]}`.
 * Other keys of a line (other jobs' attributes, verification results) are kept as they are.
 */
export const GT_OBJECT_DETECTION = 'groundtruth/object-detection';
export const GT_LABEL_VERIFICATION = 'groundtruth/label-verification';

export interface GroundTruthVerification {
  attribute: string;
  /** The label value: "1"/"0" style index into the verification classes. */
  value: unknown;
  className?: string;
  confidence?: number;
  jobName?: string;
  creationDate?: string;
  workerFeedback: string[];
}

/** One manifest line with a bounding-box label. */
export interface GroundTruthRecord {
  sourceRef: string;
  /** The label attribute name (e.g. `bounding-box`, `adjusted-bounding-box`). */
  attribute: string;
  imageSize: { width: number; height: number; depth: number };
  annotations: GtBox[];
  /** class_id → class name, as in the metadata's `class-map`. */
  classMap: Record<number, string>;
  jobName: string;
  humanAnnotated: boolean;
  creationDate: string;
  adjustmentStatus?: 'adjusted' | 'unadjusted';
  /** Verification jobs' results found on the same line. */
  verifications?: GroundTruthVerification[];
  /** The other keys of the line, written back unchanged. */
  extra?: Record<string, unknown>;
}

/** A manifest line that carries no usable label for the chosen attribute (failed or expired task). */
export interface GroundTruthFailure {
  line: number;
  sourceRef: string;
  reason: string;
}

export interface ParsedManifest {
  records: (GroundTruthRecord & { line: number })[];
  failures: GroundTruthFailure[];
  attribute: string;
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

function isBoxAttribute(line: Obj, key: string): boolean {
  const v = line[key];
  const meta = line[`${key}-metadata`];
  return isObj(v) && Array.isArray(v.annotations) && (!isObj(meta) || meta.type === undefined || meta.type === GT_OBJECT_DETECTION);
}

function candidateAttributes(line: Obj): string[] {
  return Object.keys(line).filter((k) => k !== 'source-ref' && !k.endsWith('-metadata') && isBoxAttribute(line, k));
}

function finite(v: unknown, src: LabelSource, what: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v))
    throw labelError('LABEL_BAD_BOX', src, `${what} is ${JSON.stringify(v ?? null)}, not a number`);
  return v;
}

function parseRecord(line: Obj, attribute: string, src: LabelSource): GroundTruthRecord {
  const sourceRef = line['source-ref'] as string;
  const label = line[attribute] as Obj;
  const meta = (isObj(line[`${attribute}-metadata`]) ? line[`${attribute}-metadata`] : {}) as Obj;
  const sizeRaw = Array.isArray(label.image_size) ? label.image_size[0] : label.image_size;
  if (!isObj(sizeRaw)) throw labelError('LABEL_BAD_FIELD', src, `${attribute}.image_size is missing`);
  const imageSize = {
    width: finite(sizeRaw.width, src, `${attribute}.image_size.width`),
    height: finite(sizeRaw.height, src, `${attribute}.image_size.height`),
    depth: sizeRaw.depth === undefined ? 3 : finite(sizeRaw.depth, src, `${attribute}.image_size.depth`),
  };
  const objects = Array.isArray(meta.objects) ? (meta.objects as unknown[]) : [];
  const annotations = (label.annotations as unknown[]).map((a, i): GtBox => {
    const bsrc = { ...src, record: `${src.record} annotation ${i + 1}` };
    if (!isObj(a)) throw labelError('LABEL_BAD_BOX', bsrc, 'is not an object');
    const o = objects[i];
    const conf = isObj(o) && typeof o.confidence === 'number' ? o.confidence : undefined;
    return {
      class_id: finite(a.class_id, bsrc, 'class_id'),
      left: finite(a.left, bsrc, 'left'),
      top: finite(a.top, bsrc, 'top'),
      width: finite(a.width, bsrc, 'width'),
      height: finite(a.height, bsrc, 'height'),
      ...(conf === undefined ? {} : { confidence: conf }),
    };
  });
  const classMap: Record<number, string> = {};
  if (isObj(meta['class-map'])) {
    for (const [k, v] of Object.entries(meta['class-map'])) {
      const id = Number(k);
      if (!Number.isInteger(id) || id < 0 || typeof v !== 'string')
        throw labelError('LABEL_BAD_FIELD', src, `class-map entry ${JSON.stringify(k)}: ${JSON.stringify(v)} is not "<int>": "<name>"`);
      classMap[id] = v;
    }
  }
  const verifications: GroundTruthVerification[] = [];
  const used = new Set(['source-ref', attribute, `${attribute}-metadata`]);
  for (const [k, m] of Object.entries(line)) {
    if (!k.endsWith('-metadata') || !isObj(m) || m.type !== GT_LABEL_VERIFICATION) continue;
    const attr = k.slice(0, -'-metadata'.length);
    verifications.push({
      attribute: attr,
      value: line[attr],
      className: typeof m['class-name'] === 'string' ? m['class-name'] : undefined,
      confidence: typeof m.confidence === 'number' ? m.confidence : undefined,
      jobName: typeof m['job-name'] === 'string' ? m['job-name'] : undefined,
      creationDate: typeof m['creation-date'] === 'string' ? m['creation-date'] : undefined,
      workerFeedback: Array.isArray(m['worker-feedback'])
        ? m['worker-feedback'].map((f) => (isObj(f) ? String(f.comment ?? '') : String(f)))
        : [],
    });
  }
  const extra = Object.fromEntries(Object.entries(line).filter(([k]) => !used.has(k)));
  const adj = meta['adjustment-status'];
  return {
    sourceRef,
    attribute,
    imageSize,
    annotations,
    classMap,
    jobName: typeof meta['job-name'] === 'string' ? meta['job-name'] : '',
    humanAnnotated: meta['human-annotated'] === 'yes' || meta['human-annotated'] === true,
    creationDate: typeof meta['creation-date'] === 'string' ? meta['creation-date'] : '',
    ...(adj === 'adjusted' || adj === 'unadjusted' ? { adjustmentStatus: adj } : {}),
    ...(verifications.length ? { verifications } : {}),
    ...(Object.keys(extra).length ? { extra } : {}),
  };
}

/**
 * Parse an output manifest. The label attribute is `attribute` when given, else the one
 * bounding-box attribute found; when a line holds several (an adjustment job keeps the original
 * next to `adjusted-…`), the caller must choose. Lines without it (failed or expired tasks) are
 * returned as failures, not records.
 */
export function parseGroundTruthManifest(text: string, opts: { file?: string; attribute?: string } = {}): ParsedManifest {
  const file = opts.file ?? 'manifest';
  const lines: { n: number; obj: Obj }[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    if (!raw.trim()) return;
    let obj: unknown;
    try {
      obj = JSON.parse(raw);
    } catch (e) {
      throw labelError('LABEL_BAD_JSON', { file, record: `line ${i + 1}` }, `not a JSON object (${(e as Error).message})`);
    }
    if (!isObj(obj)) throw labelError('LABEL_BAD_JSON', { file, record: `line ${i + 1}` }, 'not a JSON object');
    if (typeof obj['source-ref'] !== 'string' || !obj['source-ref'])
      throw labelError('LABEL_BAD_FIELD', { file, record: `line ${i + 1}` }, 'has no "source-ref"');
    lines.push({ n: i + 1, obj });
  });
  let attribute = opts.attribute;
  if (!attribute) {
    const found = new Set(lines.flatMap((l) => candidateAttributes(l.obj)));
    if (found.size === 0)
      throw new LoupeError('LABEL_NO_ATTRIBUTE', 'no bounding-box label attribute on any line (expected {image_size, annotations})', {
        input: file,
      });
    if (found.size > 1) {
      throw new LoupeError(
        'LABEL_AMBIGUOUS_ATTRIBUTE',
        `several bounding-box label attributes (${[...found].sort().join(', ')}): choose one (--attribute)`,
        { input: file },
      );
    }
    attribute = [...found][0] as string;
  }
  const records: ParsedManifest['records'] = [];
  const failures: GroundTruthFailure[] = [];
  for (const { n, obj } of lines) {
    const sourceRef = obj['source-ref'] as string;
    const src: LabelSource = { file, record: `line ${n} (${sourceRef})` };
    if (!(attribute in obj)) {
      const meta = obj[`${attribute}-metadata`];
      const reason = isObj(meta) && typeof meta['failure-reason'] === 'string' ? meta['failure-reason'] : `no "${attribute}" label`;
      failures.push({ line: n, sourceRef, reason });
      continue;
    }
    if (!isBoxAttribute(obj, attribute))
      throw labelError(
        'LABEL_BAD_FIELD',
        src,
        `"${attribute}" is not a bounding-box label ({image_size, annotations}, type ${GT_OBJECT_DETECTION})`,
      );
    records.push({ ...parseRecord(obj, attribute, src), line: n });
  }
  return { records, failures, attribute };
}

/** One manifest line (JSON, no newline) in Ground Truth's layout; `extra` keys come back unchanged. */
export function formatGroundTruthLine(r: GroundTruthRecord): string {
  const meta: Obj = {
    objects: r.annotations.map((a) => ({ confidence: a.confidence ?? 1 })),
    'class-map': Object.fromEntries(Object.entries(r.classMap).map(([k, v]) => [String(k), v])),
    type: GT_OBJECT_DETECTION,
    'human-annotated': r.humanAnnotated ? 'yes' : 'no',
    'creation-date': r.creationDate,
    'job-name': r.jobName,
    ...(r.adjustmentStatus ? { 'adjustment-status': r.adjustmentStatus } : {}),
  };
  return JSON.stringify({
    'source-ref': r.sourceRef,
    ...(r.extra ?? {}),
    [r.attribute]: {
      image_size: [{ width: r.imageSize.width, height: r.imageSize.height, depth: r.imageSize.depth }],
      annotations: r.annotations.map((a) => ({ class_id: a.class_id, left: a.left, top: a.top, width: a.width, height: a.height })),
    },
    [`${r.attribute}-metadata`]: meta,
  });
}

/** Write a manifest (one line per record) atomically. */
export async function writeGroundTruthManifest(path: string, records: readonly GroundTruthRecord[]): Promise<void> {
  await writeFileAtomic(path, records.map((r) => formatGroundTruthLine(r) + '\n').join(''));
}

/**
 * Records for labelled images (boxes rounded to whole pixels as Ground Truth's UI produces them);
 * `sourceRefOf` maps an image id to its S3 URI.
 */
export function groundTruthRecordsFor(
  names: readonly string[],
  images: readonly LabelledImage[],
  opts: {
    attribute?: string;
    jobName: string;
    creationDate?: string;
    humanAnnotated?: boolean;
    sourceRefOf: (id: string) => string;
    round?: boolean;
  },
): GroundTruthRecord[] {
  const round = opts.round ?? true;
  const r = (v: number) => (round ? Math.round(v) : v);
  return images.map((img) => {
    const used = [...new Set(img.boxes.map((b) => b.cls))].sort((a, b) => a - b);
    return {
      sourceRef: opts.sourceRefOf(img.id),
      attribute: opts.attribute ?? 'bounding-box',
      imageSize: { width: img.width, height: img.height, depth: 3 },
      annotations: img.boxes.map((b) => {
        const left = r(b.x1);
        const top = r(b.y1);
        return { class_id: b.cls, left, top, width: r(b.x2) - left, height: r(b.y2) - top };
      }),
      classMap: Object.fromEntries(used.map((c) => [c, names[c] as string])),
      jobName: opts.jobName,
      humanAnnotated: opts.humanAnnotated ?? true,
      creationDate: opts.creationDate ?? new Date().toISOString(),
    };
  });
}

export interface GroundTruthImportOptions {
  /** Folder holding the images as named by each source-ref's last two path parts; default: the manifest's folder. */
  imagesDir?: string;
  /** The label attribute to read (needed when a line has several, e.g. after an adjustment job). */
  attribute?: string;
  /** Class names in index order; class-map names are looked up in it. Default: from the class-maps, ordered by class_id. */
  names?: string[];
  log?: Logger;
}

/**
 * Import a Ground Truth output manifest. Class ids are resolved through each line's class-map;
 * a class_id with no name (no class-map entry and no `names`) is refused as unknown. When an
 * image appears on several lines, the last line wins (a later job's output appended).
 */
export async function importGroundTruth(manifestPath: string, opts: GroundTruthImportOptions = {}): Promise<ImportedDataset> {
  const abs = resolve(manifestPath);
  if (!existsSync(abs) || !statSync(abs).isFile()) throw new LoupeError('DATA_MISSING', 'Ground Truth manifest not found', { input: abs });
  const imagesDir = resolve(opts.imagesDir ?? dirname(abs));
  const parsed = parseGroundTruthManifest(readFileSync(abs, 'utf8'), { file: abs, attribute: opts.attribute });
  const report = emptyReport('groundtruth', abs);
  report.records = parsed.records.length + parsed.failures.length;
  report.rejected = parsed.failures.length;
  // class names: given, or every class-map's (id, name) pairs, which must agree across lines
  let names = opts.names;
  const idToName = new Map<number, string>();
  for (const r of parsed.records) {
    for (const [k, v] of Object.entries(r.classMap)) {
      const id = Number(k);
      const prev = idToName.get(id);
      if (prev !== undefined && prev !== v && !opts.names) {
        throw labelError(
          'LABEL_CLASS_CONFLICT',
          { file: abs, record: `line ${r.line}` },
          `class-map says ${id}=${JSON.stringify(v)} but an earlier line says ${id}=${JSON.stringify(prev)}`,
        );
      }
      idToName.set(id, v);
    }
  }
  if (!names) names = [...idToName.entries()].sort((a, b) => a[0] - b[0]).map(([, v]) => v);
  const latest = new Map<string, GroundTruthRecord & { line: number }>();
  for (const r of parsed.records) {
    const id = idFromSourceRef(r.sourceRef);
    if (latest.has(id)) report.superseded++;
    latest.set(id, r);
  }
  const chosen = [...latest.entries()].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const progress = new Progress('groundtruth import', chosen.length, opts.log);
  let done = 0;
  const known = names;
  const images = await mapLimit(chosen, 4, async ([id, r]): Promise<LabelledImage> => {
    const src: LabelSource = { file: abs, record: `line ${r.line} (${id})` };
    const imagePath = localPathFor(imagesDir, id);
    const size = await readImageInfo(imagePath, src);
    if (size.width !== r.imageSize.width || size.height !== r.imageSize.height) {
      throw labelError(
        'LABEL_SIZE_MISMATCH',
        src,
        `image_size says ${r.imageSize.width}x${r.imageSize.height} but ${imagePath} is ${size.width}x${size.height}`,
      );
    }
    const boxes: Box[] = r.annotations.map((a, i) => {
      const bsrc = { ...src, record: `${src.record} annotation ${i + 1}` };
      const name = r.classMap[a.class_id];
      const cls =
        name !== undefined
          ? checkClass(known.indexOf(name), known, bsrc, `${a.class_id} (${JSON.stringify(name)})`)
          : opts.names
            ? checkClass(a.class_id, known, bsrc)
            : checkClass(-1, known, bsrc, `${a.class_id} (not in the line's class-map)`);
      return checkBox({ ...gtToBox(a), cls }, size, bsrc, () => report.clipped++);
    });
    progress.update(++done);
    return { id, imagePath, width: size.width, height: size.height, boxes: dropDuplicateBoxes(boxes, size, () => report.duplicates++) };
  });
  progress.finish();
  report.images = images.length;
  report.boxes = images.reduce((n, i) => n + i.boxes.length, 0);
  return { names, images, report };
}
