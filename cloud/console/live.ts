import mqtt, { type MqttClient } from 'mqtt';
import { LoupeError } from '../../lib/errors.js';

/**
 * What the devices say right now, for the console's live page: the latest inference telemetry of
 * each thing (`loupe/<thing>/telemetry`: frames/s, latency, defect rate per class) and the most
 * recent defect results (`loupe/<thing>/results` with verdict fail: boxes, frame path), from the
 * broker the fleet publishes to (IoT Core, or the embedded broker).
 */
export interface DefectResult {
  thing: string;
  frameId: string;
  time: string;
  path: string;
  width: number;
  height: number;
  detections: { xyxy: [number, number, number, number]; conf: number; name: string }[];
  model: { name?: string; version?: string } | null;
  receivedAt: string;
}

export interface ThingLive {
  thing: string;
  telemetry: Record<string, unknown> | null;
  telemetryAt: string | null;
  results: number;
  defects: number;
  lastResultAt: string | null;
}

export class LiveFeed {
  private readonly things = new Map<string, ThingLive>();
  private readonly recent: DefectResult[] = [];

  private constructor(
    private readonly client: MqttClient,
    private readonly keep: number,
  ) {
    client.on('message', (topic, payload) => this.onMessage(topic, payload));
  }

  static async connect(url: string, opts: { prefix?: string; keep?: number; timeoutMs?: number } = {}): Promise<LiveFeed> {
    const client = mqtt.connect(url, {
      clientId: `loupe-console-${process.pid}-${Math.random().toString(16).slice(2, 8)}`,
      reconnectPeriod: 1000,
      connectTimeout: opts.timeoutMs ?? 10_000,
    });
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => {
        client.end(true);
        reject(new LoupeError('CONSOLE_MQTT', `cannot reach the MQTT broker within ${opts.timeoutMs ?? 10_000} ms`, { input: url }));
      }, opts.timeoutMs ?? 10_000);
      client.once('connect', () => {
        clearTimeout(t);
        resolve();
      });
    });
    const prefix = opts.prefix ?? 'loupe';
    const feed = new LiveFeed(client, opts.keep ?? 24);
    await client.subscribeAsync([`${prefix}/+/telemetry`, `${prefix}/+/results`], { qos: 0 });
    return feed;
  }

  private thing(name: string): ThingLive {
    let t = this.things.get(name);
    if (!t) {
      t = { thing: name, telemetry: null, telemetryAt: null, results: 0, defects: 0, lastResultAt: null };
      this.things.set(name, t);
    }
    return t;
  }

  private onMessage(topic: string, payload: Buffer): void {
    const parts = topic.split('/');
    if (parts.length !== 3) return;
    let msg: Record<string, unknown>;
    try {
      msg = JSON.parse(payload.toString('utf8')) as Record<string, unknown>;
    } catch {
      return;
    }
    const t = this.thing(parts[1]!);
    const now = new Date().toISOString();
    if (parts[2] === 'telemetry' && (msg.component === undefined || msg.component === 'inference')) {
      t.telemetry = msg;
      t.telemetryAt = now;
    } else if (parts[2] === 'results') {
      t.results++;
      t.lastResultAt = now;
      if (msg.verdict !== 'fail') return;
      t.defects++;
      this.recent.unshift({
        thing: t.thing,
        frameId: String(msg.frameId ?? ''),
        time: String(msg.time ?? now),
        path: String(msg.path ?? ''),
        width: Number(msg.width ?? 0),
        height: Number(msg.height ?? 0),
        detections: Array.isArray(msg.detections) ? (msg.detections as DefectResult['detections']).slice(0, 100) : [],
        model: (msg.model as DefectResult['model']) ?? null,
        receivedAt: now,
      });
      this.recent.length = Math.min(this.recent.length, this.keep);
    }
  }

  snapshot(): { things: ThingLive[]; defects: DefectResult[] } {
    return { things: [...this.things.values()], defects: [...this.recent] };
  }

  /** The defect result with this frame, if it is among the recent ones (the only frames the console serves). */
  defect(thing: string, frameId: string): DefectResult | undefined {
    return this.recent.find((r) => r.thing === thing && r.frameId === frameId);
  }

  async close(): Promise<void> {
    await this.client.endAsync(true);
  }
}
