/**
 * Items taken in order (k = 0, 1, 2, ...), each started `ahead` items before it is taken: with a
 * detector, the next images decode while the current ones run, one per session, and results
 * still come out in input order. `start` may return undefined for an item it skips.
 */
export function readAhead<T>(ahead: number, start: (k: number) => T): (k: number) => T {
  const started: T[] = [];
  let next = 0;
  return (k) => {
    while (next <= k + ahead) started.push(start(next++));
    return started.shift() as T;
  };
}
