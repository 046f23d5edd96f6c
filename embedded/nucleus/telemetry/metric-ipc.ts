import type { Logger } from 'pino';
import { COMPONENT_METRIC_SERVICE, type Authorizer } from '../authorization.js';
import { invalidArguments } from '../ipc/errors.js';
import { IpcError } from '../ipc/errors.js';
import type { IpcServer } from '../ipc/server.js';

/**
 * PutComponentMetric (the real ComponentMetricIPCEventStreamAgent): a component needs an
 * aws.greengrass.ipc.componentmetric policy; loupe has no telemetry agent to forward metrics to,
 * so accepted metrics are counted and logged at debug level.
 */
export function registerComponentMetricIpc(server: IpcServer, authz: Authorizer, log: Logger): { accepted: number } {
  const stats = { accepted: 0 };
  server.register('PutComponentMetric', (req, ctx) => {
    const op = 'aws.greengrass#PutComponentMetric';
    // The operation has no resource; the real message ends where the resource would be.
    if (!authz.isAuthorized(COMPONENT_METRIC_SERVICE, ctx.principal, op, undefined)) {
      throw new IpcError('UnauthorizedError', `Principal ${ctx.principal} is not authorized to perform ${COMPONENT_METRIC_SERVICE}:${op} `);
    }
    const metrics = req.metrics;
    if (!Array.isArray(metrics) || metrics.length === 0) throw invalidArguments('metrics must be a non-empty list');
    stats.accepted += metrics.length;
    log.debug({ component: ctx.principal, metrics }, 'component metrics');
    return {};
  });
  return stats;
}
