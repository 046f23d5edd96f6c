import { invalidArguments, notFound } from '../ipc/errors.js';
import type { IpcServer } from '../ipc/server.js';
import type { ConfigStore } from './store.js';

/**
 * Configuration IPC (the real ConfigStoreIPCEventStreamAgent): GetConfiguration of any
 * component (a leaf comes back wrapped as {lastKey: value}; a missing key is
 * ResourceNotFoundError "Key not found"), UpdateConfiguration of one's own configuration with a
 * timestamp, and SubscribeToConfigurationUpdate events {configurationUpdateEvent:
 * {componentName, keyPath}} for every changed leaf at or under the subscribed key path.
 */
function keyPathOf(v: unknown, field = 'keyPath'): string[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v) || v.some((k) => typeof k !== 'string')) throw invalidArguments(`${field} must be a list of strings`);
  return v as string[];
}

export function registerConfigIpc(server: IpcServer, config: ConfigStore): void {
  server.register('GetConfiguration', (req, ctx) => {
    const componentName = typeof req.componentName === 'string' && req.componentName ? req.componentName : ctx.principal;
    const keyPath = keyPathOf(req.keyPath);
    if (!config.has(componentName)) throw notFound('Key not found');
    const r = config.lookup(componentName, keyPath);
    if (!r.found) throw notFound('Key not found');
    const isMap = r.value !== null && typeof r.value === 'object' && !Array.isArray(r.value);
    const value = isMap ? r.value : { [keyPath[keyPath.length - 1]!]: r.value };
    return { componentName, value };
  });

  server.register('UpdateConfiguration', (req, ctx) => {
    const keyPath = keyPathOf(req.keyPath);
    const ts = req.timestamp;
    if (typeof ts !== 'number' || !Number.isFinite(ts)) throw invalidArguments('timestamp is required (epoch seconds)');
    if (req.valueToMerge === undefined) throw invalidArguments('valueToMerge is required');
    config.update(ctx.principal, keyPath, req.valueToMerge, Math.round(ts * 1000));
    return {};
  });

  server.register('SubscribeToConfigurationUpdate', (req, ctx) => {
    const componentName = typeof req.componentName === 'string' && req.componentName ? req.componentName : ctx.principal;
    const keyPath = keyPathOf(req.keyPath);
    const listener = (component: string, changed: string[]) => {
      if (component !== componentName) return;
      const under = keyPath.every((k, i) => changed[i] === k);
      const above = changed.every((k, i) => keyPath[i] === k); // a parent of the subscribed key was replaced
      if (!under && !above) return;
      ctx.emit({ configurationUpdateEvent: { componentName, keyPath: changed } });
    };
    config.on('change', listener);
    ctx.onClose(() => config.off('change', listener));
    return {};
  });
}
