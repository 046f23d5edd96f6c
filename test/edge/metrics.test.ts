import { copyFile, mkdir, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inferenceConfigSchema } from '../../components/inference/config.js';
import { datasetDir } from '../../lib/paths.js';
import { startEdgeStack, type EdgeStack } from '../../embedded/stack/edge.js';
import { ensureBuilt, until } from '../helpers/edge.js';
import { tempRoot } from '../helpers/nucleus.js';

/**
 * The device stack's Prometheus endpoint (issue 13 §4): loupe.Inference on the local nucleus with
 * `metrics.port` configured serves GET /metrics; a scrape, parsed as Prometheus' text exposition
 * format by an independent parser, agrees with the results the device published on MQTT.
 */
interface Sample {
  labels?: Record<string, string>;
  value?: string;
  count?: string;
  buckets?: Record<string, string>;
}
interface Family {
  name: string;
  type: string;
  metrics: Sample[];
}

let root: string;
let stack: EdgeStack;
let watchDir: string;

beforeAll(async () => {
  ensureBuilt();
  root = tempRoot('lmetrics-');
  watchDir = join(root, 'camera-in');
  await mkdir(watchDir, { recursive: true });
  stack = await startEdgeStack({
    root: join(root, 'stack'),
    source: { type: 'folder', path: watchDir, mode: 'watch', pollMs: 100 },
    fps: 8,
    config: { inference: { metrics: { port: 0 } }, uploader: { policies: [{ type: 'failed' }] } },
  });
}, 300_000);

afterAll(async () => {
  await stack?.stop();
  if (root) await rm(root, { recursive: true, force: true });
});

async function scrape(url: string): Promise<{ text: string; type: string | null; families: Map<string, Family> }> {
  const res = await fetch(url);
  expect(res.status).toBe(200);
  const text = await res.text();
  const families = new Map((parsePrometheusTextFormat(text) as Family[]).map((f) => [f.name, f]));
  return { text, type: res.headers.get('content-type'), families };
}

describe('Prometheus /metrics on the device stack', () => {
  it('is off unless configured', () => {
    expect(inferenceConfigSchema.parse({}).metrics).toEqual({ host: '127.0.0.1' });
  });

  it('counts what the device published: frames by verdict, detections by class, latency histograms, the serving model', async () => {
    const url = await until(
      async () => {
        const log = await stack.nucleus.readLog('loupe.Inference');
        const line = log.split('\n').find((l) => l.includes('Prometheus metrics served'));
        return line ? (JSON.parse(line) as { url: string }).url : undefined;
      },
      120_000,
      'the inference component to log its metrics URL',
    );
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/);

    const ds = datasetDir('metal-tags');
    const pick = [
      ...(await readdir(join(ds, 'bad')))
        .sort()
        .slice(0, 4)
        .map((f) => join(ds, 'bad', f)),
      ...(await readdir(join(ds, 'good')))
        .sort()
        .slice(0, 3)
        .map((f) => join(ds, 'good', f)),
    ];
    for (const [i, f] of pick.entries()) await copyFile(f, join(watchDir, `${String(i).padStart(4, '0')}.jpg`));
    await until(
      () => stack.results.size >= pick.length,
      180_000,
      () => `results for ${pick.length} frames (have ${stack.results.size})`,
    );

    const results = [...stack.results.values()];
    const { text, type, families } = await scrape(url);
    expect(type).toMatch(/^text\/plain; version=0\.0\.4/);
    const byLabel = (name: string, label: string) =>
      Object.fromEntries((families.get(name)?.metrics ?? []).map((m) => [m.labels?.[label] ?? '', Number(m.value)]));

    const verdicts: Record<string, number> = {};
    for (const r of results) verdicts[r.verdict] = (verdicts[r.verdict] ?? 0) + 1;
    expect(families.get('loupe_frames_total')?.type).toBe('COUNTER');
    expect(byLabel('loupe_frames_total', 'verdict')).toEqual(verdicts);

    const dets: Record<string, number> = {};
    const framesWith: Record<string, number> = {};
    for (const r of results) {
      for (const d of r.detections) dets[d.name] = (dets[d.name] ?? 0) + 1;
      for (const n of new Set(r.detections.map((d) => d.name))) framesWith[n] = (framesWith[n] ?? 0) + 1;
    }
    expect(byLabel('loupe_detections_total', 'class')).toEqual(dets);
    expect(byLabel('loupe_frames_with_defect_total', 'class')).toEqual(framesWith);

    const lat = families.get('loupe_frame_latency_seconds')!;
    expect(lat.type).toBe('HISTOGRAM');
    const ok = results.filter((r) => r.verdict !== 'error');
    expect(Number(lat.metrics[0]!.count)).toBe(ok.length);
    expect(Number(lat.metrics[0]!.buckets!['10'])).toBeLessThanOrEqual(ok.length);
    expect(Number(families.get('loupe_inference_seconds')!.metrics[0]!.count)).toBe(ok.length);

    const model = families.get('loupe_model_info')!.metrics[0]!;
    expect(model.labels).toMatchObject({
      name: results[0]!.model.name,
      version: results[0]!.model.version,
      sha256: results[0]!.model.sha256,
    });
    expect(Number(model.value)).toBe(1);
    expect(families.get('loupe_queue_depth')?.type).toBe('GAUGE');
    // prom-client's process metrics come along, prefixed
    expect(families.has('loupe_inference_process_cpu_seconds_total')).toBe(true);
    expect(text).toContain('# HELP loupe_frames_total Frames inferred, by verdict');

    const other = await fetch(url.replace('/metrics', '/other'));
    expect(other.status).toBe(404);
  }, 300_000);
});
