import { IpcError, invalidArguments } from './ipc/errors.js';
import type { IpcServer } from './ipc/server.js';

/**
 * ValidateAuthorizationToken (the real AuthorizationIPCAgent): only Stream Manager may ask
 * whether an SVCUID is valid; everyone else is UnauthorizedError.
 */
export const STREAM_MANAGER = 'aws.greengrass.StreamManager';

export function registerAuthorizationIpc(server: IpcServer, isValidToken: (token: string) => boolean): void {
  server.register('ValidateAuthorizationToken', (req, ctx) => {
    if (ctx.principal !== STREAM_MANAGER)
      throw new IpcError('UnauthorizedError', `${ctx.principal} is not authorized to perform aws.greengrass#ValidateAuthorizationToken`);
    if (typeof req.token !== 'string' || req.token === '') throw invalidArguments('token is required');
    if (!isValidToken(req.token)) throw new IpcError('InvalidTokenError', 'Invalid token used by stream manager when trying to authorize');
    return { isValid: true };
  });
}
