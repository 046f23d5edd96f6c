import { existsSync, readFileSync, statSync } from 'node:fs';
import { copyFile, link, mkdir, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { LoupeError } from '../../lib/errors.js';
import { fsyncDir } from '../../lib/fsutil.js';
import { Progress } from '../../lib/progress.js';
import { boxToLabelStudio, labelStudioToBox, type Box } from '../../contracts/box.js';
import { mapLimit, readImageInfo } from './image-info.js';
import { checkBox, checkClass, dropDuplicateBoxes, labelError, type LabelSource } from './label-check.js';
import { emptyReport, type ImportedDataset, type LabelledImage } from './types.js';
import { assertOutputFree, checkIds, commitDir } from './yolo-write.js';

/**
 * Label Studio's JSON (the "JSON" export of a project, and its task import format) for object
 * detection: an array of tasks `{id, data: {image}, annotations: [{result: [...]}]}`, each result a
 * `rectanglelabels` region whose `value` is x, y, width, height in percent of the image
 * (contracts/box.ts converts). What loupe reads and writes is only that; other region types
 * (polygons, brushes, keypoints) and rotated rectangles are refused by name rather than dropped.
 */
export interface LsResult {
  id?: string;
  type: string;
  from_name?: string;
  to_name?: string;
  original_width?: number;
  original_height?: number;
  image_rotation?: number;
  value: { x: number; y: number; width: number; height: number; rotation?: number; rectanglelabels?: string[] };
  score?: number;
}
export interface LsAnnotation {
  id?: number | string;
  result: LsResult[];
  was_cancelled?: boolean;
  ground_truth?: boolean;
  created_at?: string;
  updated_at?: string;
}
export interface LsTask {
  id?: number;
  data: Record<string, unknown>;
  annotations?: LsAnnotation[];
  predictions?: unknown[];
}

export interface LabelStudioImportOptions {
  /** Folder holding the images; default `<json folder>/images` when present, else the JSON's folder. */
  imagesDir?: string;
  /** Class names in index order; labels of other classes are refused. Default: the sorted names found. */
  names?: string[];
  log?: Logger;
}

function fail(file: string, why: string): never {
  throw new LoupeError('LABEL_BAD_LABELSTUDIO', why, { input: file });
}

/**
 * The path an image reference points at, as a relative path to look up under the images folder:
 * Label Studio writes `/data/local-files/?d=dir/x.jpg` (local storage), `/data/upload/3/1a2b3c4d-x.jpg`
 * (uploads, with an 8-hex prefix it added), `s3://bucket/key`, `gs://…`, `http(s)://host/path`, or
 * whatever the task import gave it.
 */
function refPath(ref: string): string {
  const d = /[?&]d=([^&]+)/.exec(ref);
  const p = d ? d[1]! : ref.replace(/^[a-z][a-z0-9+.-]*:\/\/[^/]*\//i, '').replace(/[?#].*$/, '');
  let decoded = p;
  try {
    decoded = decodeURIComponent(p);
  } catch {
    // a plain path with a literal '%': take it as written
  }
  return decoded.replace(/\\/g, '/').replace(/^\/+/, '');
}

/** Candidate files for a reference under `base`: the whole path, then shorter tails, then the bare name without an upload prefix. */
function candidates(rel: string, base: string): string[] {
  const parts = rel.split('/').filter((x) => x && x !== '.' && x !== '..');
  const out: string[] = [];
  for (let i = 0; i < parts.length; i++) out.push(join(base, ...parts.slice(i)));
  const name = parts[parts.length - 1];
  const unprefixed = name?.replace(/^[0-9a-f]{8}-/, '');
  if (unprefixed && unprefixed !== name) out.push(join(base, unprefixed));
  return out;
}

/** The annotation that counts: the latest non-cancelled one (updated_at, else created_at, else list order). */
function pickAnnotation(anns: LsAnnotation[]): { chosen?: LsAnnotation; superseded: number } {
  const live = anns.map((a, i) => ({ a, i })).filter(({ a }) => !a.was_cancelled);
  if (live.length === 0) return { superseded: 0 };
  const t = (a: LsAnnotation) => a.updated_at ?? a.created_at ?? '';
  live.sort((x, y) => (t(x.a) < t(y.a) ? -1 : t(x.a) > t(y.a) ? 1 : x.i - y.i));
  return { chosen: live[live.length - 1]!.a, superseded: live.length - 1 };
}

function rectLabel(r: LsResult, src: LabelSource): string {
  if (r.type !== 'rectanglelabels')
    throw labelError('LABEL_UNSUPPORTED', src, `region type "${r.type}" is not a labelled rectangle (loupe reads rectanglelabels only)`);
  const v = r.value as LsResult['value'] | undefined;
  if (!v || typeof v !== 'object') throw labelError('LABEL_BAD_BOX', src, 'has no value');
  const labels = v.rectanglelabels;
  if (!Array.isArray(labels) || labels.length !== 1 || typeof labels[0] !== 'string') {
    throw labelError('LABEL_BAD_OBJECT', src, `rectanglelabels must hold exactly one class name, got ${JSON.stringify(labels)}`);
  }
  if ((v.rotation ?? 0) !== 0)
    throw labelError('LABEL_ROTATED', src, `is rotated by ${v.rotation} degrees; loupe's boxes are axis-aligned`);
  if ((r.image_rotation ?? 0) !== 0) throw labelError('LABEL_ROTATED', src, `was drawn on an image rotated by ${r.image_rotation} degrees`);
  for (const k of ['x', 'y', 'width', 'height'] as const) {
    if (typeof v[k] !== 'number' || !Number.isFinite(v[k]))
      throw labelError('LABEL_BAD_BOX', src, `value.${k} is ${JSON.stringify(v[k])}, not a number`);
  }
  return labels[0];
}

/**
 * Import a Label Studio JSON export. Ids are image paths relative to the images folder. A task
 * without a (non-cancelled) annotation is unlabelled and left out; an annotation with no regions is
 * a background image; when a task has several annotations the latest counts (the others are
 * reported as superseded). Predictions are not labels and are not read.
 */
export async function importLabelStudio(jsonPath: string, opts: LabelStudioImportOptions = {}): Promise<ImportedDataset> {
  const abs = resolve(jsonPath);
  if (!existsSync(abs) || !statSync(abs).isFile()) throw new LoupeError('DATA_MISSING', 'Label Studio JSON not found', { input: abs });
  let doc: unknown;
  try {
    doc = JSON.parse(readFileSync(abs, 'utf8'));
  } catch (e) {
    fail(abs, `not valid JSON (${(e as Error).message})`);
  }
  const tasks = (Array.isArray(doc) ? doc : [doc]) as LsTask[];
  // As for COCO: `<json folder>/images` when there is one (what writeLabelStudio writes), else the JSON's folder.
  const defaultImages = join(dirname(abs), 'images');
  const base = resolve(opts.imagesDir ?? (existsSync(defaultImages) ? defaultImages : dirname(abs)));
  if (!existsSync(base) || !statSync(base).isDirectory()) throw new LoupeError('DATA_MISSING', 'images folder not found', { input: base });
  const report = emptyReport('labelstudio', abs);
  report.records = tasks.length;
  const found: { task: LsTask; src: LabelSource; imagePath: string; id: string; ann: LsAnnotation }[] = [];
  const seenNames = new Set<string>();
  tasks.forEach((task, i) => {
    const taskName = `task ${task && typeof task === 'object' && task.id !== undefined ? task.id : `#${i + 1}`}`;
    if (!task || typeof task !== 'object' || !task.data || typeof task.data !== 'object')
      fail(abs, `${taskName}: expected {data: {image: ...}, annotations: [...]}`);
    const ref = task.data.image ?? Object.values(task.data).find((v) => typeof v === 'string');
    if (typeof ref !== 'string' || !ref) fail(abs, `${taskName}: data has no image reference`);
    const src: LabelSource = { file: abs, record: `${taskName} (${ref})` };
    const imagePath = candidates(refPath(ref), base).find((p) => existsSync(p) && statSync(p).isFile());
    if (!imagePath)
      throw labelError(
        'IMAGE_MISSING',
        src,
        `no image for it under ${base} (tried ${refPath(ref)} and its file name; --images sets the folder)`,
      );
    const id = relative(base, imagePath).split(sep).join('/');
    const { chosen, superseded } = pickAnnotation(Array.isArray(task.annotations) ? task.annotations : []);
    report.superseded += superseded;
    if (!chosen) {
      report.unlabelled.push(id);
      return;
    }
    if (!Array.isArray(chosen.result)) throw labelError('LABEL_BAD_OBJECT', src, 'annotation has no result list');
    chosen.result.forEach((r, j) => seenNames.add(rectLabel(r, { ...src, record: `${src.record} region ${j + 1}` })));
    found.push({ task, src, imagePath, id, ann: chosen });
  });
  const names = opts.names ?? [...seenNames].sort();
  const progress = new Progress('label studio import', found.length, opts.log);
  let done = 0;
  const images = await mapLimit(found, 4, async (f): Promise<LabelledImage> => {
    const size = await readImageInfo(f.imagePath, f.src);
    const boxes: Box[] = f.ann.result.map((r, j) => {
      const rsrc = { ...f.src, record: `${f.src.record} region ${j + 1}` };
      const name = rectLabel(r, rsrc);
      const cls = checkClass(names.indexOf(name), names, rsrc, JSON.stringify(name));
      return checkBox(labelStudioToBox(r.value, cls, size.width, size.height), size, rsrc, () => report.clipped++);
    });
    progress.update(++done);
    return {
      id: f.id,
      imagePath: f.imagePath,
      width: size.width,
      height: size.height,
      boxes: dropDuplicateBoxes(boxes, size, () => report.duplicates++),
    };
  });
  progress.finish();
  report.unlabelled.sort();
  report.images = images.length;
  report.boxes = images.reduce((n, i) => n + i.boxes.length, 0);
  return { names, images, report };
}

/** Label Studio's labelling config for these classes (the `from_name`/`to_name` the results use). */
export function labelStudioConfig(names: readonly string[]): string {
  const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;');
  return `<View>\n  <Image name="image" value="$image"/>\n  <RectangleLabels name="label" toName="image">\n${names.map((n) => `    <Label value="${esc(n)}"/>`).join('\n')}\n  </RectangleLabels>\n</View>\n`;
}

/** One region per box, in Label Studio's result layout (percent, unrounded). */
export function labelStudioResults(
  boxes: readonly Box[],
  names: readonly string[],
  width: number,
  height: number,
  scores?: readonly (number | undefined)[],
): LsResult[] {
  return boxes.map((b, i) => {
    const r: LsResult = {
      id: `r${i + 1}`,
      type: 'rectanglelabels',
      from_name: 'label',
      to_name: 'image',
      original_width: width,
      original_height: height,
      image_rotation: 0,
      value: { ...boxToLabelStudio(b, width, height), rotation: 0, rectanglelabels: [names[b.cls] ?? String(b.cls)] },
    };
    const s = scores?.[i];
    if (s !== undefined) r.score = s;
    return r;
  });
}

/** Tasks for labelled images, one annotation each; `imageUrl` says what `data.image` holds. */
export function labelStudioTasks(
  names: readonly string[],
  images: readonly LabelledImage[],
  imageUrl: (img: LabelledImage) => string,
): LsTask[] {
  const sorted = [...images].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  return sorted.map((img, i) => ({
    id: i + 1,
    data: { image: imageUrl(img) },
    annotations: [
      { id: i + 1, result: labelStudioResults(img.boxes, names, img.width, img.height), was_cancelled: false, ground_truth: false },
    ],
    predictions: [],
  }));
}

/**
 * Write a Label Studio folder: `tasks.json` (import it into a project, or read it back with
 * `dataset import --format labelstudio`), `label_config.xml` (the project's labelling config) and
 * `images/<id>` (hard-linked, or copied across file systems). `data.image` is `imageUrlPrefix` + id:
 * by default `images/<id>`, relative to the folder; give the URL your Label Studio reads them from
 * (e.g. `/data/local-files/?d=parts/images/` for local storage, or `s3://bucket/images/`).
 */
export async function writeLabelStudio(
  names: readonly string[],
  images: readonly LabelledImage[],
  outDir: string,
  opts: { overwrite?: boolean; imageUrlPrefix?: string; log?: Logger } = {},
): Promise<{ jsonPath: string; root: string; tasks: number }> {
  const root = resolve(outDir);
  checkIds(images);
  assertOutputFree(root, Boolean(opts.overwrite));
  await mkdir(dirname(root), { recursive: true });
  const tmp = join(dirname(root), `.${basename(root)}.partial-${randomBytes(4).toString('hex')}`);
  const prefix = opts.imageUrlPrefix ?? 'images/';
  try {
    const progress = new Progress('write label studio', images.length, opts.log);
    let done = 0;
    await mapLimit(images, 8, async (img) => {
      const dst = join(tmp, 'images', ...img.id.split('/'));
      if (isAbsolute(img.id) || img.id.split('/').includes('..'))
        throw new LoupeError('DATA_BAD_ID', 'image id must be a relative path without ..', { input: img.id });
      await mkdir(dirname(dst), { recursive: true });
      await link(img.imagePath, dst).catch(() => copyFile(img.imagePath, dst));
      progress.update(++done);
    });
    progress.finish();
    const tasks = labelStudioTasks(names, images, (img) => prefix + img.id.split('/').map(encodeURIComponent).join('/'));
    await writeFile(join(tmp, 'tasks.json'), JSON.stringify(tasks, null, 1));
    await writeFile(join(tmp, 'label_config.xml'), labelStudioConfig(names));
    await fsyncDir(tmp);
    await commitDir(tmp, root, Boolean(opts.overwrite));
    return { jsonPath: join(root, 'tasks.json'), root, tasks: tasks.length };
  } catch (e) {
    await rm(tmp, { recursive: true, force: true });
    throw e;
  }
}
