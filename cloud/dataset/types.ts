/** One box in original-image pixels. `cls` indexes the data set's `names`. */
export interface Box {
  cls: number;
  x1: number;
  y1: number;
  x2: number;
  y2: number;
}

export type SplitName = 'train' | 'val' | 'test';

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
  labels: { cls: number; cx: number; cy: number; w: number; h: number }[];
}

export interface YoloDataset {
  /** The data.yaml that describes it. */
  yamlPath: string;
  root: string;
  names: string[];
  splits: Partial<Record<SplitName, YoloSplitItem[]>>;
}
