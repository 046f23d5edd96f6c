import mqtt, { type MqttClient } from 'mqtt';
import type { Logger } from 'pino';
import { LoupeError } from '../../lib/errors.js';
import { silentLogger } from '../../lib/log.js';

/**
 * The cloud side's view of which model each device runs, from what the devices say over MQTT
 * (IoT Core, or the embedded broker): loupe.Inference publishes `loupe/<thing>/telemetry`
 * ({component: 'inference', model: {name, version, sha256}, ...}) every few seconds and
 * `loupe/<thing>/results` per frame (each result names the model that produced it). A deployment
 * is confirmed when every expected device reports the new model — by its ONNX SHA-256, which
 * cannot be confused with another build — in telemetry and in at least `minResults` results.
 *
 *   const t = await FleetTelemetry.connect(mqttUrl)
 *   await t.waitForModel({ sha256, things: ['line-1'], minResults: 1, timeoutMs: 120_000 })
 *   t.devices()   // per thing: model, results seen per model sha, last telemetry
 *   await t.close()
 */
export interface DeviceView {
  thing: string;
  model: { name?: string; version?: string; sha256?: string } | null;
  lastTelemetryAt: string | null;
  lastResultAt: string | null;
  /** results seen since connecting, by model sha256 */
  results: Record<string, number>;
  /** defects (verdict fail) seen since connecting, by model sha256 */
  fails: Record<string, number>;
  telemetry: Record<string, unknown> | null;
}

export interface WaitResult {
  seconds: number;
  devices: DeviceView[];
}

export class FleetTelemetry {
  private readonly views = new Map<string, DeviceView>();
  private waiters = new Set<() => void>();

  private constructor(
    private readonly client: MqttClient,
    private readonly log: Logger,
  ) {
    client.on('message', (topic, payload) => this.onMessage(topic, payload));
  }

  static async connect(url: string, opts: { log?: Logger; prefix?: string; connectTimeoutMs?: number } = {}): Promise<FleetTelemetry> {
    const prefix = opts.prefix ?? 'loupe';
    const client = mqtt.connect(url, {
      clientId: `loupe-cloud-${process.pid}-${Math.random().toString(16).slice(2, 8)}`,
      reconnectPeriod: 1000,
      connectTimeout: opts.connectTimeoutMs ?? 10_000,
    });
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => {
        client.end(true);
        reject(
          new LoupeError('TELEMETRY_CONNECT', `cannot reach the MQTT broker within ${opts.connectTimeoutMs ?? 10_000} ms`, { input: url }),
        );
      }, opts.connectTimeoutMs ?? 10_000);
      client.once('connect', () => {
        clearTimeout(t);
        resolve();
      });
    });
    const t = new FleetTelemetry(client, opts.log ?? silentLogger);
    await client.subscribeAsync([`${prefix}/+/telemetry`, `${prefix}/+/results`], { qos: 1 });
    return t;
  }

  private view(thing: string): DeviceView {
    let v = this.views.get(thing);
    if (!v) {
      v = { thing, model: null, lastTelemetryAt: null, lastResultAt: null, results: {}, fails: {}, telemetry: null };
      this.views.set(thing, v);
    }
    return v;
  }

  private onMessage(topic: string, payload: Buffer): void {
    const parts = topic.split('/');
    if (parts.length !== 3) return;
    const [, thing, kind] = parts as [string, string, string];
    let msg: Record<string, unknown>;
    try {
      msg = JSON.parse(payload.toString('utf8')) as Record<string, unknown>;
    } catch {
      this.log.warn({ topic }, 'telemetry: ignoring a message that is not JSON');
      return;
    }
    const v = this.view(thing);
    const model = (msg.model && typeof msg.model === 'object' ? msg.model : null) as DeviceView['model'];
    if (kind === 'telemetry') {
      if (msg.component !== undefined && msg.component !== 'inference') return;
      v.telemetry = msg;
      v.lastTelemetryAt = new Date().toISOString();
      if (model) v.model = model;
    } else if (kind === 'results') {
      v.lastResultAt = new Date().toISOString();
      const sha = model?.sha256 ?? 'unknown';
      v.results[sha] = (v.results[sha] ?? 0) + 1;
      if (msg.verdict === 'fail') v.fails[sha] = (v.fails[sha] ?? 0) + 1;
      if (model) v.model = model;
    }
    for (const w of this.waiters) w();
  }

  devices(): DeviceView[] {
    return [...this.views.values()].sort((a, b) => a.thing.localeCompare(b.thing));
  }

  /** Resolve when every expected device reports the model (telemetry or results) and has `minResults` results with it. */
  async waitForModel(o: {
    sha256: string;
    things?: string[];
    minDevices?: number;
    minResults?: number;
    timeoutMs: number;
    signal?: AbortSignal;
    onProgress?: (done: number, total: number) => void;
  }): Promise<WaitResult> {
    const t0 = performance.now();
    const minResults = o.minResults ?? 1;
    const need = o.things?.length ?? o.minDevices ?? 1;
    const ok = (v: DeviceView) => v.model?.sha256 === o.sha256 && (v.results[o.sha256] ?? 0) >= minResults;
    const done = () => {
      const vs = o.things ? o.things.map((t) => this.views.get(t)).filter((v): v is DeviceView => !!v) : this.devices();
      return vs.filter(ok).length;
    };
    await new Promise<void>((resolve, reject) => {
      let last = -1;
      const check = () => {
        const n = done();
        if (n !== last) {
          last = n;
          o.onProgress?.(n, need);
        }
        if (n >= need) finish();
      };
      const timer = setTimeout(() => {
        const seen =
          this.devices()
            .map((v) => `${v.thing}: ${v.model?.sha256?.slice(0, 12) ?? 'no model'} (${v.results[o.sha256] ?? 0} results)`)
            .join('; ') || 'no device reported';
        finish(
          new LoupeError(
            'FLEET_NOT_CONFIRMED',
            `devices did not report model ${o.sha256.slice(0, 12)} within ${o.timeoutMs} ms (${seen})`,
            { input: o.things?.join(',') ?? 'fleet' },
          ),
        );
      }, o.timeoutMs);
      const onAbort = () => finish(new LoupeError('FLEET_WAIT_ABORTED', 'waiting for the fleet was interrupted', { input: 'fleet' }));
      o.signal?.addEventListener('abort', onAbort, { once: true });
      const finish = (e?: Error) => {
        clearTimeout(timer);
        o.signal?.removeEventListener('abort', onAbort);
        this.waiters.delete(check);
        if (e) reject(e);
        else resolve();
      };
      this.waiters.add(check);
      check();
    });
    return { seconds: (performance.now() - t0) / 1000, devices: this.devices() };
  }

  async close(): Promise<void> {
    await this.client.endAsync(true);
  }
}
