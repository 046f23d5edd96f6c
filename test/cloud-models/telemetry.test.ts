import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import mqtt from 'mqtt';
import { startBroker, type EmbeddedBroker } from '../../embedded/broker/broker.js';
import { FleetTelemetry } from '../../cloud/publish/telemetry.js';

/** Devices here are plain MQTT clients publishing what loupe.Inference publishes (topics and shapes from contracts/topics.ts). */
describe('fleet telemetry over MQTT (real broker)', () => {
  let broker: EmbeddedBroker;
  beforeAll(async () => {
    broker = await startBroker({ port: 0 });
  });
  afterAll(async () => {
    await broker.stop();
  });

  it('confirms a model only when every expected device reports it in telemetry and results', async () => {
    const t = await FleetTelemetry.connect(broker.url);
    const dev = await mqtt.connectAsync(broker.url, { clientId: 'line-1-dev' });
    try {
      const old = { name: 'metal-tags', version: '1.0.0', sha256: 'a'.repeat(64) };
      const neu = { name: 'metal-tags', version: '1.0.1', sha256: 'b'.repeat(64) };
      const progress: [number, number][] = [];
      const waiting = t.waitForModel({
        sha256: neu.sha256,
        things: ['line-1', 'line-2'],
        minResults: 2,
        timeoutMs: 10_000,
        onProgress: (d, n) => progress.push([d, n]),
      });
      const pub = (topic: string, m: unknown) => dev.publishAsync(topic, JSON.stringify(m), { qos: 1 });
      await pub('loupe/line-1/telemetry', { component: 'inference', model: old, fps: 2 });
      await pub('loupe/line-1/results', { frameId: 'f1', verdict: 'fail', model: old });
      await pub('loupe/line-1/telemetry', { component: 'inference', model: neu, fps: 2 });
      await pub('loupe/line-1/results', { frameId: 'f2', verdict: 'pass', model: neu });
      await pub('loupe/line-1/results', { frameId: 'f3', verdict: 'fail', model: neu });
      await pub('loupe/line-2/telemetry', { component: 'camera', frames: 3 }); // not inference: ignored
      await pub('loupe/line-2/results', { frameId: 'g1', verdict: 'pass', model: neu });
      await new Promise((r) => setTimeout(r, 300));
      expect(progress.at(-1)).toEqual([1, 2]); // line-2 has one result so far
      await pub('loupe/line-2/results', { frameId: 'g2', verdict: 'pass', model: neu });
      const res = await waiting;
      expect(
        res.devices.map((d) => [d.thing, d.model?.version, d.results[neu.sha256], d.fails[neu.sha256] ?? 0, d.results[old.sha256] ?? 0]),
      ).toEqual([
        ['line-1', '1.0.1', 2, 1, 1],
        ['line-2', '1.0.1', 2, 0, 0],
      ]);
    } finally {
      await dev.endAsync();
      await t.close();
    }
  });

  it('times out naming what each device reported', async () => {
    const t = await FleetTelemetry.connect(broker.url);
    try {
      await expect(t.waitForModel({ sha256: 'c'.repeat(64), things: ['line-9'], timeoutMs: 300 })).rejects.toThrow(
        /line-9: devices did not report model cccccccccccc within 300 ms/,
      );
    } finally {
      await t.close();
    }
  });

  it('names the broker it cannot reach', async () => {
    await expect(FleetTelemetry.connect('mqtt://127.0.0.1:9', { connectTimeoutMs: 500 })).rejects.toThrow(
      /mqtt:\/\/127\.0\.0\.1:9: cannot reach the MQTT broker/,
    );
  });
});
