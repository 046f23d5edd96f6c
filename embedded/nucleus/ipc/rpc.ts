import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import {
  encodeMessage,
  FrameReader,
  FramingError,
  headerInt,
  headerString,
  MAX_MESSAGE_SIZE,
  type Message,
  type MessageHeaders,
} from './framing.js';

/**
 * Server side of event-stream RPC on one connection, following aws-c-event-stream's
 * event_stream_rpc_server.c (the layer under the real nucleus's IPC server):
 *
 * - every message carries int32 `:message-type`, `:message-flags`, `:stream-id`;
 * - stream 0 carries connection-level messages: Connect (answered by ConnectAck, flag 0x1 when
 *   accepted; a rejected connection is closed once the ack is flushed), Ping (echoed as
 *   PingResponse with the non-`:` headers and the payload);
 * - an operation opens stream N+1 with an `operation` header; later messages on a known stream go
 *   to it; a TerminateStream from the client closes it;
 * - anything else is a protocol violation: a ProtocolError message, then the connection closes.
 *
 * Framing errors (bad CRC, truncated or oversize frames) close this connection only; nothing
 * here is shared with other connections, so other clients are not disturbed.
 */
export const MessageType = {
  ApplicationMessage: 0,
  ApplicationError: 1,
  Ping: 2,
  PingResponse: 3,
  Connect: 4,
  ConnectAck: 5,
  ProtocolError: 6,
  InternalError: 7,
} as const;
export const MessageFlags = { ConnectionAccepted: 0x1, TerminateStream: 0x2 } as const;
const REJECT_CLOSE_DELAY_MS = 200;

/**
 * Limits on what one connection may make the nucleus hold (issue 14: unauthenticated clients
 * could hold 24 MiB and a socket forever; a subscriber that stops reading grew the nucleus
 * without bound). The real nucleus relies on its JVM heap for these; loupe bounds each.
 */
export interface ConnectionLimits {
  /** A client must send an accepted Connect within this (default 10 s). */
  connectTimeoutMs: number;
  /** Largest message before Connect is accepted (default 16 KiB; a Connect is well under 1 KiB). */
  maxPreConnectMessageBytes: number;
  /** Open streams (operations, subscriptions) per connection (default 1024). */
  maxStreams: number;
  /** Unsent output per connection; past it a streaming operation is ended (default 16 MiB). */
  maxQueuedBytes: number;
}

export const DEFAULT_LIMITS: ConnectionLimits = {
  connectTimeoutMs: 10_000,
  maxPreConnectMessageBytes: 16 * 1024,
  maxStreams: 1024,
  maxQueuedBytes: 16 * 1024 * 1024,
};

const MSG = {
  missingFields: 'A message arrived without the required :message-type, :message-flags and :stream-id headers.',
  notConnected: 'A message arrived before the connect handshake completed.',
  duplicateConnect: 'Connect may only be sent once per connection.',
  badStreamType: 'A non-zero :stream-id is only allowed on application messages and errors.',
  badZeroStreamType: 'An invalid :message-type arrived on stream 0.',
  oldStream: 'A message arrived for a stream-id lower than the last one seen that has no open stream.',
  connectTimeout: 'No Connect arrived in time.',
  skippedStream: 'A new stream-id must be exactly one more than the previous one.',
  noOperation: 'The first message on a new stream must carry an operation header.',
};

export interface StreamHandle {
  readonly id: number;
  readonly operation: string;
  readonly connection: RpcConnection;
  /** true once either side has terminated the stream or the connection has gone. */
  readonly closed: boolean;
  send(type: number, flags: number, headers: MessageHeaders, body: Uint8Array): void;
}

export interface StreamCallbacks {
  /** A message on the stream after the first one (clients of this service never need these). */
  onMessage?(msg: Message, flags: number): void;
  /** Called once when the stream ends: client terminate, server terminate, or disconnect. */
  onClose?(): void;
}

export interface RpcHooks {
  /** Decide on a Connect: return the principal to accept it, or undefined to reject. */
  authenticate(connect: { headers: MessageHeaders; payload: Uint8Array }): string | undefined;
  /** A new stream with its first message; returns callbacks for the rest of its life. */
  openStream(stream: StreamHandle, first: Message, flags: number): StreamCallbacks;
  /** Answer a stream the connection may not open (over the stream limit). */
  refuseStream?(stream: StreamHandle, reason: string): void;
  onClosed?(conn: RpcConnection): void;
}

class Stream implements StreamHandle {
  closed = false;
  callbacks: StreamCallbacks = {};
  constructor(
    readonly id: number,
    readonly operation: string,
    readonly connection: RpcConnection,
  ) {}

  send(type: number, flags: number, headers: MessageHeaders, body: Uint8Array): void {
    if (this.closed) return;
    this.connection.write(type, flags, this.id, headers, body);
    if (flags & MessageFlags.TerminateStream) this.connection.endStream(this);
  }
}

export class RpcConnection {
  principal: string | undefined;
  private state: 'awaiting-connect' | 'connected' | 'closing' | 'closed' = 'awaiting-connect';
  private readonly reader = new FrameReader();
  private lastStreamId = 0;
  private readonly streams = new Map<number, Stream>();
  private outgoing: Buffer[] = [];
  private outgoingBytes = 0;
  private connectTimer: NodeJS.Timeout | undefined;

  constructor(
    readonly socket: Socket,
    private readonly hooks: RpcHooks,
    private readonly log: Logger,
    readonly limits: ConnectionLimits = DEFAULT_LIMITS,
  ) {
    this.reader.maxMessageSize = limits.maxPreConnectMessageBytes;
    this.connectTimer = setTimeout(() => {
      this.log.warn({ timeoutMs: limits.connectTimeoutMs }, 'ipc client sent no Connect in time; closing');
      this.protocolError(MSG.connectTimeout);
    }, limits.connectTimeoutMs);
    this.connectTimer.unref();
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (e) => this.log.debug({ err: e.message, principal: this.principal }, 'ipc socket error'));
    socket.on('close', () => this.teardown());
  }

  /** Bytes written but not yet taken by the client (ours and the socket's). */
  get queuedBytes(): number {
    return this.outgoingBytes + this.socket.writableLength;
  }

  get openStreams(): number {
    return this.streams.size;
  }

  get isOpen(): boolean {
    return this.state === 'connected';
  }

  /** Close the connection now (server shutdown, or after a violation). */
  close(): void {
    if (this.state === 'closed' || this.socket.destroyed) return;
    this.state = 'closing';
    this.flush(); // what was written before the close still goes out
    this.socket.end();
    this.socket.destroySoon();
  }

  write(type: number, flags: number, streamId: number, headers: MessageHeaders, body: Uint8Array): void {
    if (this.state === 'closed' || this.socket.destroyed) return;
    const all: MessageHeaders = {
      ':message-type': { type: 'integer', value: type },
      ':message-flags': { type: 'integer', value: flags },
      ':stream-id': { type: 'integer', value: streamId },
    };
    for (const k in headers) all[k] = headers[k]!;
    const frame = encodeMessage(all, body);
    this.outgoing.push(frame);
    this.outgoingBytes += frame.length;
    // Frames produced in one turn of the event loop (a burst of events to one subscriber, the
    // replies to one chunk of requests) leave in one write.
    if (this.outgoing.length === 1) process.nextTick(this.flush);
  }

  private readonly flush = (): void => {
    const frames = this.outgoing;
    this.outgoing = [];
    this.outgoingBytes = 0;
    if (frames.length === 0 || this.socket.destroyed) return;
    this.socket.write(frames.length === 1 ? frames[0]! : Buffer.concat(frames));
  };

  endStream(stream: Stream): void {
    if (stream.closed) return;
    stream.closed = true;
    this.streams.delete(stream.id);
    try {
      stream.callbacks.onClose?.();
    } catch (e) {
      this.log.error({ err: (e as Error).message, operation: stream.operation }, 'stream close handler failed');
    }
  }

  private onData(chunk: Buffer): void {
    if (this.state === 'closed' || this.state === 'closing') return;
    let messages: Message[];
    try {
      messages = this.reader.feed(chunk);
    } catch (e) {
      // Like aws-c-event-stream's channel handler: a framing error shuts the channel down.
      const reason = e instanceof FramingError ? e.message : `unexpected: ${(e as Error).message}`;
      this.log.warn({ err: reason, principal: this.principal }, 'ipc framing error; closing connection');
      this.socket.destroy();
      return;
    }
    for (const m of messages) {
      if (this.state !== 'awaiting-connect' && this.state !== 'connected') return;
      this.route(m);
    }
  }

  private protocolError(message: string): void {
    this.log.warn({ principal: this.principal, reason: message }, 'ipc protocol error; closing connection');
    this.write(
      MessageType.ProtocolError,
      0,
      0,
      { ':content-type': { type: 'string', value: 'application/json' } },
      Buffer.from(JSON.stringify({ message })),
    );
    this.close();
  }

  private route(m: Message): void {
    const type = headerInt(m.headers, ':message-type');
    const flags = headerInt(m.headers, ':message-flags');
    const streamId = headerInt(m.headers, ':stream-id');
    if (type === undefined || flags === undefined || streamId === undefined) return this.protocolError(MSG.missingFields);

    if (this.state === 'awaiting-connect' && type !== MessageType.Connect) return this.protocolError(MSG.notConnected);

    if (streamId !== 0) {
      if (type > MessageType.ApplicationError || streamId < 0) return this.protocolError(MSG.badStreamType);
      if (streamId <= this.lastStreamId) {
        const s = this.streams.get(streamId);
        if (!s) {
          // A client closing a stream the server already ended crosses on the wire: harmless.
          if (flags & MessageFlags.TerminateStream) return;
          return this.protocolError(MSG.oldStream);
        }
        if (flags & MessageFlags.TerminateStream) {
          this.endStream(s);
          return;
        }
        s.callbacks.onMessage?.(m, flags);
        return;
      }
      if (streamId !== this.lastStreamId + 1) return this.protocolError(MSG.skippedStream);
      const operation = headerString(m.headers, 'operation');
      if (!operation) return this.protocolError(MSG.noOperation);
      this.lastStreamId = streamId;
      if (this.streams.size >= this.limits.maxStreams) {
        this.log.warn(
          { principal: this.principal, operation, open: this.streams.size },
          'ipc connection has too many open streams; refusing another',
        );
        this.hooks.refuseStream?.(
          new Stream(streamId, operation, this),
          `too many open streams on this connection (${this.limits.maxStreams})`,
        );
        return;
      }
      const s = new Stream(streamId, operation, this);
      this.streams.set(streamId, s);
      s.callbacks = this.hooks.openStream(s, m, flags);
      if (flags & MessageFlags.TerminateStream) this.endStream(s);
      return;
    }

    switch (type) {
      case MessageType.Connect: {
        if (this.state !== 'awaiting-connect') return this.protocolError(MSG.duplicateConnect);
        const principal = this.acceptVersion(m) ? this.hooks.authenticate({ headers: m.headers, payload: m.body }) : undefined;
        if (principal) {
          this.principal = principal;
          this.state = 'connected';
          clearTimeout(this.connectTimer);
          this.reader.maxMessageSize = MAX_MESSAGE_SIZE;
          this.write(MessageType.ConnectAck, MessageFlags.ConnectionAccepted, 0, {}, new Uint8Array(0));
        } else {
          // Rejected: ack without the accepted flag, then close. The real server closes as soon
          // as the ack is flushed; we give the client a moment to read the ack first so that it
          // reports the rejection (HandshakeError) rather than a bare "connection closed".
          this.write(MessageType.ConnectAck, 0, 0, {}, new Uint8Array(0));
          this.state = 'closing';
          setTimeout(() => this.close(), REJECT_CLOSE_DELAY_MS).unref();
        }
        return;
      }
      case MessageType.Ping: {
        const echo: MessageHeaders = {};
        for (const [k, v] of Object.entries(m.headers)) if (!k.startsWith(':')) echo[k] = v;
        this.write(MessageType.PingResponse, 0, 0, echo, m.body);
        return;
      }
      case MessageType.PingResponse:
        return;
      default:
        return this.protocolError(MSG.badZeroStreamType);
    }
  }

  private acceptVersion(m: Message): boolean {
    const v = headerString(m.headers, ':version');
    if (v !== '0.1.0') {
      this.log.warn({ version: v ?? null }, 'ipc client eventstream version mismatch (want 0.1.0)');
      return false;
    }
    return true;
  }

  private teardown(): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    clearTimeout(this.connectTimer);
    for (const s of [...this.streams.values()]) this.endStream(s);
    this.hooks.onClosed?.(this);
  }
}
