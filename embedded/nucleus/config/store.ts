import { EventEmitter } from 'node:events';
import { IpcError } from '../ipc/errors.js';
import {
  changedPaths,
  deletePath,
  formatPointer,
  getPath,
  hasOwn,
  isPlainObject,
  leafPaths,
  parsePointer,
  setOwn,
  setPath,
} from './pointer.js';

/**
 * Each component's configuration tree (what recipes call DefaultConfiguration after deployment
 * merges/resets, plus what components write over IPC), with a modification time per leaf so that
 * UpdateConfiguration can refuse stale writes the way the real config store does
 * (FailedUpdateConditionCheckError when the proposed timestamp is older than the value's).
 *
 * Emits 'change' (component, keyPath[]) once per changed leaf; IPC subscriptions and the
 * authorization table listen to it.
 */
export class ConfigStore extends EventEmitter {
  private readonly trees = new Map<string, Record<string, unknown>>();
  private readonly modtimes = new Map<string, Map<string, number>>();

  constructor() {
    super();
    this.setMaxListeners(0);
  }

  /** Per-leaf modification times (JSON pointer -> ms), for persistence and rollback. */
  times(component: string): Record<string, number> {
    return Object.fromEntries(this.modtimes.get(component) ?? []);
  }

  has(component: string): boolean {
    return this.trees.has(component);
  }

  components(): string[] {
    return [...this.trees.keys()];
  }

  /** A deep copy of a component's whole configuration. */
  get(component: string): Record<string, unknown> | undefined {
    const t = this.trees.get(component);
    return t ? structuredClone(t) : undefined;
  }

  lookup(component: string, keyPath: readonly string[]): { found: boolean; value: unknown } {
    const t = this.trees.get(component);
    if (!t) return { found: false, value: undefined };
    const r = getPath(t, keyPath);
    return r.found ? { found: true, value: structuredClone(r.value) } : r;
  }

  /**
   * Replace a component's whole configuration (deployments, rollback, restore) and notify the
   * changed leaves. With `modtimes`, those become the leaves' times; otherwise changed leaves
   * get the current time.
   */
  replace(component: string, config: Record<string, unknown>, modtimes?: Record<string, number>): void {
    const old = this.trees.get(component);
    const next = structuredClone(config);
    this.trees.set(component, next);
    const changed = old ? changedPaths(old, next) : leafPaths(next);
    const now = Date.now();
    let times: Map<string, number>;
    if (modtimes) times = new Map(Object.entries(modtimes));
    else {
      times = this.modtimes.get(component) ?? new Map<string, number>();
      for (const p of changed) times.set(formatPointer(p), now);
    }
    // Maps have times too (UpdateConfiguration checks the key path's node, leaf or map).
    for (const p of mapPaths(next)) if (!times.has(formatPointer(p))) times.set(formatPointer(p), now);
    this.modtimes.set(component, times);
    if (old) for (const p of changed) this.emit('change', component, p);
  }

  remove(component: string): void {
    this.trees.delete(component);
    this.modtimes.delete(component);
  }

  /**
   * UpdateConfiguration, with the real nucleus's semantics (ConfigStoreIPCEventStreamAgent and
   * Topics.updateFromMap, checked against the real nucleus by test/nucleus-diff):
   *  - the proposed timestamp counts in whole seconds (the Java side reads epoch seconds as an
   *    integer);
   *  - `accessControl` cannot be written (InvalidArgumentsError), whatever the key path;
   *  - a key path that does not exist yet is created now and merged with the current time;
   *  - a key path naming a leaf merges {<leaf>: valueToMerge} into its parent, so the leaf
   *    becomes a map holding valueToMerge (the value nests);
   *  - a leaf takes a value only if the timestamp is not older than the leaf's own (an older
   *    write is dropped silently); new leaves and maps take the timestamp;
   *  - a write makes every map above it at least as new as the write;
   *  - after the merge, a timestamp older than the key path's node fails the call
   *    (FailedUpdateConditionCheckError), and what was merged stays merged, as in Greengrass.
   * Events: a created leaf is reported twice (created, then its value set), a changed or
   * removed leaf once, as the real nucleus reports them.
   */
  update(component: string, keyPath: readonly string[], valueToMerge: unknown, timestampMs: number): void {
    if (!isPlainObject(valueToMerge)) throw new IpcError('InvalidArgumentsError', 'ValueToMerge is required');
    if ((keyPath.length === 0 && Object.prototype.hasOwnProperty.call(valueToMerge, ACCESS_CONTROL)) || keyPath[0] === ACCESS_CONTROL) {
      throw new IpcError('InvalidArgumentsError', `Config update is not allowed for following fields [${ACCESS_CONTROL}]`);
    }
    const tree = this.trees.get(component);
    if (!tree) throw new IpcError('InvalidArgumentsError', `Component config not found for component ${component}`);
    const times = this.modtimes.get(component)!;
    const ts = Math.floor(timestampMs / 1000) * 1000;
    const events: string[][] = [];
    const now = Date.now();
    const at = getPath(tree, keyPath);
    let updateTime = ts;
    if (!at.found) {
      updateTime = now;
      this.ensureMap(tree, times, keyPath, now, events);
      this.mergeInto(tree, times, keyPath, valueToMerge, updateTime, events);
    } else if (!isPlainObject(at.value)) {
      this.mergeInto(tree, times, keyPath.slice(0, -1), { [keyPath[keyPath.length - 1]!]: valueToMerge }, updateTime, events);
    } else {
      this.mergeInto(tree, times, keyPath, valueToMerge, updateTime, events);
    }
    for (const e of events) this.emit('change', component, e);
    const nodeTime = times.get(formatPointer(keyPath)) ?? 0;
    if (updateTime < nodeTime)
      throw new IpcError('FailedUpdateConditionCheckError', "Proposed timestamp is older than the config's latest modified timestamp");
  }

  /** Make `path` a map (creating maps on the way), as Topics.lookupTopics does. */
  private ensureMap(
    tree: Record<string, unknown>,
    times: Map<string, number>,
    path: readonly string[],
    t: number,
    events: string[][],
  ): void {
    let cur = tree;
    for (let i = 0; i < path.length; i++) {
      const k = path[i]!;
      const p = path.slice(0, i + 1);
      const own = hasOwn(cur, k);
      if (!own || !isPlainObject(cur[k])) {
        if (own) this.removeNode(cur, times, p, events);
        setOwn(cur, k, {});
        this.created(times, p, t);
      }
      cur = cur[k] as Record<string, unknown>;
    }
  }

  /** A node was created at `path` with time `t`. */
  private created(times: Map<string, number>, path: readonly string[], t: number): void {
    times.set(formatPointer(path), t);
    this.touchAncestors(times, path, t);
  }

  /** A write at `path` with time `t` makes every map above it at least that new. */
  private touchAncestors(times: Map<string, number>, path: readonly string[], t: number): void {
    for (let i = path.length - 1; i >= 0; i--) {
      const key = formatPointer(path.slice(0, i));
      times.set(key, Math.max(times.get(key) ?? 0, t));
    }
  }

  /** Remove the node at `path` (a leaf or a map), one event per leaf it held. */
  private removeNode(parent: Record<string, unknown>, times: Map<string, number>, path: readonly string[], events: string[][]): void {
    const k = path[path.length - 1]!;
    for (const leaf of leafPaths(parent[k], [...path])) events.push(leaf);
    delete parent[k];
    const prefix = formatPointer(path);
    for (const key of [...times.keys()]) if (key === prefix || key.startsWith(prefix + '/')) times.delete(key);
  }

  private mergeInto(
    tree: Record<string, unknown>,
    times: Map<string, number>,
    path: readonly string[],
    value: Record<string, unknown>,
    t: number,
    events: string[][],
  ): void {
    const container = getPath(tree, path).value as Record<string, unknown>;
    for (const [k, v] of Object.entries(value)) {
      const p = [...path, k];
      const exists = hasOwn(container, k);
      if (isPlainObject(v)) {
        if (!exists || !isPlainObject(container[k])) {
          if (exists) this.removeNode(container, times, p, events);
          setOwn(container, k, {});
          this.created(times, p, t);
        }
        this.mergeInto(tree, times, p, v, t, events);
        continue;
      }
      if (exists && isPlainObject(container[k])) this.removeNode(container, times, p, events);
      if (!hasOwn(container, k)) {
        setOwn(container, k, structuredClone(v));
        this.created(times, p, t);
        events.push(p, p);
        continue;
      }
      const key = formatPointer(p);
      if (t < (times.get(key) ?? 0)) continue; // an older write never replaces a newer value
      times.set(key, t);
      this.touchAncestors(times, p, t);
      if (JSON.stringify(container[k]) === JSON.stringify(v)) continue;
      setOwn(container, k, structuredClone(v));
      events.push(p);
    }
  }

  /** Everything, for persistence. */
  snapshot(): Record<string, Record<string, unknown>> {
    return Object.fromEntries([...this.trees].map(([k, v]) => [k, structuredClone(v)]));
  }
}

function mapPaths(v: unknown, prefix: string[] = []): string[][] {
  if (!isPlainObject(v)) return [];
  return [prefix, ...Object.entries(v).flatMap(([k, c]) => mapPaths(c, [...prefix, k]))];
}

/** Modification time Greengrass gives values that come from a recipe's DefaultConfiguration. */
export const DEFAULT_MODTIME = 1;

/**
 * Largest configuration one component may hold, as JSON. GetConfiguration answers it whole in one
 * IPC message (24 MiB at most), so deployments and UpdateConfiguration keep well under that.
 */
export const DEFAULT_MAX_CONFIGURATION_BYTES = 8 * 1024 * 1024;

/** The configuration key components may not write over IPC (their own permissions). */
export const ACCESS_CONTROL = 'accessControl';

/**
 * The configuration a deployment gives a component, as the real KernelConfigResolver computes
 * it: start from the running configuration, remove the keys named by `reset` (JSON pointers;
 * "" is the whole document), merge the recipe defaults *with timestamp 1* so they replace only
 * values that themselves came from defaults, then merge the deployment's `merge` with the
 * deployment's timestamp.
 */
export function resolveDeploymentConfig(
  current: { config: Record<string, unknown>; times: Record<string, number> } | undefined,
  defaults: Record<string, unknown>,
  update: { merge?: Record<string, unknown>; reset?: string[] } | undefined,
  timestampMs: number,
): { config: Record<string, unknown>; times: Record<string, number> } {
  let tree: Record<string, unknown> = structuredClone(current?.config ?? {});
  let times: Record<string, number> = { ...(current?.times ?? {}) };
  for (const pointer of update?.reset ?? []) {
    if (pointer === '') {
      tree = {};
      times = {};
      continue;
    }
    const path = parsePointer(pointer);
    deletePath(tree, path);
    const prefix = formatPointer(path);
    for (const k of Object.keys(times)) if (k === prefix || k.startsWith(prefix + '/')) delete times[k];
  }
  const mergeAt = (value: unknown, ts: number, onlyIfNotNewer: boolean) => {
    for (const p of leafPaths(value)) {
      if (p.length === 0) continue;
      const v = getPath(value, p).value;
      const key = formatPointer(p);
      const existing = getPath(tree, p);
      if (isPlainObject(v) && Object.keys(v).length === 0 && existing.found && isPlainObject(existing.value)) continue;
      if (onlyIfNotNewer && times[key] !== undefined && times[key]! > ts) continue;
      if (onlyIfNotNewer && times[key] === undefined && existing.found) continue;
      setPath(tree, p, structuredClone(v));
      times[key] = ts;
    }
  };
  mergeAt(defaults, DEFAULT_MODTIME, true);
  if (update?.merge) mergeAt(update.merge, timestampMs, false);
  return { config: tree, times };
}
