/** MQTT-style topic filters, as both local pub/sub and the IoT Core bridge use them. */
export function isWildcardFilter(filter: string): boolean {
  // Only whole levels are wildcards ("a+b" is a plain topic), as in the real SubscriptionTrie.
  const levels = filter.split('/');
  return levels.some((l, i) => l === '+' || (l === '#' && i === levels.length - 1));
}

/** Does `topic` match `filter` (`+` one level, a trailing `#` any number, including none)? */
export function topicMatches(filter: string, topic: string): boolean {
  if (filter === topic) return true;
  const f = filter.split('/');
  const t = topic.split('/');
  for (let i = 0; i < f.length; i++) {
    const part = f[i]!;
    if (part === '#') return i === f.length - 1;
    if (i >= t.length) return false;
    if (part !== '+' && part !== t[i]) return false;
  }
  return f.length === t.length;
}

/**
 * Subscribers by filter: exact filters in a map (the common case is one lookup), wildcard
 * filters in a list checked per publish.
 */
export class SubscriptionIndex<T> {
  private readonly exact = new Map<string, Set<T>>();
  private readonly wild = new Map<string, Set<T>>();

  add(filter: string, sub: T): void {
    const map = isWildcardFilter(filter) ? this.wild : this.exact;
    let set = map.get(filter);
    if (!set) map.set(filter, (set = new Set()));
    set.add(sub);
  }

  remove(filter: string, sub: T): boolean {
    const map = isWildcardFilter(filter) ? this.wild : this.exact;
    const set = map.get(filter);
    if (!set) return false;
    const had = set.delete(sub);
    if (set.size === 0) map.delete(filter);
    return had;
  }

  count(filter: string): number {
    return (isWildcardFilter(filter) ? this.wild : this.exact).get(filter)?.size ?? 0;
  }

  /** Every subscriber whose filter matches `topic` (each once). */
  match(topic: string): Set<T> {
    const out = new Set<T>(this.exact.get(topic));
    for (const [filter, subs] of this.wild) if (topicMatches(filter, topic)) for (const s of subs) out.add(s);
    return out;
  }

  /** [filter, subscribers] pairs whose filter matches `topic`. */
  matchFilters(topic: string): [string, Set<T>][] {
    const out: [string, Set<T>][] = [];
    const e = this.exact.get(topic);
    if (e) out.push([topic, e]);
    for (const [filter, subs] of this.wild) if (topicMatches(filter, topic)) out.push([filter, subs]);
    return out;
  }
}
