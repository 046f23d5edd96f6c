import { boxToGt, clipBox, detectionToBox, type GtBox } from '../../contracts/box.js';
import type { UploadSidecar } from '../../contracts/upload.js';

/**
 * The device's detections (corner boxes in the uploaded image's pixels) → Ground Truth boxes
 * clipped to the image, 0.1 px and 0.001 confidence; boxes with nothing left inside are dropped.
 * (The sidecar itself is contracts/upload.ts.)
 */
export function detectionsToGt(dets: UploadSidecar['detections'], width: number, height: number): GtBox[] {
  const out: GtBox[] = [];
  for (const d of dets) {
    const b = clipBox(detectionToBox(d), width, height);
    if (b) out.push(boxToGt(b, d.conf));
  }
  return out;
}
