import { EventEmitter } from 'node:events';
import { IpcError } from '../ipc/errors.js';
import { changedPaths, deepMerge, deletePath, formatPointer, getPath, isPlainObject, leafPaths, parsePointer, setPath } from './pointer.js';

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
    if (modtimes) this.modtimes.set(component, new Map(Object.entries(modtimes)));
    else {
      const times = this.modtimes.get(component) ?? new Map<string, number>();
      this.modtimes.set(component, times);
      const now = Date.now();
      for (const p of changed) times.set(formatPointer(p), now);
    }
    if (old) for (const p of changed) this.emit('change', component, p);
  }

  remove(component: string): void {
    this.trees.delete(component);
    this.modtimes.delete(component);
  }

  /**
   * UpdateConfiguration: merge `valueToMerge` at `keyPath` (an empty path is the root). When the
   * key path names a leaf, valueToMerge is `{<leaf name>: value}` and is merged into its parent.
   * `timestampMs` is the caller's proposed modification time.
   */
  update(component: string, keyPath: readonly string[], valueToMerge: unknown, timestampMs: number): void {
    const tree = this.trees.get(component);
    if (!tree) throw new IpcError('ResourceNotFoundError', `Configuration of ${component} not found`);
    if (!isPlainObject(valueToMerge)) throw new IpcError('InvalidArgumentsError', 'valueToMerge must be a JSON object');
    let base = [...keyPath];
    const at = getPath(tree, base);
    if (at.found && !isPlainObject(at.value) && base.length > 0) base = base.slice(0, -1);
    const times = this.modtimes.get(component)!;
    const writes = leafPaths(valueToMerge).map((p) => [...base, ...p]);
    for (const w of writes) {
      const mt = times.get(formatPointer(w));
      if (mt !== undefined && timestampMs < mt) {
        throw new IpcError('FailedUpdateConditionCheckError', "Proposed timestamp is older than the config's latest modified timestamp");
      }
    }
    const patch: Record<string, unknown> = {};
    let cursor = patch;
    base.forEach((k, i) => {
      if (i === base.length - 1) return;
      cursor[k] = {};
      cursor = cursor[k] as Record<string, unknown>;
    });
    if (base.length === 0) Object.assign(patch, valueToMerge);
    else cursor[base[base.length - 1]!] = valueToMerge;
    const next = deepMerge(tree, patch) as Record<string, unknown>;
    const changed = changedPaths(tree, next);
    this.trees.set(component, next);
    for (const w of writes) times.set(formatPointer(w), timestampMs);
    for (const p of changed) this.emit('change', component, p);
  }

  /** Everything, for persistence. */
  snapshot(): Record<string, Record<string, unknown>> {
    return Object.fromEntries([...this.trees].map(([k, v]) => [k, structuredClone(v)]));
  }
}

/** Modification time Greengrass gives values that come from a recipe's DefaultConfiguration. */
export const DEFAULT_MODTIME = 1;

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
