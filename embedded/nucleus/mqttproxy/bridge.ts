import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import type { Logger } from 'pino';
import { writeFileAtomic } from '../../../lib/fsutil.js';
import { SubscriptionIndex } from '../pubsub/topics.js';

/**
 * The nucleus's connection to "IoT Core": an MQTT client (mqtt.js) to the embedded broker or any
 * broker URL, shared by every component's PublishToIoTCore / SubscribeToIoTCore.
 *
 * While the broker is away, messages are spooled ON DISK (one atomically written file per
 * message under <root>/mqtt-spool/, so they survive a nucleus restart too) and flushed in order
 * once the connection is back; a spooled QoS 1 message is deleted only after its PUBACK. As in
 * Greengrass's spooler, QoS 0 messages are dropped while offline unless keepQos0WhenOffline is set.
 * New messages go behind spooled ones, so order is kept. Subscriptions are shared per filter and
 * restored by mqtt.js after a reconnect.
 */
export interface BridgeOptions {
  url: string;
  clientId: string;
  spoolDir: string;
  logger: Logger;
  keepQos0WhenOffline?: boolean;
  /** Reconnect period (ms). */
  reconnectPeriodMs?: number;
}

export interface OutgoingMessage {
  topic: string;
  payload: Buffer;
  qos: 0 | 1;
  retain?: boolean;
}

type Listener = (topic: string, payload: Buffer, retain: boolean) => void;

interface SpoolRecord {
  topic: string;
  payload: string;
  qos: 0 | 1;
  retain: boolean;
}

export class IotCoreBridge {
  private client: MqttClient | undefined;
  private readonly subs = new SubscriptionIndex<Listener>();
  private readonly filterQos = new Map<string, 0 | 1>();
  private spoolSeq = 0;
  private spooled: string[] = []; // file names, oldest first
  private flushing: Promise<void> | undefined;
  private stopped = false;
  /** Counters for status/tests. */
  readonly stats = { published: 0, spooled: 0, dropped: 0, flushed: 0 };

  constructor(private readonly opts: BridgeOptions) {}

  get connected(): boolean {
    return this.client?.connected ?? false;
  }

  get spoolLength(): number {
    return this.spooled.length;
  }

  async start(): Promise<void> {
    await mkdir(this.opts.spoolDir, { recursive: true });
    this.spooled = (await readdir(this.opts.spoolDir)).filter((f) => /^\d{12}\.json$/.test(f)).sort();
    if (this.spooled.length) this.spoolSeq = Number(this.spooled[this.spooled.length - 1]!.slice(0, 12));
    const client = mqtt.connect(this.opts.url, {
      clientId: this.opts.clientId,
      reconnectPeriod: this.opts.reconnectPeriodMs ?? 1000,
      connectTimeout: 5000,
      clean: true,
      resubscribe: true,
    });
    this.client = client;
    client.on('connect', () => {
      this.opts.logger.info({ url: this.opts.url, spooled: this.spooled.length }, 'iot core bridge connected');
      void this.flush();
    });
    client.on('offline', () => this.opts.logger.warn({ url: this.opts.url }, 'iot core bridge offline; spooling'));
    client.on('error', (e) => this.opts.logger.debug({ err: e.message }, 'iot core bridge error'));
    client.on('message', (topic, payload, packet) => {
      for (const [, listeners] of this.subs.matchFilters(topic)) for (const l of listeners) l(topic, payload, packet.retain);
    });
    // Do not wait for the broker: components may publish (and spool) before it is reachable.
  }

  async stop(): Promise<void> {
    this.stopped = true;
    const c = this.client;
    this.client = undefined;
    // stopping: a forced end closes the connection even when it reports an error
    if (c) await c.endAsync(true).catch(() => {});
  }

  async publish(m: OutgoingMessage): Promise<void> {
    const c = this.client;
    if (c && c.connected && this.spooled.length === 0 && !this.flushing) {
      this.stats.published++;
      // Handed to mqtt.js: it keeps unacknowledged QoS 1 messages and resends them on reconnect.
      c.publish(m.topic, m.payload, { qos: m.qos, retain: m.retain ?? false }, (e) => {
        if (e) this.opts.logger.warn({ topic: m.topic, err: e.message }, 'iot core publish failed');
      });
      return;
    }
    if (m.qos === 0 && !this.opts.keepQos0WhenOffline) {
      this.stats.dropped++;
      this.opts.logger.debug({ topic: m.topic }, 'iot core offline; dropping QoS 0 message');
      return;
    }
    const name = String(++this.spoolSeq).padStart(12, '0') + '.json';
    const rec: SpoolRecord = { topic: m.topic, payload: m.payload.toString('base64'), qos: m.qos, retain: m.retain ?? false };
    await writeFileAtomic(join(this.opts.spoolDir, name), JSON.stringify(rec));
    this.spooled.push(name);
    this.stats.spooled++;
    if (c?.connected) void this.flush();
  }

  /** Subscribe `listener` to `filter`; returns the unsubscribe function. */
  async subscribe(filter: string, qos: 0 | 1, listener: Listener): Promise<() => void> {
    const first = this.subs.count(filter) === 0;
    this.subs.add(filter, listener);
    const prevQos = this.filterQos.get(filter) ?? -1;
    if (first || qos > prevQos) {
      this.filterQos.set(filter, Math.max(qos, prevQos) as 0 | 1);
      const c = this.client;
      if (c) {
        const p = new Promise<void>((resolve) => c.subscribe(filter, { qos: this.filterQos.get(filter)! }, () => resolve()));
        // Offline: mqtt.js queues the SUBSCRIBE; do not hold the caller until the broker returns.
        if (c.connected) await p;
      }
    }
    return () => {
      this.subs.remove(filter, listener);
      if (this.subs.count(filter) === 0) {
        this.filterQos.delete(filter);
        this.client?.unsubscribe(filter);
      }
    };
  }

  private flush(): Promise<void> {
    this.flushing ??= this.doFlush().finally(() => {
      this.flushing = undefined;
    });
    return this.flushing;
  }

  private async doFlush(): Promise<void> {
    while (this.spooled.length && !this.stopped) {
      const c = this.client;
      if (!c?.connected) return;
      const name = this.spooled[0]!;
      const path = join(this.opts.spoolDir, name);
      let rec: SpoolRecord;
      try {
        rec = JSON.parse(await readFile(path, 'utf8')) as SpoolRecord;
      } catch (e) {
        this.opts.logger.error({ file: path, err: (e as Error).message }, 'unreadable spool file; skipping it');
        this.spooled.shift();
        continue;
      }
      const ok = await new Promise<boolean>((resolve) =>
        c.publish(rec.topic, Buffer.from(rec.payload, 'base64'), { qos: rec.qos, retain: rec.retain }, (e) => resolve(!e)),
      );
      if (!ok) return; // connection dropped; the file stays for the next connect
      this.spooled.shift();
      this.stats.flushed++;
      if (existsSync(path)) await rm(path, { force: true });
    }
  }
}
