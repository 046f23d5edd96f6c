import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';

/**
 * Token Exchange Service: the container-credentials endpoint that the AWS SDK's default chain
 * reads when AWS_CONTAINER_CREDENTIALS_FULL_URI and AWS_CONTAINER_AUTHORIZATION_TOKEN are set.
 * As the real TES: GET on exactly /2016-11-01/credentialprovider/ with a component's token in
 * the Authorization header gives {AccessKeyId, SecretAccessKey, Token, Expiration}; a missing
 * or unknown token is 403, other paths 400, other methods 405.
 *
 * A deliberate difference from Greengrass: the real TES trades the device certificate for
 * temporary credentials of an IAM role; on one machine this TES hands out the embedded object
 * store's own key pair (read from its key file by the provider the nucleus is given: `edge up`,
 * the demo, `loupe nucleus start --objectstore-dir`). Without a provider it answers 500
 * ("credentials unavailable") instead of inventing keys.
 */
export interface Credentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
  /** When they stop being valid; defaults to one hour from the request. */
  expiration?: Date;
}

export type CredentialsProvider = () => Credentials | Promise<Credentials>;

export const TES_PATH = '/2016-11-01/credentialprovider/';

/** The provider of a nucleus given no credentials: every TES request fails with a clear log line. */
export const NO_CREDENTIALS: CredentialsProvider = () => {
  throw new Error('this nucleus has no credentials to hand out (start it with the object store\'s keys, e.g. `loupe nucleus start --objectstore-dir DIR`)');
};

export class TokenExchangeService {
  private server: Server | undefined;
  port = 0;

  constructor(
    private readonly opts: {
      /** true when `token` belongs to a running component. */
      isValidToken(token: string): boolean;
      credentials: CredentialsProvider;
      logger: Logger;
      port?: number;
    },
  ) {}

  get uri(): string {
    // 127.0.0.1 rather than the real "localhost": Node may resolve localhost to ::1 first, and
    // we only listen on IPv4 loopback. Both are loopback addresses the SDK accepts.
    return `http://127.0.0.1:${this.port}${TES_PATH}`;
  }

  async start(): Promise<void> {
    const server = createServer((req, res) => {
      const send = (status: number, body: unknown) => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(body));
      };
      const path = (req.url ?? '').split('?')[0];
      if (path !== TES_PATH) return send(400, { message: `unknown path ${path}` });
      if (req.method !== 'GET') return send(405, { message: `method ${req.method} not allowed` });
      const token = req.headers.authorization;
      if (!token || !this.opts.isValidToken(token)) {
        this.opts.logger.warn('tes request with a missing or unknown token');
        return send(403, { message: 'Invalid or missing authorization token' });
      }
      Promise.resolve()
        .then(() => this.opts.credentials())
        .then((c) =>
          send(200, {
            AccessKeyId: c.accessKeyId,
            SecretAccessKey: c.secretAccessKey,
            ...(c.sessionToken ? { Token: c.sessionToken } : {}),
            Expiration: (c.expiration ?? new Date(Date.now() + 3600_000)).toISOString(),
          }),
        )
        .catch((e: unknown) => {
          this.opts.logger.error({ err: (e as Error).message }, 'tes credentials provider failed');
          send(500, { message: 'credentials unavailable' });
        });
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.opts.port ?? 0, '127.0.0.1', () => resolve());
    });
    this.server = server;
    this.port = (server.address() as AddressInfo).port;
    this.opts.logger.info({ uri: this.uri }, 'token exchange service listening');
  }

  async stop(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }
}
