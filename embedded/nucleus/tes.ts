import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';

/**
 * Token Exchange Service: the container-credentials endpoint that the AWS SDK's default chain
 * reads when AWS_CONTAINER_CREDENTIALS_FULL_URI and AWS_CONTAINER_AUTHORIZATION_TOKEN are set.
 * As the real TES (checked by test/nucleus-diff): GET on exactly /2016-11-01/credentialprovider/
 * with a component's token in the Authorization header gives {AccessKeyId, SecretAccessKey,
 * Token, Expiration}; under that path, another method is 405, a longer path 400, a missing or
 * unknown token 403 (errors have no body); outside it, 404. It listens on localhost (IPv4 and,
 * where the machine has it, IPv6 loopback), the URI says `localhost` as the real one does.
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
  throw new Error(
    "this nucleus has no credentials to hand out (start it with the object store's keys, e.g. `loupe nucleus start --objectstore-dir DIR`)",
  );
};

export class TokenExchangeService {
  private servers: Server[] = [];
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
    return `http://localhost:${this.port}${TES_PATH}`;
  }

  async start(): Promise<void> {
    const handler = (req: IncomingMessage, res: ServerResponse) => {
      const send = (status: number, body: unknown) => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(body));
      };
      const fail = (status: number) => {
        res.writeHead(status, { 'content-length': '0' });
        res.end();
      };
      const path = (req.url ?? '').split('?')[0] ?? '';
      if (!path.startsWith(TES_PATH)) {
        res.writeHead(404, { 'content-type': 'text/html' });
        res.end('<h1>404 Not Found</h1>No context found for request');
        return;
      }
      if (req.method !== 'GET') return fail(405);
      if (path !== TES_PATH) return fail(400);
      const token = req.headers.authorization;
      if (!token || !this.opts.isValidToken(token)) {
        this.opts.logger.warn('tes request with a missing or unknown token');
        return fail(403);
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
          fail(500);
        });
    };
    const listen = (port: number, host: string) =>
      new Promise<Server>((resolve, reject) => {
        const server = createServer(handler);
        server.once('error', reject);
        server.listen(port, host, () => {
          server.off('error', reject);
          resolve(server);
        });
      });
    const v4 = await listen(this.opts.port ?? 0, '127.0.0.1');
    this.servers.push(v4);
    this.port = (v4.address() as AddressInfo).port;
    // "localhost" may resolve to ::1 first: answer there too when the machine has IPv6 loopback.
    await listen(this.port, '::1').then(
      (s) => this.servers.push(s),
      (e: NodeJS.ErrnoException) => this.opts.logger.debug({ err: e.code ?? e.message }, 'tes: no IPv6 loopback; IPv4 only'),
    );
    this.opts.logger.info({ uri: this.uri }, 'token exchange service listening');
  }

  async stop(): Promise<void> {
    const servers = this.servers;
    this.servers = [];
    await Promise.all(
      servers.map((s) => {
        s.closeAllConnections();
        return new Promise<void>((resolve) => s.close(() => resolve()));
      }),
    );
  }
}
