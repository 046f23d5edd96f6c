import { createServer, type Server, type Socket } from 'node:net';
import { chmod, mkdtemp, rm, symlink, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { mkdirSync } from 'node:fs';
import type { Logger } from 'pino';
import { errorMessage } from '../../../lib/errors.js';
import type { Message, MessageHeaders } from './framing.js';
import { IpcError } from './errors.js';
import { MAX_MESSAGE_SIZE } from './framing.js';
import { SERVICE_MODEL, type EventOf, type OperationModel, type OperationName, type RequestOf, type ResponseOf } from './operations.js';
import {
  DEFAULT_LIMITS,
  MessageFlags,
  MessageType,
  RpcConnection,
  type ConnectionLimits,
  type StreamCallbacks,
  type StreamHandle,
} from './rpc.js';

/**
 * The GreengrassCoreIPC service on a Unix socket. Operations, their request/response/event types
 * and the shape names we send as `service-model-type` (what the client matches on) come from
 * aws-iot-device-sdk-v2's public model types (./operations.ts); a service registers typed
 * handlers here, one way for all of them: `server.register('PublishToTopic', (req, ctx) => ...)`.
 *
 * Operations the model knows but loupe does not implement answer like the real nucleus's
 * DefaultOperationHandler (ServiceError "Operation X is not supported by Greengrass");
 * operations outside the model answer like the Java RPC server's unknown-operation handler (an
 * ApplicationError with a plain JSON body and no model type).
 */
export interface OperationContext<E = unknown> {
  /** Component name of the caller (or the CLI principal). */
  readonly principal: string;
  readonly operation: string;
  readonly streamId: number;
  /** Send a streaming event (queued until the initial response has gone out). */
  emit(event: E): void;
  /** As emit(), with the JSON body already serialised (fan-out of one message to many). */
  emitSerialized(body: Buffer): void;
  /** Runs once when the stream ends for any reason (client close, server end, disconnect). */
  onClose(fn: () => void): void;
  /** End the stream from the server side (an empty TerminateStream message). */
  end(): void;
  readonly closed: boolean;
}

/** A typed handler: the request as it arrived (field names from the model, values unchecked), the response and events as the model says. */
export type OperationHandler<K extends OperationName> = (
  request: RequestOf<K>,
  ctx: OperationContext<EventOf<K>>,
) => ResponseOf<K> | Promise<ResponseOf<K>>;

type AnyHandler = (request: Record<string, unknown>, ctx: OperationContext) => unknown;

const JSON_CT: MessageHeaders[string] = { type: 'string', value: 'application/json' };
const TEXT_CT: MessageHeaders[string] = { type: 'string', value: 'text/plain' };
const EMPTY = new Uint8Array(0);

const headerCache = new Map<string, { responseHeaders: MessageHeaders; eventHeaders: MessageHeaders | undefined }>();
function headersFor(name: string, op: OperationModel) {
  let h = headerCache.get(name);
  if (!h) {
    h = {
      responseHeaders: { ':content-type': JSON_CT, 'service-model-type': { type: 'string', value: op.responseShape } },
      eventHeaders: op.eventShape
        ? { ':content-type': JSON_CT, 'service-model-type': { type: 'string', value: op.eventShape } }
        : undefined,
    };
    headerCache.set(name, h);
  }
  return h;
}

/** Unix socket paths are limited to 108 bytes (104 on macOS); leave room for the NUL. */
const MAX_SOCKET_PATH = 100;

export interface IpcServerOptions {
  socketPath: string;
  /** Map a Connect's authToken to a principal, or undefined to reject the connection. */
  authenticate(authToken: string): string | undefined;
  logger: Logger;
  /** Per-connection limits (Connect deadline, pre-Connect message size, streams, queued output). */
  limits?: Partial<ConnectionLimits>;
  /** Open connections at most (default 512); more are closed at once and logged. */
  maxConnections?: number;
}

/** What the limits did, for status and tests. */
export interface IpcStats {
  connectionsRefused: number;
  streamsRefused: number;
  slowStreamsClosed: number;
  /** The most output ever queued for one connection, in bytes. */
  peakQueuedBytes: number;
  oversizeAnswers: number;
}

/** Largest JSON body we send in one message (the frame limit less room for headers). */
const MAX_BODY = MAX_MESSAGE_SIZE - 64 * 1024;

export class IpcServer {
  private readonly handlers = new Map<string, AnyHandler>();
  readonly stats: IpcStats = { connectionsRefused: 0, streamsRefused: 0, slowStreamsClosed: 0, peakQueuedBytes: 0, oversizeAnswers: 0 };
  private readonly limits: ConnectionLimits;
  private readonly connections = new Set<RpcConnection>();
  private server: Server | undefined;
  private shortDir: string | undefined;
  /** The path clients connect to (short even when the requested path is long). */
  connectPath = '';

  constructor(private readonly opts: IpcServerOptions) {
    this.limits = { ...DEFAULT_LIMITS, ...opts.limits };
  }

  /** Register a handler by short name, e.g. "PublishToTopic". */
  register<K extends OperationName>(name: K, handler: OperationHandler<K>): void {
    const full = `aws.greengrass#${name}`;
    if (!SERVICE_MODEL.has(full)) throw new Error(`${name} is not an operation of the GreengrassCoreIPC model`);
    if (this.handlers.has(full)) throw new Error(`${name} is registered twice`);
    this.handlers.set(full, handler as unknown as AnyHandler);
  }

  get connectionCount(): number {
    return this.connections.size;
  }

  /** Connections authenticated as `principal` (used to drop a stopped component's clients). */
  connectionsOf(principal: string): RpcConnection[] {
    return [...this.connections].filter((c) => c.principal === principal);
  }

  async listen(): Promise<void> {
    const requested = this.opts.socketPath;
    mkdirSync(dirname(requested), { recursive: true });
    // a socket left by an earlier run; none there is fine
    await unlink(requested).catch(() => {});
    let listenPath = requested;
    if (Buffer.byteLength(requested) > MAX_SOCKET_PATH) {
      // Like the real nucleus's workaround for deep roots: bind somewhere short and leave a
      // link at the requested place; components are given the short path.
      this.shortDir = await mkdtemp(join(tmpdir(), 'gg-ipc-'));
      await chmod(this.shortDir, 0o755); // components may run as another user
      listenPath = join(this.shortDir, 'ipc.socket');
    }
    const server = createServer((socket) => this.accept(socket));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(listenPath, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', (e) => this.opts.logger.error({ err: e.message }, 'ipc server error'));
    // As the real nucleus: anyone may connect; a connection is only accepted with a component's token.
    await chmod(listenPath, 0o666);
    if (listenPath !== requested) await symlink(listenPath, requested);
    this.server = server;
    this.connectPath = listenPath;
    this.opts.logger.info({ socket: listenPath }, 'ipc server listening');
  }

  async close(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    for (const c of this.connections) c.socket.destroy();
    this.connections.clear();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
    // the socket may already be gone
    await unlink(this.opts.socketPath).catch(() => {});
    if (this.shortDir) await rm(this.shortDir, { recursive: true, force: true });
  }

  /** Drop every connection of one principal (its process is gone or its token was revoked). */
  disconnect(principal: string): void {
    for (const c of this.connectionsOf(principal)) c.socket.destroy();
  }

  private accept(socket: Socket): void {
    if (this.connections.size >= (this.opts.maxConnections ?? 512)) {
      this.stats.connectionsRefused++;
      this.opts.logger.warn({ open: this.connections.size }, 'too many ipc connections; refusing a new one');
      socket.destroy();
      return;
    }
    const conn = new RpcConnection(
      socket,
      {
        authenticate: ({ payload }) => {
          let token: unknown;
          try {
            token = (JSON.parse(Buffer.from(payload).toString('utf8')) as { authToken?: unknown }).authToken;
          } catch {
            this.opts.logger.warn('ipc connect payload is not JSON; rejecting');
            return undefined;
          }
          if (typeof token !== 'string' || token === '') {
            this.opts.logger.warn('ipc connect without an auth token; rejecting');
            return undefined;
          }
          const principal = this.opts.authenticate(token);
          if (!principal) this.opts.logger.warn('ipc connect with an unrecognised auth token; rejecting');
          else this.opts.logger.debug({ principal }, 'ipc client connected');
          return principal;
        },
        openStream: (stream, first, flags) => this.openStream(stream, first, flags),
        refuseStream: (stream, reason) => {
          this.stats.streamsRefused++;
          const e = new IpcError('ServiceError', `Cannot open another stream: ${reason}`);
          stream.send(
            MessageType.ApplicationError,
            MessageFlags.TerminateStream,
            { ':content-type': JSON_CT, 'service-model-type': { type: 'string', value: e.modelType } },
            Buffer.from(JSON.stringify(e.body())),
          );
        },
        onClosed: (c) => this.connections.delete(c),
      },
      this.opts.logger,
      this.limits,
    );
    this.connections.add(conn);
  }

  private openStream(stream: StreamHandle, first: Message, flags: number): StreamCallbacks {
    const callbacks: StreamCallbacks = {};
    // A client may open a stream and close it in the same message: nothing to do (as the Java server).
    if (flags & MessageFlags.TerminateStream) return callbacks;
    const op = SERVICE_MODEL.get(stream.operation);
    if (!op) {
      stream.send(
        MessageType.ApplicationError,
        MessageFlags.TerminateStream,
        { ':content-type': JSON_CT },
        Buffer.from(JSON.stringify({ error: 'Unsupported Operation', message: `${stream.operation} is an unsupported operation.` })),
      );
      return callbacks;
    }
    const handler = this.handlers.get(stream.operation);
    const streaming = op.eventShape !== undefined;
    const { responseHeaders, eventHeaders } = headersFor(stream.operation, op);

    const closers: (() => void)[] = [];
    let responded = false;
    let pending: Buffer[] = [];
    callbacks.onClose = () => {
      for (const f of closers.splice(0)) {
        try {
          f();
        } catch (e) {
          this.opts.logger.error({ err: errorMessage(e), operation: stream.operation }, 'stream cleanup failed');
        }
      }
    };
    const conn = stream.connection;
    const sendEvent = (body: Buffer) => {
      if (stream.closed || !eventHeaders) return;
      if (body.length > MAX_BODY) {
        this.opts.logger.warn(
          { principal: conn.principal, operation: stream.operation, bytes: body.length },
          'event larger than the IPC message limit; not delivered',
        );
        return;
      }
      // Backpressure: a subscriber that does not read must not grow the nucleus without bound.
      // Past the connection's limit its stream is ended (the client sees the stream end once it
      // reads again) and the subscription goes, as a slow consumer cannot be caught up.
      const queued = conn.queuedBytes + body.length;
      if (queued > this.limits.maxQueuedBytes) {
        this.stats.slowStreamsClosed++;
        this.opts.logger.warn(
          { principal: conn.principal, operation: stream.operation, queuedBytes: conn.queuedBytes, limit: this.limits.maxQueuedBytes },
          'ipc client is not reading its stream; ending the stream',
        );
        stream.send(MessageType.ApplicationMessage, MessageFlags.TerminateStream, {}, EMPTY);
        return;
      }
      if (queued > this.stats.peakQueuedBytes) this.stats.peakQueuedBytes = queued;
      if (!responded) pending.push(body);
      else stream.send(MessageType.ApplicationMessage, 0, eventHeaders, body);
    };
    const ctx: OperationContext = {
      principal: stream.connection.principal!,
      operation: stream.operation,
      streamId: stream.id,
      emit: (event) => sendEvent(Buffer.from(JSON.stringify(event))),
      emitSerialized: sendEvent,
      onClose: (fn) => {
        if (stream.closed) fn();
        else closers.push(fn);
      },
      end: () => stream.send(MessageType.ApplicationMessage, MessageFlags.TerminateStream, {}, EMPTY),
      get closed() {
        return stream.closed;
      },
    };

    const fail = (e: unknown) => {
      if (e instanceof IpcError) {
        stream.send(
          MessageType.ApplicationError,
          MessageFlags.TerminateStream,
          { ':content-type': JSON_CT, 'service-model-type': { type: 'string', value: e.modelType } },
          Buffer.from(JSON.stringify(e.body())),
        );
      } else {
        // Unmodelled failure: what the Java OperationContinuationHandler sends.
        this.opts.logger.error({ err: errorMessage(e), operation: stream.operation, principal: ctx.principal }, 'ipc operation failed');
        stream.send(
          MessageType.ApplicationError,
          MessageFlags.TerminateStream,
          { ':content-type': TEXT_CT },
          Buffer.from('InternalServerError'),
        );
      }
    };
    const succeed = (response: unknown) => {
      if (stream.closed) return;
      const body = Buffer.from(JSON.stringify(response ?? {}));
      if (body.length > MAX_BODY) {
        // An answer past the frame limit would make the client drop the connection and leave
        // the caller waiting forever: answer an error it can print instead.
        this.stats.oversizeAnswers++;
        this.opts.logger.warn(
          { principal: ctx.principal, operation: stream.operation, bytes: body.length },
          'ipc response larger than the message limit; answering an error',
        );
        fail(
          new IpcError(
            'ServiceError',
            `The response to ${stream.operation} would be ${body.length} bytes, over the ${MAX_MESSAGE_SIZE}-byte IPC message limit; ask for less (a key path, one component)`,
          ),
        );
        return;
      }
      stream.send(MessageType.ApplicationMessage, streaming ? 0 : MessageFlags.TerminateStream, responseHeaders, body);
      responded = true;
      for (const body of pending) stream.send(MessageType.ApplicationMessage, 0, eventHeaders!, body);
      pending = [];
    };

    if (!handler) {
      fail(new IpcError('ServiceError', `Operation ${stream.operation} is not supported by Greengrass`));
      return callbacks;
    }
    let request: Record<string, unknown>;
    try {
      const text = Buffer.from(first.body).toString('utf8');
      const parsed: unknown = text.length === 0 ? {} : JSON.parse(text);
      if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error('request body is not a JSON object');
      request = parsed as Record<string, unknown>;
    } catch (e) {
      fail(e);
      return callbacks;
    }
    try {
      const result = handler(request, ctx);
      if (result instanceof Promise) result.then(succeed, fail);
      else succeed(result);
    } catch (e) {
      fail(e);
    }
    return callbacks;
  }
}
