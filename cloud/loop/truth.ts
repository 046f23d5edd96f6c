import type { GtBox } from '../../contracts/box.js';
import type { TruthSource } from '../labeling/workforce.js';
import { truthFromStore } from '../labeling/workforce.js';
import { readLabelsCsv } from '../../contracts/labels-csv.js';
import { sha256 } from '../../lib/fsutil.js';
import type { ImageSource } from '../labeling/images.js';
import type { SqliteLabelStore } from '../labelstore/index.js';

/**
 * Ground truth for the simulated workforce when devices photograph parts the reference
 * labelled (the demo's folder camera over metal-tags): an upload's truth is the reference label
 * of the photo with the same bytes. The reference is the whole history file, also the records
 * after `history.until` that the label store was not given: those are exactly the parts that
 * come back as new uploads. The uploader keeps a JPEG that fits its limits byte for byte, so
 * content identity is exact; uploads of unknown photos have no truth and are released to people
 * (the workforce's rule). The upload sidecar does not carry the camera's source file name, so
 * the name-based `truthFromStore` is only the fallback.
 */
export async function truthByContent(labels: SqliteLabelStore, images: ImageSource, labelsCsv: string | undefined): Promise<TruthSource> {
  const byName = await truthFromStore(labels, { refPrefix: 's3://${bucket}/' });
  const csv = labelsCsv;
  const reference = csv ? readLabelsCsv(csv) : await labels.latest({ status: 'APPROVED' });
  // Latest approved record per image.
  const latest = new Map<string, (typeof reference)[number]>();
  for (const r of reference) {
    if (r.status !== 'APPROVED' || !r.source_ref.startsWith('s3://${bucket}/')) continue;
    const seen = latest.get(r.source_ref);
    if (!seen || seen.event_time <= r.event_time) latest.set(r.source_ref, r);
  }
  const byDigest = new Map<string, GtBox[]>();
  for (const r of latest.values()) {
    if (!images.mappedPath(r.source_ref)) continue;
    try {
      byDigest.set(
        sha256(await images.read(r.source_ref)),
        r.annotations.map(({ confidence: _c, ...b }) => b),
      );
    } catch {
      // a reference record whose image is not on disk cannot be matched by content
    }
  }
  return async (task) => {
    try {
      const t = byDigest.get(sha256(await images.read(task.sourceRef)));
      if (t) return t;
    } catch {
      // unreadable upload: fall through to the name rule
    }
    return byName(task);
  };
}
