/**
 * loupe's one box type, and its explicit conversions to and from the encodings that cross a
 * boundary. Inside loupe a box is always `Box`: corner coordinates (ultralytics' xyxy) in
 * original-image pixels with a class index. Outside it is one of:
 *
 *   Detection  [x1, y1, x2, y2] tuple + conf + name    the detector and the IPC / sidecar messages (contracts/topics.ts)
 *   GtBox      class_id, left, top, width, height      Ground Truth, the feature store and labels.csv (pixels, top-left origin)
 *   YoloBox    cls, cx, cy, w, h                       YOLO label files (centre and size normalised to the image)
 *   COCO bbox  [x, y, width, height]                   COCO instances JSON (pixels, top-left origin)
 *   LsRect     x, y, width, height                     Label Studio rectanglelabels (percent of the image, 0..100, top-left origin)
 *
 * Conversions are exact (no rounding) unless they say otherwise; the two that round
 * (`boxToGt`, `yoloLabelFields`) do it the way the files they feed are written.
 */
import type { Detection } from './topics.js';

/** One box in original-image pixels, corners (x1, y1) top-left and (x2, y2) bottom-right. `cls` indexes the class names. */
export interface Box {
  cls: number;
  x1: number;
  y1: number;
  x2: number;
  y2: number;
}

/** One box as Ground Truth and the reference's labels.csv write it: pixels, top-left origin. */
export interface GtBox {
  class_id: number;
  left: number;
  top: number;
  width: number;
  height: number;
  /** Detector score (pre-annotations) or consolidation confidence; absent for plain human labels. */
  confidence?: number;
}

/** One YOLO label line's values: class, centre and size normalised to the image (0..1). */
export interface YoloBox {
  cls: number;
  cx: number;
  cy: number;
  w: number;
  h: number;
}

/** Ground Truth box (left/top/width/height) → corner box. */
export function gtToBox(b: GtBox): Box {
  return { cls: b.class_id, x1: b.left, y1: b.top, x2: b.left + b.width, y2: b.top + b.height };
}

/** Corner box → Ground Truth box, rounded to 0.1 px as loupe records labels; `confidence` clamped to 0..1 and rounded to 0.001. */
export function boxToGt(b: Box, confidence?: number): GtBox {
  const r = (v: number) => Math.round(v * 10) / 10;
  const out: GtBox = { class_id: b.cls, left: r(b.x1), top: r(b.y1), width: r(b.x2 - b.x1), height: r(b.y2 - b.y1) };
  if (confidence !== undefined) out.confidence = Math.round(Math.max(0, Math.min(1, confidence)) * 1000) / 1000;
  return out;
}

/** YOLO normalised centre/size → corner box in pixels of a `width` x `height` image. */
export function yoloToBox(b: YoloBox, width: number, height: number): Box {
  return {
    cls: b.cls,
    x1: (b.cx - b.w / 2) * width,
    y1: (b.cy - b.h / 2) * height,
    x2: (b.cx + b.w / 2) * width,
    y2: (b.cy + b.h / 2) * height,
  };
}

/** Corner box → YOLO normalised centre/size for a `width` x `height` image (unrounded). */
export function boxToYolo(b: Box, width: number, height: number): YoloBox {
  return { cls: b.cls, cx: (b.x1 + b.x2) / 2 / width, cy: (b.y1 + b.y2) / 2 / height, w: (b.x2 - b.x1) / width, h: (b.y2 - b.y1) / height };
}

/** A YOLO label line's fields: class, then centre/size with 6 decimals (as ultralytics' converters write them). */
export function yoloLabelFields(b: Box, width: number, height: number): [number, string, string, string, string] {
  const y = boxToYolo(b, width, height);
  return [y.cls, y.cx.toFixed(6), y.cy.toFixed(6), y.w.toFixed(6), y.h.toFixed(6)];
}

/** COCO `bbox` [x, y, width, height] → corner box. */
export function cocoToBox(bbox: readonly [number, number, number, number], cls: number): Box {
  const [x, y, w, h] = bbox;
  return { cls, x1: x, y1: y, x2: x + w, y2: y + h };
}

/** Corner box → COCO `bbox` [x, y, width, height]. */
export function boxToCoco(b: Box): [number, number, number, number] {
  return [b.x1, b.y1, b.x2 - b.x1, b.y2 - b.y1];
}

/** A detection (detector output, IPC and sidecar messages) → corner box. */
export function detectionToBox(d: Pick<Detection, 'xyxy' | 'cls'>): Box {
  return { cls: d.cls, x1: d.xyxy[0], y1: d.xyxy[1], x2: d.xyxy[2], y2: d.xyxy[3] };
}

/** Intersection over union of two corner boxes (0 when either has no area). */
export function iou(a: Box, b: Box): number {
  const iw = Math.min(a.x2, b.x2) - Math.max(a.x1, b.x1);
  const ih = Math.min(a.y2, b.y2) - Math.max(a.y1, b.y1);
  if (iw <= 0 || ih <= 0) return 0;
  const inter = iw * ih;
  const union = (a.x2 - a.x1) * (a.y2 - a.y1) + (b.x2 - b.x1) * (b.y2 - b.y1) - inter;
  return union > 0 ? inter / union : 0;
}

/** Clip a box into the image; returns null when nothing of it is left. */
export function clipBox(b: Box, width: number, height: number): Box | null {
  const c = {
    cls: b.cls,
    x1: Math.max(0, Math.min(width, b.x1)),
    y1: Math.max(0, Math.min(height, b.y1)),
    x2: Math.max(0, Math.min(width, b.x2)),
    y2: Math.max(0, Math.min(height, b.y2)),
  };
  return c.x2 - c.x1 > 0 && c.y2 - c.y1 > 0 ? c : null;
}

/** A Label Studio `rectanglelabels` value's geometry: top-left corner and size in percent (0..100) of the original image. */
export interface LsRect {
  x: number;
  y: number;
  width: number;
  height: number;
}

/** Label Studio rectangle (percent) → corner box in pixels of a `width` x `height` image. */
export function labelStudioToBox(r: LsRect, cls: number, width: number, height: number): Box {
  return {
    cls,
    x1: (r.x / 100) * width,
    y1: (r.y / 100) * height,
    x2: ((r.x + r.width) / 100) * width,
    y2: ((r.y + r.height) / 100) * height,
  };
}

/** Corner box → Label Studio rectangle in percent of a `width` x `height` image (unrounded, as Label Studio writes them). */
export function boxToLabelStudio(b: Box, width: number, height: number): LsRect {
  return {
    x: (b.x1 / width) * 100,
    y: (b.y1 / height) * 100,
    width: ((b.x2 - b.x1) / width) * 100,
    height: ((b.y2 - b.y1) / height) * 100,
  };
}
