import { greengrasscoreipc } from 'aws-iot-device-sdk-v2';
import type { Logger } from 'pino';
import { LoupeError, errorMessage } from '../../lib/errors.js';
import { silentLogger } from '../../lib/log.js';

type Model = typeof greengrasscoreipc.model;
type IpcClient = greengrasscoreipc.Client;
type Json = Record<string, unknown>;

/**
 * The one way loupe components talk to their nucleus: a thin wrapper over the AWS IoT Device
 * SDK v2's `greengrasscoreipc` client (event-stream RPC over the Unix socket named by
 * AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH_FOR_COMPONENT, authenticated with SVCUID), so the same
 * code runs on real Greengrass and on loupe's local nucleus.
 *
 * What it adds: connect with retry and backoff; JSON publish/subscribe; IoT Core publish
 * (QoS 1 by default) and subscribe; configuration get/subscribe; component-update events and
 * deferral; UpdateState. If the connection drops it reconnects in the background and re-opens
 * every subscription; calls made while disconnected fail fast with a LoupeError (callers count
 * them) rather than hang.
 */
export interface IpcOptions {
  log?: Logger;
  /** connect attempts before giving up (default 10), with exponential backoff from 200 ms */
  connectAttempts?: number;
  /** per-operation timeout, ms (default 10 s) */
  timeoutMs?: number;
  /** reconnect in the background after a dropped connection (default true) */
  reconnect?: boolean;
}

interface Subscription {
  open(client: IpcClient): Promise<{ close(): Promise<void> }>;
  handle?: { close(): Promise<void> };
}

export type Unsubscribe = () => Promise<void>;

export class GreengrassIpc {
  private client?: IpcClient;
  private connected = false;
  private closing = false;
  private readonly subs = new Set<Subscription>();
  private readonly log: Logger;
  readonly thingName = process.env.AWS_IOT_THING_NAME ?? 'local-thing';

  private constructor(private readonly opts: IpcOptions) {
    this.log = opts.log ?? silentLogger;
  }

  static async connect(opts: IpcOptions = {}): Promise<GreengrassIpc> {
    if (!process.env.AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH_FOR_COMPONENT || !process.env.SVCUID) {
      throw new LoupeError(
        'ipc.env',
        'not running under a Greengrass nucleus: AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH_FOR_COMPONENT and SVCUID must be set',
        { input: 'environment' },
      );
    }
    const ipc = new GreengrassIpc(opts);
    await ipc.open(opts.connectAttempts ?? 10);
    return ipc;
  }

  get isConnected(): boolean {
    return this.connected;
  }

  private async open(attempts: number): Promise<void> {
    let delay = 200;
    for (let i = 1; ; i++) {
      const client = greengrasscoreipc.createClient();
      try {
        await withTimeout(client.connect(), this.opts.timeoutMs ?? 10_000, 'IPC connect');
        this.client = client;
        this.connected = true;
        client.on('disconnection', (ev) => this.onDisconnect(client, ev?.reason ? String(ev.reason) : undefined));
        for (const s of this.subs) s.handle = await s.open(client);
        this.log.info({ attempt: i }, 'IPC connected');
        return;
      } catch (e) {
        // this attempt already failed (its error is logged and retried); the half-open client just goes
        await client.close().catch(() => {});
        if (i >= attempts)
          throw new LoupeError('ipc.connect', `cannot connect to the nucleus IPC socket after ${i} attempts: ${errorMessage(e)}`, {
            cause: e,
          });
        this.log.warn({ attempt: i, err: errorMessage(e), retryInMs: delay }, 'IPC connect failed, retrying');
        await sleep(delay);
        delay = Math.min(delay * 2, 5000);
      }
    }
  }

  private onDisconnect(client: IpcClient, reason?: string): void {
    if (client !== this.client) return;
    this.connected = false;
    for (const s of this.subs) s.handle = undefined;
    if (this.closing) return;
    this.log.warn({ reason }, 'IPC connection lost');
    if (this.opts.reconnect === false) return;
    void this.open(Number.MAX_SAFE_INTEGER).catch((e) => this.log.error({ err: errorMessage(e) }, 'IPC reconnect gave up'));
  }

  private live(): IpcClient {
    if (!this.client || !this.connected) throw new LoupeError('ipc.disconnected', 'the IPC connection to the nucleus is down');
    return this.client;
  }

  private call<T>(what: string, p: (c: IpcClient) => Promise<T>): Promise<T> {
    return withTimeout(p(this.live()), this.opts.timeoutMs ?? 10_000, what).catch((e: unknown) => {
      throw e instanceof LoupeError ? e : new LoupeError('ipc.call', `${what} failed: ${describeRpcError(e)}`, { cause: e });
    });
  }

  /** Local pub/sub (PublishToTopic) with a JSON object message. */
  async publish(topic: string, message: Json): Promise<void> {
    await this.call(`PublishToTopic ${topic}`, (c) => c.publishToTopic({ topic, publishMessage: { jsonMessage: { message } } }));
  }

  /** Local pub/sub subscription (SubscribeToTopic); JSON and binary (parsed as JSON) messages reach `handler`. */
  async subscribe(topic: string, handler: (message: Json, topic: string) => void): Promise<Unsubscribe> {
    return this.addSub(async (c) => {
      const op = c.subscribeToTopic({ topic });
      op.on('message', (ev) => {
        try {
          const msg =
            ev.jsonMessage?.message ??
            (ev.binaryMessage?.message ? JSON.parse(Buffer.from(ev.binaryMessage.message as Uint8Array).toString('utf8')) : undefined);
          const t = ev.jsonMessage?.context?.topic ?? ev.binaryMessage?.context?.topic ?? topic;
          if (msg && typeof msg === 'object') handler(msg as Json, t);
        } catch (e) {
          this.log.warn({ topic, err: errorMessage(e) }, 'dropped an unparsable IPC message');
        }
      });
      op.on('streamError', (e) => this.log.warn({ topic, err: describeRpcError(e) }, 'IPC subscription error'));
      await withTimeout(op.activate(), this.opts.timeoutMs ?? 10_000, `SubscribeToTopic ${topic}`);
      return op;
    }, `SubscribeToTopic ${topic}`);
  }

  /** PublishToIoTCore (QoS 1 unless told): JSON object or raw text/bytes payload. */
  async publishIoTCore(topicName: string, payload: Json | string | Uint8Array, qos: 0 | 1 = 1): Promise<void> {
    const body = typeof payload === 'string' || payload instanceof Uint8Array ? payload : JSON.stringify(payload);
    const q = qos === 1 ? ('1' as Model['QOS']['AT_LEAST_ONCE']) : ('0' as Model['QOS']['AT_MOST_ONCE']);
    await this.call(`PublishToIoTCore ${topicName}`, (c) => c.publishToIoTCore({ topicName, qos: q, payload: body }));
  }

  /** SubscribeToIoTCore; `handler` gets the raw payload and the topic it arrived on. */
  async subscribeIoTCore(topicName: string, handler: (payload: Buffer, topic: string) => void, qos: 0 | 1 = 1): Promise<Unsubscribe> {
    const q = qos === 1 ? ('1' as Model['QOS']['AT_LEAST_ONCE']) : ('0' as Model['QOS']['AT_MOST_ONCE']);
    return this.addSub(async (c) => {
      const op = c.subscribeToIoTCore({ topicName, qos: q });
      op.on('message', (ev) => {
        const m = ev.message;
        if (m) handler(Buffer.from((m.payload ?? new Uint8Array()) as Uint8Array), m.topicName);
      });
      op.on('streamError', (e) => this.log.warn({ topicName, err: describeRpcError(e) }, 'IoT Core subscription error'));
      await withTimeout(op.activate(), this.opts.timeoutMs ?? 10_000, `SubscribeToIoTCore ${topicName}`);
      return op;
    }, `SubscribeToIoTCore ${topicName}`);
  }

  /** GetConfiguration of this component (or another's), the whole tree by default. */
  async getConfiguration(keyPath: string[] = [], componentName?: string): Promise<unknown> {
    const r = await this.call('GetConfiguration', (c) => c.getConfiguration({ keyPath, ...(componentName ? { componentName } : {}) }));
    // A leaf comes back wrapped as {lastKey: value}.
    if (keyPath.length > 0 && r.value && typeof r.value === 'object' && keyPath[keyPath.length - 1]! in (r.value as Json)) {
      const v = r.value as Json;
      if (Object.keys(v).length === 1) return v[keyPath[keyPath.length - 1]!];
    }
    return r.value;
  }

  /** SubscribeToConfigurationUpdate for this component: `handler` gets the changed key path. */
  async onConfigurationUpdate(handler: (keyPath: string[]) => void, componentName?: string): Promise<Unsubscribe> {
    return this.addSub(async (c) => {
      const op = c.subscribeToConfigurationUpdate({ keyPath: [], ...(componentName ? { componentName } : {}) });
      op.on('message', (ev) => {
        if (ev.configurationUpdateEvent) handler(ev.configurationUpdateEvent.keyPath ?? []);
      });
      await withTimeout(op.activate(), this.opts.timeoutMs ?? 10_000, 'SubscribeToConfigurationUpdate');
      return op;
    }, 'SubscribeToConfigurationUpdate');
  }

  /** SubscribeToComponentUpdates: pre-update (may defer) and post-update events. */
  async onComponentUpdate(
    handler: (ev: { phase: 'pre' | 'post'; deploymentId: string; isGgcRestarting?: boolean }) => void,
  ): Promise<Unsubscribe> {
    return this.addSub(async (c) => {
      const op = c.subscribeToComponentUpdates({});
      op.on('message', (ev) => {
        if (ev.preUpdateEvent)
          handler({ phase: 'pre', deploymentId: ev.preUpdateEvent.deploymentId, isGgcRestarting: ev.preUpdateEvent.isGgcRestarting });
        if (ev.postUpdateEvent) handler({ phase: 'post', deploymentId: ev.postUpdateEvent.deploymentId });
      });
      await withTimeout(op.activate(), this.opts.timeoutMs ?? 10_000, 'SubscribeToComponentUpdates');
      return op;
    }, 'SubscribeToComponentUpdates');
  }

  /** DeferComponentUpdate: `recheckAfterMs` 0 means "go ahead now". */
  async deferComponentUpdate(deploymentId: string, recheckAfterMs: number, message?: string): Promise<void> {
    await this.call('DeferComponentUpdate', (c) =>
      c.deferComponentUpdate({ deploymentId, recheckAfterMs, ...(message ? { message } : {}) }),
    );
  }

  /** UpdateState: RUNNING or ERRORED (ERRORED during a deployment makes it fail and roll back). */
  async updateState(state: 'RUNNING' | 'ERRORED'): Promise<void> {
    await this.call(`UpdateState ${state}`, (c) => c.updateState({ state: state as Model['ReportedLifecycleState']['RUNNING'] }));
  }

  async close(): Promise<void> {
    this.closing = true;
    // closing: a stream the nucleus already ended needs no more
    for (const s of this.subs) await s.handle?.close().catch(() => {});
    this.subs.clear();
    this.connected = false;
    // closing: a connection that is already down needs no more
    await this.client?.close().catch(() => {});
  }

  private async addSub(open: Subscription['open'], what: string): Promise<Unsubscribe> {
    const sub: Subscription = { open };
    try {
      sub.handle = await open(this.live());
    } catch (e) {
      throw e instanceof LoupeError ? e : new LoupeError('ipc.subscribe', `${what} failed: ${describeRpcError(e)}`, { cause: e });
    }
    this.subs.add(sub);
    return async () => {
      this.subs.delete(sub);
      // unsubscribing: a stream the nucleus already ended needs no more
      await sub.handle?.close().catch(() => {});
    };
  }
}

/** RpcError carries the modelled service error (e.g. UnauthorizedError) in `serviceError`. */
export function describeRpcError(e: unknown): string {
  const r = e as { description?: string; serviceError?: { message?: string; _message?: string }; message?: string };
  const se = r?.serviceError;
  return se ? `${se.message ?? se._message ?? JSON.stringify(se)}` : (r?.description ?? r?.message ?? String(e));
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: NodeJS.Timeout;
  return Promise.race([
    p.finally(() => clearTimeout(t)),
    new Promise<never>((_, rej) => {
      t = setTimeout(() => rej(new LoupeError('ipc.timeout', `${what} timed out after ${ms} ms`)), ms);
    }),
  ]);
}
