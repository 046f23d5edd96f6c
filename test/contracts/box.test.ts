import { describe, expect, it } from 'vitest';
import {
  boxToCoco,
  boxToGt,
  boxToYolo,
  clipBox,
  cocoToBox,
  detectionToBox,
  gtToBox,
  iou,
  yoloLabelFields,
  yoloToBox,
  type Box,
} from '../../contracts/box.js';

/** Hand-worked: a 450x300 image with a box from (81, 123) to (163, 220). */
const box: Box = { cls: 0, x1: 81, y1: 123, x2: 163, y2: 220 };

describe('contracts/box: one box type, explicit conversions', () => {
  it('Ground Truth left/top/width/height ↔ corners', () => {
    expect(gtToBox({ class_id: 0, left: 81, top: 123, width: 82, height: 97 })).toEqual(box);
    expect(boxToGt(box)).toEqual({ class_id: 0, left: 81, top: 123, width: 82, height: 97 });
    // rounds to 0.1 px and the confidence to 0.001 (clamped to 0..1), as label records are kept
    expect(boxToGt({ cls: 2, x1: 10.04, y1: 20.06, x2: 110.44, y2: 80 }, 0.91234)).toEqual({
      class_id: 2,
      left: 10,
      top: 20.1,
      width: 100.4,
      height: 59.9,
      confidence: 0.912,
    });
    expect(boxToGt(box, 1.2).confidence).toBe(1);
  });

  it('YOLO normalised centre/size ↔ corners', () => {
    const y = boxToYolo(box, 450, 300);
    expect(y).toEqual({ cls: 0, cx: 122 / 450, cy: 171.5 / 300, w: 82 / 450, h: 97 / 300 });
    const back = yoloToBox(y, 450, 300);
    for (const k of ['x1', 'y1', 'x2', 'y2'] as const) expect(back[k]).toBeCloseTo(box[k], 9);
    expect(yoloLabelFields(box, 450, 300)).toEqual([0, '0.271111', '0.571667', '0.182222', '0.323333']);
  });

  it('COCO [x, y, width, height] ↔ corners', () => {
    expect(boxToCoco(box)).toEqual([81, 123, 82, 97]);
    expect(cocoToBox([81, 123, 82, 97], 0)).toEqual(box);
  });

  it('a detection (xyxy tuple) → corners; clipping and IoU work on corners', () => {
    expect(detectionToBox({ xyxy: [81, 123, 163, 220], cls: 0 })).toEqual(box);
    expect(clipBox({ cls: 0, x1: 440, y1: 290, x2: 460, y2: 310 }, 450, 300)).toEqual({ cls: 0, x1: 440, y1: 290, x2: 450, y2: 300 });
    expect(clipBox({ cls: 0, x1: 460, y1: 10, x2: 470, y2: 20 }, 450, 300)).toBeNull();
    expect(iou(box, box)).toBe(1);
    expect(iou(box, { ...box, x1: 122 })).toBeCloseTo(41 / 82, 12);
    expect(iou(box, { cls: 0, x1: 0, y1: 0, x2: 10, y2: 10 })).toBe(0);
  });
});
