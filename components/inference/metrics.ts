import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/**
 * loupe.Inference's figures in Prometheus' text exposition format, beside its MQTT telemetry:
 * `GET /metrics` on `metrics.host:metrics.port` (configuration; off unless a port is set, and on
 * 127.0.0.1 unless a host is named, since a device's ports are not for everyone). prom-client is
 * the Prometheus client for Node.js; its default process metrics (CPU, RSS, event-loop lag, GC)
 * come along under the `loupe_inference_` prefix.
 *
 *   loupe_frames_total{verdict}                    frames inferred, by verdict (pass, fail, error)
 *   loupe_frames_with_defect_total{class}          frames with at least one detection of the class
 *   loupe_detections_total{class}                  detections, by class
 *   loupe_frame_latency_seconds                    capture → result (histogram)
 *   loupe_inference_seconds                        decode + detector time (histogram)
 *   loupe_queue_depth, loupe_queue_dropped_total, loupe_duplicate_frames_total
 *   loupe_model_info{name,version,precision,sha256} 1 for the model serving
 */
export class InferenceMetrics {
  readonly registry = new Registry();
  private readonly frames = new Counter({
    name: 'loupe_frames_total',
    help: 'Frames inferred, by verdict',
    labelNames: ['verdict'] as const,
    registers: [this.registry],
  });
  private readonly defects = new Counter({
    name: 'loupe_frames_with_defect_total',
    help: 'Frames with at least one detection of the class',
    labelNames: ['class'] as const,
    registers: [this.registry],
  });
  private readonly detections = new Counter({
    name: 'loupe_detections_total',
    help: 'Detections, by class',
    labelNames: ['class'] as const,
    registers: [this.registry],
  });
  private readonly latency = new Histogram({
    name: 'loupe_frame_latency_seconds',
    help: 'Capture to result',
    buckets: [0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });
  private readonly infer = new Histogram({
    name: 'loupe_inference_seconds',
    help: 'Decode and detector time per frame',
    buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [this.registry],
  });
  private readonly model = new Gauge({
    name: 'loupe_model_info',
    help: 'The model serving (value 1)',
    labelNames: ['name', 'version', 'precision', 'sha256'] as const,
    registers: [this.registry],
  });

  constructor(probe: { queueDepth(): number; dropped(): number; duplicates(): number }) {
    collectDefaultMetrics({ register: this.registry, prefix: 'loupe_inference_' });
    new Gauge({
      name: 'loupe_queue_depth',
      help: 'Frames waiting for inference',
      registers: [this.registry],
      collect() {
        this.set(probe.queueDepth());
      },
    });
    new Gauge({
      name: 'loupe_queue_dropped_total',
      help: 'Frames dropped by the bounded queue since start',
      registers: [this.registry],
      collect() {
        this.set(probe.dropped());
      },
    });
    new Gauge({
      name: 'loupe_duplicate_frames_total',
      help: 'Frame announcements answered from the recent results',
      registers: [this.registry],
      collect() {
        this.set(probe.duplicates());
      },
    });
  }

  frame(verdict: string, latencyMs: number, inferMs: number, classes: string[]): void {
    this.frames.inc({ verdict });
    if (verdict === 'error') return;
    this.latency.observe(latencyMs / 1000);
    this.infer.observe(inferMs / 1000);
    for (const c of classes) this.detections.inc({ class: c });
    for (const c of new Set(classes)) this.defects.inc({ class: c });
  }

  serving(m: { name: string; version: string; precision?: string; sha256?: string } | undefined): void {
    this.model.reset();
    if (m) this.model.set({ name: m.name, version: m.version, precision: m.precision ?? '', sha256: m.sha256 ?? '' }, 1);
  }
}

export interface MetricsServer {
  url: string;
  close(): Promise<void>;
}

/** Serve `GET /metrics` from `registry`; everything else is 404. */
export async function serveMetrics(registry: Registry, port: number, host = '127.0.0.1'): Promise<MetricsServer> {
  const server: Server = createServer((req, res) => {
    if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: GET /metrics\n');
      return;
    }
    registry.metrics().then(
      (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
      (e: Error) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`${e.message}\n`),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const a = server.address() as AddressInfo;
  return {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${a.port}/metrics`,
    close: () => new Promise((r) => server.close(() => r())),
  };
}
