import { IpcError } from './ipc/errors.js';

/**
 * Authorization from each component's `accessControl` configuration, as the real nucleus's
 * AuthorizationHandler reads it:
 *
 *   accessControl:
 *     aws.greengrass.ipc.pubsub:            # the destination service
 *       my.Component:pubsub:1:              # policy id
 *         policyDescription: ...
 *         operations: [aws.greengrass#PublishToTopic]   # or "*"
 *         resources: [loupe/frames, loupe/*]            # or "*"
 *
 * Resource patterns: `*` matches any run of characters (slashes included) and `${c}` escapes a
 * literal character. For the MQTT proxy service the MQTT wildcards count too when used validly:
 * `+` for one level, a trailing `/#` for any number of levels (and the parent level itself).
 * A denial throws UnauthorizedError with the real message:
 * "Principal <component> is not authorized to perform <service>:<operation> on resource <resource>".
 */
export const PUBSUB_SERVICE = 'aws.greengrass.ipc.pubsub';
export const MQTTPROXY_SERVICE = 'aws.greengrass.ipc.mqttproxy';
export const CLI_SERVICE = 'aws.greengrass.Cli';

const MQTT_STYLE = new Set([MQTTPROXY_SERVICE]);

interface CompiledPolicy {
  operations: Set<string>;
  resources: RegExp[];
}

function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}

/** Compile a resource pattern to an anchored regular expression. */
export function compileResource(pattern: string, mqtt: boolean): RegExp {
  if (pattern === '*' || (mqtt && pattern === '#')) return /^[\s\S]*$/;
  let re = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '$' && pattern[i + 1] === '{' && pattern[i + 3] === '}' && i + 3 < pattern.length) {
      re += escapeRegex(pattern[i + 2]!);
      i += 3;
      continue;
    }
    if (c === '*') {
      re += '[\\s\\S]*';
      continue;
    }
    if (mqtt && c === '+') {
      const startOk = i === 0 || pattern[i - 1] === '/';
      const endOk = i === pattern.length - 1 || pattern[i + 1] === '/';
      if (startOk && endOk) {
        re += '[^/]*';
        continue;
      }
    }
    if (mqtt && c === '#' && i === pattern.length - 1 && i > 0 && pattern[i - 1] === '/') {
      // "a/b/#" matches "a/b" and everything below it: drop the "/" already emitted.
      re = re.slice(0, -2) + '(?:/[\\s\\S]*)?';
      continue;
    }
    re += escapeRegex(c);
  }
  return new RegExp(`^${re}$`);
}

export class Authorizer {
  /** destination service -> principal -> policies */
  private readonly table = new Map<string, Map<string, CompiledPolicy[]>>();

  /** Replace the policies a component declares (its `accessControl` configuration value). */
  setComponentPolicies(component: string, accessControl: unknown, vars: { thingName: string }): string[] {
    this.removeComponent(component);
    const problems: string[] = [];
    if (accessControl === undefined || accessControl === null) return problems;
    if (typeof accessControl !== 'object' || Array.isArray(accessControl)) {
      problems.push(`${component}: accessControl must be a map of service names to policies`);
      return problems;
    }
    for (const [service, policies] of Object.entries(accessControl as Record<string, unknown>)) {
      if (!policies || typeof policies !== 'object' || Array.isArray(policies)) {
        problems.push(`${component}: accessControl.${service} must be a map of policy ids to policies`);
        continue;
      }
      const mqtt = MQTT_STYLE.has(service);
      for (const [policyId, p] of Object.entries(policies as Record<string, unknown>)) {
        const pol = p as { operations?: unknown; resources?: unknown };
        if (!pol || !Array.isArray(pol.operations) || pol.operations.some((o) => typeof o !== 'string')) {
          problems.push(`${component}: accessControl.${service}.${policyId}.operations must be a list of operation names`);
          continue;
        }
        const resources = pol.resources === undefined ? ['*'] : pol.resources;
        if (!Array.isArray(resources) || resources.some((r) => typeof r !== 'string' || r === '')) {
          problems.push(`${component}: accessControl.${service}.${policyId}.resources must be a list of non-empty strings`);
          continue;
        }
        const compiled: CompiledPolicy = {
          operations: new Set(pol.operations as string[]),
          resources: (resources as string[]).map((r) => compileResource(r.replaceAll('{iot:thingName}', vars.thingName), mqtt)),
        };
        let byPrincipal = this.table.get(service);
        if (!byPrincipal) this.table.set(service, (byPrincipal = new Map()));
        const list = byPrincipal.get(component) ?? [];
        list.push(compiled);
        byPrincipal.set(component, list);
      }
    }
    return problems;
  }

  removeComponent(component: string): void {
    for (const byPrincipal of this.table.values()) byPrincipal.delete(component);
  }

  isAuthorized(service: string, principal: string, operation: string, resource: string): boolean {
    const policies = this.table.get(service)?.get(principal);
    if (!policies) return false;
    for (const p of policies) {
      if (!p.operations.has(operation) && !p.operations.has('*')) continue;
      if (p.resources.some((r) => r.test(resource))) return true;
    }
    return false;
  }

  /** Throw the real nucleus's UnauthorizedError unless allowed. */
  check(service: string, principal: string, operation: string, resource: string): void {
    if (!this.isAuthorized(service, principal, operation, resource)) {
      throw new IpcError(
        'UnauthorizedError',
        `Principal ${principal} is not authorized to perform ${service}:${operation} on resource ${resource}`,
      );
    }
  }
}
