import { existsSync, statSync } from 'node:fs';
import { isAbsolute } from 'node:path';
import { CLI_SERVICE, type Authorizer } from '../authorization.js';
import type { ConfigStore } from '../config/store.js';
import { IpcError, invalidArguments, notFound, serviceError } from '../ipc/errors.js';
import type { greengrasscoreipc } from 'aws-iot-device-sdk-v2';
import type { Wire } from '../ipc/operations.js';
import type { IpcServer } from '../ipc/server.js';
import { CLI_PRINCIPAL, type Kernel } from '../lifecycle/kernel.js';
import type { ConfigurationUpdate, DeploymentManager, DeploymentRecord } from './deployment.js';

/**
 * The Greengrass CLI's IPC operations (CLIEventStreamAgent): local deployments and component
 * inspection/control. The CLI principal (the token the nucleus writes to <root>/cli_ipc_info) may
 * call all of them; a component needs an `aws.greengrass.Cli` accessControl policy, as on a real
 * device.
 */
export function toLocalDeployment(r: DeploymentRecord): Wire<greengrasscoreipc.model.LocalDeployment> {
  return {
    deploymentId: r.deploymentId,
    status: r.status,
    createdOn: r.createdOn,
    ...(r.detailedStatus
      ? {
          deploymentStatusDetails: {
            detailedDeploymentStatus: r.detailedStatus,
            ...(r.errorTypes ? { deploymentErrorTypes: r.errorTypes } : {}),
            ...(r.failureCause ? { deploymentFailureCause: r.failureCause, deploymentErrorStack: [r.failureCause] } : {}),
          },
        }
      : {}),
  };
}

function configUpdateOf(v: unknown, name: string): ConfigurationUpdate {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw invalidArguments(`componentToConfiguration.${name} must be a map`);
  const o = v as Record<string, unknown>;
  const keys = Object.keys(o);
  const mergeKey = keys.find((k) => k.toUpperCase() === 'MERGE');
  const resetKey = keys.find((k) => k.toUpperCase() === 'RESET');
  if (!mergeKey && !resetKey) return { merge: o }; // the older form: the whole map is merged
  const out: ConfigurationUpdate = {};
  if (mergeKey) {
    const m = o[mergeKey];
    if (m === null || typeof m !== 'object' || Array.isArray(m))
      throw invalidArguments(`componentToConfiguration.${name}.MERGE must be a map`);
    out.merge = m as Record<string, unknown>;
  }
  if (resetKey) {
    const r = o[resetKey];
    if (!Array.isArray(r) || r.some((p) => typeof p !== 'string' || (p !== '' && !p.startsWith('/')))) {
      throw invalidArguments(`componentToConfiguration.${name}.RESET must be a list of JSON pointers`);
    }
    out.reset = r as string[];
  }
  return out;
}

export function registerCliIpc(
  server: IpcServer,
  deps: { kernel: Kernel; deployments: DeploymentManager; authz: Authorizer; config: ConfigStore },
): void {
  const { kernel, deployments, authz, config } = deps;
  // loupe's own CLI (the token in <root>/cli_ipc_info) may always call these. A component may
  // only when the aws.greengrass.Cli component is there (a component depends on it), with an
  // aws.greengrass.Cli policy; without it, the real nucleus does not know these operations.
  const allow = (principal: string, op: string, resource: string) => {
    if (principal === CLI_PRINCIPAL) return;
    if (!kernel.usesBuiltin(CLI_SERVICE)) throw serviceError(`Operation aws.greengrass#${op} is not supported by Greengrass`);
    authz.check(CLI_SERVICE, principal, `aws.greengrass#${op}`, resource);
  };
  const details = (name: string) => {
    const c = kernel.components.get(name);
    if (!c) return undefined;
    return { componentName: name, version: c.version, state: c.service.state, configuration: config.get(name) ?? {} };
  };

  server.register('CreateLocalDeployment', (req, ctx) => {
    allow(ctx.principal, 'CreateLocalDeployment', '*');
    const dirCheck = (v: unknown, shape: 'InvalidRecipeDirectoryPathError' | 'InvalidArtifactsDirectoryPathError', what: string) => {
      if (v === undefined || v === null) return undefined;
      if (typeof v !== 'string' || !isAbsolute(v) || !existsSync(v) || !statSync(v).isDirectory()) {
        throw new IpcError(shape, `${what} ${JSON.stringify(v)} is not an absolute path to a directory`);
      }
      return v;
    };
    const recipeDir = dirCheck(req.recipeDirectoryPath, 'InvalidRecipeDirectoryPathError', 'recipeDirectoryPath');
    const artifactDir = dirCheck(req.artifactsDirectoryPath, 'InvalidArtifactsDirectoryPathError', 'artifactsDirectoryPath');
    const merge = (req.rootComponentVersionsToAdd ?? {}) as Record<string, unknown>;
    if (typeof merge !== 'object' || Array.isArray(merge) || Object.values(merge).some((v) => typeof v !== 'string')) {
      throw invalidArguments('rootComponentVersionsToAdd must map component names to versions');
    }
    const remove = (req.rootComponentsToRemove ?? []) as unknown[];
    if (!Array.isArray(remove) || remove.some((v) => typeof v !== 'string'))
      throw invalidArguments('rootComponentsToRemove must be a list of names');
    const cfg = (req.componentToConfiguration ?? {}) as Record<string, unknown>;
    const configurationUpdate: Record<string, ConfigurationUpdate> = {};
    for (const [name, v] of Object.entries(cfg)) configurationUpdate[name] = configUpdateOf(v, name);
    const policy = req.failureHandlingPolicy;
    if (policy !== undefined && policy !== 'ROLLBACK' && policy !== 'DO_NOTHING')
      throw invalidArguments('failureHandlingPolicy must be ROLLBACK or DO_NOTHING');
    const { record } = deployments.submit({
      ...(recipeDir ? { recipeDir } : {}),
      ...(artifactDir ? { artifactDir } : {}),
      merge: merge as Record<string, string>,
      remove: remove as string[],
      configurationUpdate,
      ...(policy ? { failureHandlingPolicy: policy } : {}),
      ...(typeof req.groupName === 'string' ? { groupName: req.groupName } : {}),
    });
    return { deploymentId: record.deploymentId };
  });

  server.register('GetLocalDeploymentStatus', (req, ctx) => {
    allow(ctx.principal, 'GetLocalDeploymentStatus', '*');
    if (typeof req.deploymentId !== 'string') throw invalidArguments('deploymentId is required');
    const r = deployments.get(req.deploymentId);
    if (!r) throw notFound(`Cannot find deployment ${req.deploymentId}`, 'LocalDeployment', req.deploymentId);
    return { deployment: toLocalDeployment(r) };
  });

  server.register('ListLocalDeployments', (_req, ctx) => {
    allow(ctx.principal, 'ListLocalDeployments', '*');
    return { localDeployments: deployments.list().map(toLocalDeployment) };
  });

  server.register('ListComponents', (_req, ctx) => {
    allow(ctx.principal, 'ListComponents', '*');
    return { components: [...kernel.components.keys()].sort().map((n) => details(n)!) };
  });

  server.register('GetComponentDetails', (req, ctx) => {
    const name = req.componentName;
    allow(ctx.principal, 'GetComponentDetails', typeof name === 'string' ? name : '*');
    if (typeof name !== 'string' || name === '') throw invalidArguments('componentName is required');
    const d = details(name);
    if (!d) throw notFound(`Component ${name} not found`, 'Component', name);
    return { componentDetails: d };
  });

  server.register('RestartComponent', (req, ctx) => {
    const name = req.componentName;
    allow(ctx.principal, 'RestartComponent', typeof name === 'string' ? name : '*');
    if (typeof name !== 'string' || name === '') throw invalidArguments('componentName is required');
    const c = kernel.components.get(name);
    if (!c) throw new IpcError('ComponentNotFoundError', `Component ${name} not found`);
    c.service.restart();
    return { restartStatus: 'SUCCEEDED', message: `restart of ${name} requested` };
  });

  server.register('StopComponent', (req, ctx) => {
    const name = req.componentName;
    allow(ctx.principal, 'StopComponent', typeof name === 'string' ? name : '*');
    if (typeof name !== 'string' || name === '') throw invalidArguments('componentName is required');
    const c = kernel.components.get(name);
    if (!c) throw new IpcError('ComponentNotFoundError', `Component ${name} not found`);
    void c.service.stop();
    return { stopStatus: 'SUCCEEDED', message: `stop of ${name} requested` };
  });
}
