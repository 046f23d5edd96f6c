import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { Aedes } from 'aedes';
import type { Logger } from 'pino';
import { silentLogger } from '../../lib/log.js';
import { LoupeError } from '../../lib/errors.js';

/**
 * The embedded MQTT broker that stands in for AWS IoT Core on one machine: an aedes broker on a
 * plain TCP port. The local nucleus bridges PublishToIoTCore/SubscribeToIoTCore to it by default,
 * `loupe edge up` and the demo start one for the cloud side to listen on.
 *
 *   const broker = await startBroker({ port: 0 });   // 0 = any free port
 *   broker.url                                        // mqtt://127.0.0.1:<port>
 *   await broker.stop();
 */
export interface BrokerOptions {
  /** TCP port; 0 (the default) picks a free one. */
  port?: number;
  /** Interface to bind; loopback by default so nothing outside the machine can connect. */
  host?: string;
  logger?: Logger;
}

export interface EmbeddedBroker {
  readonly url: string;
  readonly port: number;
  readonly host: string;
  /** Number of MQTT clients connected right now. */
  connectedClients(): number;
  /**
   * Observe every PUBLISH that clients send to the broker (server side, like IoT Core's rules
   * engine sees them): unlike a subscribing client, it cannot miss messages while reconnecting.
   * Returns the function that stops observing.
   */
  onPublish(listener: (topic: string, payload: Buffer, clientId: string) => void): () => void;
  /** Stop accepting, disconnect every client and close the broker. Safe to call twice. */
  stop(): Promise<void>;
}

export async function startBroker(opts: BrokerOptions = {}): Promise<EmbeddedBroker> {
  const log = opts.logger ?? silentLogger;
  const host = opts.host ?? '127.0.0.1';
  const port = opts.port ?? 0;
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new LoupeError('BROKER_PORT', `must be an integer 0..65535, got ${String(port)}`, { input: 'broker port' });
  }
  const aedes = await Aedes.createBroker();
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    aedes.handle(socket);
  });
  aedes.on('clientError', (client, err) => log.debug({ client: client.id, err: err.message }, 'mqtt client error'));
  aedes.on('client', (client) => log.debug({ client: client.id }, 'mqtt client connected'));
  aedes.on('clientDisconnect', (client) => log.debug({ client: client.id }, 'mqtt client disconnected'));

  await new Promise<void>((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) =>
      reject(
        new LoupeError('BROKER_LISTEN', `cannot listen on ${host}:${port}: ${e.code ?? e.message}`, { input: 'broker port', cause: e }),
      ),
    );
    server.listen(port, host, () => resolve());
  });
  const bound = (server.address() as AddressInfo).port;
  const url = `mqtt://${host}:${bound}`;
  log.info({ url }, 'embedded MQTT broker listening');

  let stopped: Promise<void> | undefined;
  return {
    url,
    port: bound,
    host,
    connectedClients: () => aedes.connectedClients,
    onPublish(listener) {
      // aedes also reports its own $SYS publishes (client === null); only client messages count.
      const handler = (packet: { topic: string; payload: Buffer | string }, client: { id: string } | null) => {
        if (client) listener(packet.topic, Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload), client.id);
      };
      aedes.on('publish', handler);
      return () => aedes.removeListener('publish', handler);
    },
    stop() {
      stopped ??= (async () => {
        await new Promise<void>((resolve) => {
          server.close(() => resolve());
          // Clients keep their sockets open; end them so close() can complete.
          for (const s of sockets) s.destroy();
        });
        await new Promise<void>((resolve) => aedes.close(() => resolve()));
        log.info({ url }, 'embedded MQTT broker stopped');
      })();
      return stopped;
    },
  };
}
