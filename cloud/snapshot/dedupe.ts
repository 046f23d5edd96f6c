/**
 * One record per image content. Devices photograph parts the reference already holds (the demo's
 * folder camera uploads the reference JPEGs byte for byte), so the same image can arrive under
 * several source_refs; the split rule hashes the id, so copies would land in different splits
 * and a test image could also be a training image. Exact copies (same sha256 of the bytes) are
 * grouped and one of each group is kept: the one first seen by the label store (the earliest
 * event_time of its first record), then the lower source_ref. First-seen, not the time of the
 * latest record, so relabelling the kept image later does not hand its place (and possibly its
 * split) to a copy.
 */
export interface ContentItem<R extends { source_ref: string }> {
  record: R;
  sha256: string;
}

export interface ContentDuplicate<R extends { source_ref: string }> {
  item: ContentItem<R>;
  keeper: ContentItem<R>;
}

export interface Deduped<R extends { source_ref: string }> {
  kept: ContentItem<R>[];
  duplicates: ContentDuplicate<R>[];
}

/**
 * `firstSeen(ref)` is asked only for refs that share their content with another one.
 * Kept items come back in input order; duplicates sorted by source_ref.
 */
export async function dedupeByContent<R extends { source_ref: string }>(
  items: readonly ContentItem<R>[],
  firstSeen: (sourceRef: string) => Promise<number>,
): Promise<Deduped<R>> {
  const groups = new Map<string, ContentItem<R>[]>();
  for (const it of items) groups.set(it.sha256, [...(groups.get(it.sha256) ?? []), it]);
  const left = new Set<ContentItem<R>>();
  const duplicates: ContentDuplicate<R>[] = [];
  for (const group of groups.values()) {
    if (group.length < 2) continue;
    const seen = new Map<ContentItem<R>, number>();
    for (const it of group) seen.set(it, await firstSeen(it.record.source_ref));
    const [keeper, ...rest] = [...group].sort((a, b) => seen.get(a)! - seen.get(b)! || cmp(a.record.source_ref, b.record.source_ref));
    for (const it of rest) {
      left.add(it);
      duplicates.push({ item: it, keeper: keeper! });
    }
  }
  duplicates.sort((a, b) => cmp(a.item.record.source_ref, b.item.record.source_ref));
  return { kept: items.filter((it) => !left.has(it)), duplicates };
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
