import { sha256 } from '../../lib/fsutil.js';
import type { LabelledImage } from './types.js';
import { yoloLabelFields } from '../../contracts/box.js';

export function yoloLabelText(img: LabelledImage): string {
  return img.boxes.map((b) => yoloLabelFields(b, img.width, img.height).join(' ') + '\n').join('');
}

/**
 * The data set version id: sha256 over the class names and the records sorted by id, each with
 * its boxes as the YOLO label lines they become (sorted). Anything that changes what training
 * sees changes the id; re-importing the same labels (from any format) gives the same id.
 */
export function datasetVersion(names: readonly string[], images: readonly LabelledImage[]): string {
  const records = images
    .map((img) => [img.id, img.boxes.map((b) => yoloLabelFields(b, img.width, img.height).join(' ')).sort()] as const)
    .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  return sha256(JSON.stringify({ names, records }));
}
