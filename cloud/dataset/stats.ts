import sharp from 'sharp';
import { mapLimit } from './image-info.js';
import { SPLITS, type SplitName } from './types.js';
import { readYoloDataset } from './yolo-read.js';

export interface SplitStats {
  images: number;
  /** Images with an empty or missing label file. */
  backgrounds: number;
  boxes: number;
  /** Boxes per class name. */
  perClass: Record<string, { boxes: number; images: number }>;
}

export interface DatasetStats {
  yaml: string;
  names: string[];
  total: SplitStats;
  splits: Partial<Record<SplitName, SplitStats>>;
  /** Image sizes as "WxH" → count (from the file headers). */
  imageSizes: Record<string, number>;
  /** Box width/height in pixels of the original images. */
  boxSizes: { width: Summary; height: Summary; relativeArea: Summary } | null;
}

export interface Summary {
  min: number;
  mean: number;
  median: number;
  max: number;
}

function summary(v: number[]): Summary {
  const s = [...v].sort((a, b) => a - b);
  const mid = s.length >> 1;
  const median = s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
  return { min: s[0] as number, mean: s.reduce((a, b) => a + b, 0) / s.length, median, max: s[s.length - 1] as number };
}

function emptySplit(names: string[]): SplitStats {
  return { images: 0, backgrounds: 0, boxes: 0, perClass: Object.fromEntries(names.map((n) => [n, { boxes: 0, images: 0 }])) };
}

/** Counts per split and class, backgrounds, image and box sizes of a YOLO data set. */
export async function datasetStats(yamlPath: string): Promise<DatasetStats> {
  const ds = readYoloDataset(yamlPath);
  const total = emptySplit(ds.names);
  const splits: DatasetStats['splits'] = {};
  const imageSizes: Record<string, number> = {};
  const bw: number[] = [];
  const bh: number[] = [];
  const area: number[] = [];
  for (const split of SPLITS) {
    const items = ds.splits[split];
    if (!items) continue;
    const st = emptySplit(ds.names);
    const sizes = await mapLimit(items, 8, async (it) => {
      const m = await sharp(it.imagePath).metadata();
      // EXIF orientations 5-8 swap width and height, as ultralytics' exif_size does
      return (m.orientation ?? 1) >= 5 ? { w: m.height, h: m.width } : { w: m.width, h: m.height };
    });
    items.forEach((it, i) => {
      const { w, h } = sizes[i] as { w: number; h: number };
      imageSizes[`${w}x${h}`] = (imageSizes[`${w}x${h}`] ?? 0) + 1;
      for (const s of [st, total]) {
        s.images++;
        if (it.labels.length === 0) s.backgrounds++;
        s.boxes += it.labels.length;
        const seen = new Set<number>();
        for (const l of it.labels) {
          const name = ds.names[l.cls] ?? `#${l.cls}`;
          const pc = (s.perClass[name] ??= { boxes: 0, images: 0 });
          pc.boxes++;
          if (!seen.has(l.cls)) pc.images++;
          seen.add(l.cls);
        }
      }
      for (const l of it.labels) {
        bw.push(l.w * w);
        bh.push(l.h * h);
        area.push(l.w * l.h);
      }
    });
    splits[split] = st;
  }
  return {
    yaml: ds.yamlPath,
    names: ds.names,
    total,
    splits,
    imageSizes,
    boxSizes: bw.length ? { width: summary(bw), height: summary(bh), relativeArea: summary(area) } : null,
  };
}
