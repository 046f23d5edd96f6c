import { existsSync, readdirSync, statSync } from 'node:fs';
import { copyFile, link, mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, extname, join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { stringify as stringifyYaml } from 'yaml';
import type { Logger } from 'pino';
import { LoupeError } from '../../lib/errors.js';
import { fsyncDir, sha256 } from '../../lib/fsutil.js';
import { Progress } from '../../lib/progress.js';
import { mapLimit } from './image-info.js';
import { SPLIT_RULE, splitOf } from './split.js';
import { SPLITS, type LabelledImage, type SplitName } from './types.js';
import { datasetVersion, yoloLabelText } from './version.js';

/** Bumped whenever the folder layout or label text changes (test caches are keyed by it). */
export const YOLO_EXPORTER_VERSION = 'loupe-yolo-2';

export interface DatasetManifestEntry {
  id: string;
  split: SplitName;
  /** File name under images/<split>/ (its label is labels/<split>/<stem>.txt). */
  file: string;
  width: number;
  height: number;
  boxes: number;
}

/** manifest.json beside data.yaml: which image id became which file in which split. */
export interface DatasetManifest {
  exporter: string;
  version: string;
  splitRule: string;
  names: string[];
  counts: Record<SplitName, number>;
  images: DatasetManifestEntry[];
}

export interface WriteYoloOptions {
  /** Replace an existing output folder (swapped in by rename; the old one is removed afterwards). */
  overwrite?: boolean;
  /** Copy images instead of hard-linking them. */
  copy?: boolean;
  log?: Logger;
}

export interface WrittenYolo {
  yamlPath: string;
  root: string;
  version: string;
  manifest: DatasetManifest;
}

/**
 * File names from ids: `/` becomes `__` (`bad/x.jpg` → `bad__x.jpg`), other unsafe characters `_`.
 * Names must be unique by lower-cased stem (labels are `<stem>.txt`, and case-insensitive file
 * systems exist), so a colliding id gets a short hash of itself appended.
 */
export function fileNamesFor(ids: readonly string[]): Map<string, string> {
  const base = (id: string) =>
    id
      .split('/')
      .join('__')
      .replace(/[^A-Za-z0-9._+=@,-]/g, '_')
      .replace(/^\.+/, '_');
  const stemKey = (f: string) => f.slice(0, f.length - extname(f).length).toLowerCase();
  const byStem = new Map<string, string[]>();
  for (const id of ids) {
    const k = stemKey(base(id));
    byStem.set(k, [...(byStem.get(k) ?? []), id]);
  }
  const out = new Map<string, string>();
  for (const id of ids) {
    const f = base(id);
    if ((byStem.get(stemKey(f)) ?? []).length === 1) out.set(id, f);
    else {
      const ext = extname(f);
      out.set(id, `${f.slice(0, f.length - ext.length)}-${sha256(id).slice(0, 8)}${ext}`);
    }
  }
  return out;
}

async function placeImage(src: string, dst: string, copy: boolean): Promise<void> {
  if (!copy) {
    try {
      await link(src, dst);
      return;
    } catch {
      // other file system or not permitted: fall back to a copy
    }
  }
  await copyFile(src, dst);
}

export function checkIds(images: readonly LabelledImage[]): void {
  const seen = new Set<string>();
  for (const img of images) {
    if (!img.id || img.id.startsWith('/') || img.id.split('/').some((p) => p === '..' || p === '')) {
      throw new LoupeError('DATA_BAD_ID', `image id ${JSON.stringify(img.id)} is not a relative path`, { input: img.imagePath });
    }
    if (seen.has(img.id)) throw new LoupeError('DATA_DUPLICATE_ID', `image id ${img.id} occurs twice`, { input: img.imagePath });
    seen.add(img.id);
  }
}

/**
 * Write a YOLO data set folder: images/<split>/, labels/<split>/ (one .txt per image, empty for
 * backgrounds), data.yaml (absolute `path`, train/val/test, names) and manifest.json. Splits come
 * from splitOf(id). Built in a temp folder beside `outDir` and renamed into place, so a failure
 * leaves nothing behind and readers never see half a data set.
 */
export async function writeYoloDataset(
  names: readonly string[],
  images: readonly LabelledImage[],
  outDir: string,
  opts: WriteYoloOptions = {},
): Promise<WrittenYolo> {
  const root = resolve(outDir);
  checkIds(images);
  assertOutputFree(root, Boolean(opts.overwrite));
  await mkdir(dirname(root), { recursive: true });
  const tmp = join(dirname(root), `.${basename(root)}.partial-${randomBytes(4).toString('hex')}`);
  const files = fileNamesFor(images.map((i) => i.id));
  const sorted = [...images].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  const entries: DatasetManifestEntry[] = sorted.map((img) => ({
    id: img.id,
    split: splitOf(img.id),
    file: files.get(img.id) as string,
    width: img.width,
    height: img.height,
    boxes: img.boxes.length,
  }));
  const counts = { train: 0, val: 0, test: 0 };
  for (const e of entries) counts[e.split]++;
  const version = datasetVersion(names, images);
  const manifest: DatasetManifest = {
    exporter: YOLO_EXPORTER_VERSION,
    version,
    splitRule: SPLIT_RULE,
    names: [...names],
    counts,
    images: entries,
  };
  try {
    for (const s of SPLITS) {
      await mkdir(join(tmp, 'images', s), { recursive: true });
      await mkdir(join(tmp, 'labels', s), { recursive: true });
    }
    const progress = new Progress('write yolo', sorted.length, opts.log);
    let done = 0;
    await mapLimit(sorted, 8, async (img, i) => {
      const e = entries[i] as DatasetManifestEntry;
      await placeImage(img.imagePath, join(tmp, 'images', e.split, e.file), Boolean(opts.copy));
      await writeFile(join(tmp, 'labels', e.split, e.file.slice(0, e.file.length - extname(e.file).length) + '.txt'), yoloLabelText(img));
      progress.update(++done);
    });
    progress.finish();
    const yaml = stringifyYaml({
      path: root,
      train: 'images/train',
      val: 'images/val',
      test: 'images/test',
      // a Map keeps the keys integers (`0: scratch`), as ultralytics writes them
      names: new Map(names.map((n, i) => [i, n])),
    });
    await writeFile(join(tmp, 'data.yaml'), `# written by loupe (${YOLO_EXPORTER_VERSION}); version ${version}\n${yaml}`);
    await writeFile(join(tmp, 'manifest.json'), JSON.stringify(manifest, null, 1) + '\n');
    await fsyncDir(tmp);
    await commitDir(tmp, root, Boolean(opts.overwrite));
  } catch (e) {
    await rm(tmp, { recursive: true, force: true });
    throw e;
  }
  return { yamlPath: join(root, 'data.yaml'), root, version, manifest };
}

/** Refuse an output folder that exists and is not empty (unless overwriting); callers may check before long work. */
export function assertOutputFree(outDir: string, overwrite: boolean): void {
  const root = resolve(outDir);
  if (overwrite || !existsSync(root)) return;
  if (!statSync(root).isDirectory()) throw new LoupeError('OUT_EXISTS', 'output path exists and is not a folder', { input: root });
  if (readdirSync(root).length > 0)
    throw new LoupeError('OUT_EXISTS', 'output folder exists and is not empty (choose another, or overwrite)', { input: root });
}

/** Move a finished temp folder into place; with `overwrite`, swap the old one out first. */
export async function commitDir(tmp: string, root: string, overwrite: boolean): Promise<void> {
  let old: string | undefined;
  if (existsSync(root)) {
    if (readdirSync(root).length === 0) await rm(root, { recursive: true });
    else if (overwrite) {
      old = join(dirname(root), `.${basename(root)}.old-${randomBytes(4).toString('hex')}`);
      await rename(root, old);
    }
  }
  try {
    await rename(tmp, root);
  } catch (e) {
    // best effort: restoring the previous folder; the write's own error is the one reported
    if (old) await rename(old, root).catch(() => {});
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOTEMPTY' || code === 'EEXIST')
      throw new LoupeError('OUT_EXISTS', 'output folder appeared while writing (another writer?)', { input: root, cause: e });
    throw e;
  }
  await fsyncDir(dirname(root));
  if (old) await rm(old, { recursive: true, force: true });
}
