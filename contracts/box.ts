import type { Box } from '../cloud/dataset/types.js';
import type { GtBox } from '../cloud/labelstore/types.js';

/** Ground Truth box (left/top/width/height) → corner box, and back (rounded to 0.1 px). */
export function gtToBox(b: GtBox): Box {
  return { cls: b.class_id, x1: b.left, y1: b.top, x2: b.left + b.width, y2: b.top + b.height };
}

export function boxToGt(b: Box, confidence?: number): GtBox {
  const r = (v: number) => Math.round(v * 10) / 10;
  const out: GtBox = { class_id: b.cls, left: r(b.x1), top: r(b.y1), width: r(b.x2 - b.x1), height: r(b.y2 - b.y1) };
  if (confidence !== undefined) out.confidence = Math.round(confidence * 1000) / 1000;
  return out;
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
  const c = { cls: b.cls, x1: Math.max(0, Math.min(width, b.x1)), y1: Math.max(0, Math.min(height, b.y1)), x2: Math.max(0, Math.min(width, b.x2)), y2: Math.max(0, Math.min(height, b.y2)) };
  return c.x2 - c.x1 > 0 && c.y2 - c.y1 > 0 ? c : null;
}
