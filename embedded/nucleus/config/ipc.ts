import { invalidArguments, notFound } from '../ipc/errors.js';
import type { IpcServer, OperationContext } from '../ipc/server.js';
import type { ConfigStore } from './store.js';

/**
 * Configuration IPC (the real ConfigStoreIPCEventStreamAgent): GetConfiguration of any
 * component (a leaf comes back wrapped as {lastKey: value}; a missing key is
 * ResourceNotFoundError "Key not found"), UpdateConfiguration of one's own configuration with a
 * timestamp (refused for `accessControl`: a component cannot grant itself permissions), and
 * SubscribeToConfigurationUpdate events {configurationUpdateEvent: {componentName, keyPath}} for
 * every changed leaf at or under the subscribed key path (a missing component or key is
 * ResourceNotFoundError "Key not found", as on the real nucleus).
 */
function keyPathOf(v: unknown, field = 'keyPath'): string[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v) || v.some((k) => typeof k !== 'string')) throw invalidArguments(`${field} must be a list of strings`);
  return v as string[];
}

export function registerConfigIpc(server: IpcServer, config: ConfigStore, maxBytes: number): void {
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
    if (typeof ts !== 'number' || !Number.isFinite(ts)) throw invalidArguments('Timestamp is required');
    if (req.valueToMerge === undefined || req.valueToMerge === null) throw invalidArguments('ValueToMerge is required');
    const size = Buffer.byteLength(JSON.stringify(config.get(ctx.principal) ?? {})) + Buffer.byteLength(JSON.stringify(req.valueToMerge));
    if (size > maxBytes) throw invalidArguments(`The configuration of ${ctx.principal} would grow past ${maxBytes} bytes`);
    config.update(ctx.principal, keyPath, req.valueToMerge, Math.round(ts * 1000));
    return {};
  });

  server.register('SubscribeToConfigurationUpdate', (req, ctx) => {
    const componentName = typeof req.componentName === 'string' && req.componentName ? req.componentName : ctx.principal;
    const keyPath = keyPathOf(req.keyPath);
    // As the real nucleus: a component or key that does not exist cannot be watched.
    if (!config.has(componentName) || !config.lookup(componentName, keyPath).found) throw notFound('Key not found');
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

/**
 * Configuration validation (SubscribeToValidateConfigurationUpdates /
 * SendConfigurationValidityReport): before a deployment changes a component's configuration,
 * a component that subscribed gets {validateConfigurationUpdateEvent: {configuration,
 * deploymentId}} and must answer ACCEPTED or REJECTED within the policy timeout; a rejection or
 * no answer fails the deployment before anything changes, as the real nucleus does.
 */
interface PendingValidation {
  deploymentId: string;
  resolve: (r: { status: string; message?: string }) => void;
}

export class ConfigValidator {
  private readonly subscribers = new Map<string, Set<OperationContext>>();
  private readonly pending = new Map<string, PendingValidation>();

  register(server: IpcServer): void {
    server.register('SubscribeToValidateConfigurationUpdates', (_req, ctx) => {
      let set = this.subscribers.get(ctx.principal);
      if (!set) this.subscribers.set(ctx.principal, (set = new Set()));
      set.add(ctx);
      ctx.onClose(() => {
        set.delete(ctx);
        if (set.size === 0) this.subscribers.delete(ctx.principal);
      });
      return {};
    });
    server.register('SendConfigurationValidityReport', (req, ctx) => {
      const report = req.configurationValidityReport as { status?: unknown; deploymentId?: unknown; message?: unknown } | undefined;
      if (!report || (report.status !== 'ACCEPTED' && report.status !== 'REJECTED'))
        throw invalidArguments('configurationValidityReport.status must be ACCEPTED or REJECTED');
      const p = this.pending.get(ctx.principal);
      if (!p || (typeof report.deploymentId === 'string' && report.deploymentId !== p.deploymentId)) {
        throw invalidArguments('Validation request either timed out or was never made');
      }
      this.pending.delete(ctx.principal);
      p.resolve({ status: report.status, ...(typeof report.message === 'string' ? { message: report.message } : {}) });
      return {};
    });
  }

  /** Ask each subscribed component about its new configuration; resolves with the first problem, if any. */
  async validate(deploymentId: string, configs: Map<string, Record<string, unknown>>, timeoutMs: number): Promise<string | undefined> {
    const asks: Promise<string | undefined>[] = [];
    for (const [component, configuration] of configs) {
      const subs = this.subscribers.get(component);
      if (!subs?.size) continue;
      asks.push(
        new Promise<string | undefined>((resolve) => {
          const timer = setTimeout(() => {
            this.pending.delete(component);
            resolve(`${component} did not answer the configuration validation within ${timeoutMs / 1000} s`);
          }, timeoutMs);
          this.pending.set(component, {
            deploymentId,
            resolve: (r) => {
              clearTimeout(timer);
              resolve(
                r.status === 'ACCEPTED' ? undefined : `${component} rejected its new configuration${r.message ? `: ${r.message}` : ''}`,
              );
            },
          });
          for (const ctx of subs) ctx.emit({ validateConfigurationUpdateEvent: { configuration, deploymentId } });
        }),
      );
    }
    const problems = (await Promise.all(asks)).filter((p): p is string => p !== undefined);
    return problems.length ? problems.join('; ') : undefined;
  }
}
