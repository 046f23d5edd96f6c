import type { ErrorCode } from '../../lib/error-codes.js';
import { LoupeError } from '../../lib/errors.js';
import type { Box } from '../../contracts/box.js';
import { yoloLabelFields } from '../../contracts/box.js';

/** Boxes may overhang the image by this many pixels (annotation tools round outwards); they are clipped. */
export const BOX_TOLERANCE_PX = 1;

/** Where a label came from, for error messages: the file and the record inside it. */
export interface LabelSource {
  file: string;
  /** e.g. `row 5 (bad/x.jpg)`, `object 2`, `annotation id 17`. */
  record: string;
}

export function labelError(code: ErrorCode, src: LabelSource, why: string): LoupeError {
  return new LoupeError(code, `${src.record}: ${why}`, { input: src.file });
}

const fmt = (v: number) => (Number.isInteger(v) ? String(v) : v.toFixed(2));

/**
 * Validate one box against its image and return it clipped: refuses non-numbers, zero or
 * negative area and boxes overhanging the image by more than BOX_TOLERANCE_PX; clips the rest.
 * `onClip` counts the boxes that were clipped.
 */
export function checkBox(box: Box, size: { width: number; height: number }, src: LabelSource, onClip?: () => void): Box {
  const { x1, y1, x2, y2 } = box;
  const shown = `[${[x1, y1, x2, y2].map(fmt).join(', ')}] (x1, y1, x2, y2)`;
  if (![x1, y1, x2, y2].every(Number.isFinite))
    throw labelError('LABEL_BAD_BOX', src, `box ${shown} has a coordinate that is not a number`);
  if (x2 - x1 <= 0 || y2 - y1 <= 0) throw labelError('LABEL_ZERO_AREA', src, `box ${shown} has zero or negative area`);
  const t = BOX_TOLERANCE_PX;
  if (x1 < -t || y1 < -t || x2 > size.width + t || y2 > size.height + t) {
    throw labelError('LABEL_OUTSIDE_IMAGE', src, `box ${shown} lies outside the ${size.width}x${size.height} image by more than ${t} px`);
  }
  const c = {
    cls: box.cls,
    x1: Math.max(0, x1),
    y1: Math.max(0, y1),
    x2: Math.min(size.width, x2),
    y2: Math.min(size.height, y2),
  };
  if (c.x2 - c.x1 <= 0 || c.y2 - c.y1 <= 0)
    throw labelError('LABEL_ZERO_AREA', src, `box ${shown} has zero area inside the ${size.width}x${size.height} image`);
  if (c.x1 !== x1 || c.y1 !== y1 || c.x2 !== x2 || c.y2 !== y2) onClip?.();
  return c;
}

/** Refuse a class index outside `names`. */
export function checkClass(cls: number, names: readonly string[], src: LabelSource, shown: string = String(cls)): number {
  if (!Number.isInteger(cls) || cls < 0 || cls >= names.length) {
    throw labelError(
      'LABEL_UNKNOWN_CLASS',
      src,
      `unknown class ${shown} (known: ${names.map((n, i) => `${i}=${n}`).join(', ') || 'none'})`,
    );
  }
  return cls;
}

/**
 * Drop exact duplicate boxes of one image: ultralytics' label check removes rows that are equal
 * after parsing the label file, so training and `val` never see them; the evaluator and the
 * instance counts must not either. Equality is on the written label line (class + 6 decimals).
 */
export function dropDuplicateBoxes(boxes: Box[], size: { width: number; height: number }, onDuplicate?: () => void): Box[] {
  const seen = new Set<string>();
  return boxes.filter((b) => {
    const key = yoloLabelFields(b, size.width, size.height).join(' ');
    if (seen.has(key)) {
      onDuplicate?.();
      return false;
    }
    seen.add(key);
    return true;
  });
}
