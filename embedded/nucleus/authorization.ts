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
 * Resource patterns: `*` matches any run of characters (slashes included); `${*}`, `${$}` and
 * `${?}` stand for the literal character. A resource holding any other `${` or a bare `?` is
 * invalid and dropped (the rest of the policy stays), and a policy without resources allows
 * nothing. For the MQTT proxy service the MQTT wildcards count too when used validly: `+` for one
 * whole level, a trailing `/#` for any number of levels (and the parent level itself). Values are
 * taken as written: `{iot:thingName}` is replaced only when the deployment interpolated the
 * configuration (interpolateComponentConfiguration), as on a real device. Policies for services
 * Greengrass does not know are ignored. Each rule was checked against the real nucleus
 * (test/nucleus-diff).
 */
export const PUBSUB_SERVICE = 'aws.greengrass.ipc.pubsub';
export const MQTTPROXY_SERVICE = 'aws.greengrass.ipc.mqttproxy';
export const CLI_SERVICE = 'aws.greengrass.Cli';
export const LIFECYCLE_SERVICE = 'aws.greengrass.ipc.lifecycle';
export const COMPONENT_METRIC_SERVICE = 'aws.greengrass.ipc.componentmetric';

/** Destinations the real AuthorizationHandler registers (policies for others are dropped). */
const DESTINATIONS = new Set([
  PUBSUB_SERVICE,
  MQTTPROXY_SERVICE,
  CLI_SERVICE,
  LIFECYCLE_SERVICE,
  COMPONENT_METRIC_SERVICE,
  'aws.greengrass.SecretManager',
  'aws.greengrass.ShadowManager',
  'aws.greengrass.clientdevices.Auth',
  'aws.greengrass.tokenExchangeService',
]);

const MQTT_STYLE = new Set([MQTTPROXY_SERVICE]);

interface CompiledPolicy {
  operations: Set<string>;
  resources: RegExp[];
}

function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}

/** Why a resource pattern is invalid (the real nucleus drops it), or undefined when it is fine. */
export function resourceProblem(pattern: string): string | undefined {
  if (pattern === '') return 'Resource cannot be empty';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '$' && pattern[i + 1] === '{') {
      if (pattern.length - i < 4 || pattern[i + 3] !== '}')
        return 'Resource contains an invalid escape sequence. You can use ${*}, ${$}, or ${?}';
      const actual = pattern[i + 2]!;
      if (!'*$?'.includes(actual)) return `Resource contains an invalid escape sequence: \${${actual}}. You can use \${*}, \${$}, or \${?}`;
      i += 3;
      continue;
    }
    if (c === '?')
      return "Resource contains invalid character: '?'. Use an escape sequence: ${?}. The '?' character isn't supported as a wildcard";
  }
  return undefined;
}

/** Compile a (valid) resource pattern to an anchored regular expression. */
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

  /**
   * Replace the policies a component declares (its `accessControl` configuration value).
   * Returns the problems found (logged by the caller); what is valid is kept.
   */
  setComponentPolicies(component: string, accessControl: unknown): string[] {
    this.removeComponent(component);
    const problems: string[] = [];
    if (accessControl === undefined || accessControl === null) return problems;
    if (typeof accessControl !== 'object' || Array.isArray(accessControl)) {
      problems.push(`${component}: accessControl must be a map of service names to policies`);
      return problems;
    }
    for (const [service, policies] of Object.entries(accessControl as Record<string, unknown>)) {
      if (!DESTINATIONS.has(service)) {
        problems.push(`${component}: accessControl.${service}: not a service Greengrass authorizes; ignored`);
        continue;
      }
      if (!policies || typeof policies !== 'object' || Array.isArray(policies)) {
        problems.push(`${component}: accessControl.${service} must be a map of policy ids to policies`);
        continue;
      }
      const mqtt = MQTT_STYLE.has(service);
      for (const [policyId, p] of Object.entries(policies as Record<string, unknown>)) {
        const pol = p as { operations?: unknown; resources?: unknown };
        if (!pol || !Array.isArray(pol.operations) || pol.operations.length === 0 || pol.operations.some((o) => typeof o !== 'string')) {
          problems.push(`${component}: accessControl.${service}.${policyId}.operations must be a list of operation names`);
          continue;
        }
        const resources = pol.resources === undefined || pol.resources === null ? [] : pol.resources;
        if (!Array.isArray(resources) || resources.some((r) => typeof r !== 'string')) {
          problems.push(`${component}: accessControl.${service}.${policyId}.resources must be a list of strings`);
          continue;
        }
        const compiled: RegExp[] = [];
        for (const r of resources as string[]) {
          const problem = resourceProblem(r);
          if (problem) problems.push(`${component}: accessControl.${service}.${policyId}: resource "${r}" dropped: ${problem}`);
          else compiled.push(compileResource(r, mqtt));
        }
        let byPrincipal = this.table.get(service);
        if (!byPrincipal) this.table.set(service, (byPrincipal = new Map()));
        const list = byPrincipal.get(component) ?? [];
        list.push({ operations: new Set(pol.operations as string[]), resources: compiled });
        byPrincipal.set(component, list);
      }
    }
    return problems;
  }

  removeComponent(component: string): void {
    for (const byPrincipal of this.table.values()) byPrincipal.delete(component);
  }

  /** `resource` undefined: an operation without a resource (any policy for it allows it). */
  isAuthorized(service: string, principal: string, operation: string, resource: string | undefined): boolean {
    const policies = this.table.get(service)?.get(principal);
    if (!policies) return false;
    for (const p of policies) {
      if (!p.operations.has(operation) && !p.operations.has('*')) continue;
      if (resource === undefined || p.resources.some((r) => r.test(resource))) return true;
    }
    return false;
  }

  /**
   * Throw the real nucleus's UnauthorizedError unless allowed: "Principal <component> is not
   * authorized to perform <service>:<operation> on resource <resource>" (or `message`).
   */
  check(service: string, principal: string, operation: string, resource: string, message?: string): void {
    if (!this.isAuthorized(service, principal, operation, resource)) {
      throw new IpcError(
        'UnauthorizedError',
        message ?? `Principal ${principal} is not authorized to perform ${service}:${operation} on resource ${resource}`,
      );
    }
  }
}
