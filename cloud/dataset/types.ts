import type { Box, YoloBox } from '../../contracts/box.js';

/** Box lives in contracts/box.ts (loupe's one box type); re-exported while other branches still import it from here. */
export type { Box };

export type SplitName = 'train' | 'val' | 'test';

export const SPLITS: readonly SplitName[] = ['train', 'val', 'test'];

/** One image and its boxes, as every importer and exporter exchanges them. */
export interface LabelledImage {
  /** Stable image id (a relative path such as `bad/x.jpg`); the split is derived from it. */
  id: string;
  /** Absolute path of the image file. */
  imagePath: string;
  width: number;
  height: number;
  boxes: Box[];
}

export interface YoloSplitItem {
  imagePath: string;
  labelPath: string;
  /** Boxes as written in the label file: class and normalised centre/size. */
  labels: YoloBox[];
}

export interface YoloDataset {
  /** The data.yaml that describes it. */
  yamlPath: string;
  root: string;
  names: string[];
  splits: Partial<Record<SplitName, YoloSplitItem[]>>;
}

/** What an importer found besides the images it kept: everything it left out or fixed, counted. */
export interface ImportReport {
  format: string;
  /** The file or folder imported. */
  source: string;
  /** Label records read (CSV rows, manifest lines, XML files, COCO images). */
  records: number;
  images: number;
  boxes: number;
  /** Ids of images present on disk without any label record; left out of the data set. */
  unlabelled: string[];
  /** Pascal VOC `<difficult>1` objects skipped (ultralytics' VOC converter skips them too). */
  skippedDifficult: number;
  /** COCO `iscrowd` annotations skipped (as ultralytics' COCO converter does). */
  skippedCrowd: number;
  /** Label records replaced by a later one for the same image (feature store: latest APPROVED wins). */
  superseded: number;
  /** Label records not usable as labels (not APPROVED, or a failed Ground Truth task); left out. */
  rejected: number;
  /** Boxes that overhung the image by at most the tolerance and were clipped to it. */
  clipped: number;
  /** Exact duplicate boxes dropped (same class and label line), as ultralytics' label check drops them. */
  duplicates: number;
}

/** An imported data set: class names, labelled images, and the import's report. */
export interface ImportedDataset {
  names: string[];
  images: LabelledImage[];
  report: ImportReport;
}

export function emptyReport(format: string, source: string): ImportReport {
  return {
    format,
    source,
    records: 0,
    images: 0,
    boxes: 0,
    unlabelled: [],
    skippedDifficult: 0,
    skippedCrowd: 0,
    superseded: 0,
    rejected: 0,
    clipped: 0,
    duplicates: 0,
  };
}
