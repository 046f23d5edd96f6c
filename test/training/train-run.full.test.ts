import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readModelCard } from '../../contracts/model-card.js';
import { projectRoot } from '../../lib/paths.js';
import { runCli } from '../helpers/cli.js';
import { runPython } from '../helpers/python.js';
import { metalTagsSubset } from './yolo-fixture.js';

/**
 * The CI training run: a real, short ultralytics training on CPU (24 train / 8 val images of
 * metal-tags at 160 px, 2 epochs), from YOLO data set to best.pt, model.onnx, the trainer's val
 * numbers, loupe eval on the full test split (35 images) and card.json, through `loupe train`.
 * It runs with the network unreachable for Python: proxies pointing at a closed port and
 * train.py's audit hook refusing (and reporting) every non-loopback connection.
 */
const OFFLINE_ENV = {
  LOUPE_FORBID_NETWORK: '1',
  HTTPS_PROXY: 'http://127.0.0.1:9',
  HTTP_PROXY: 'http://127.0.0.1:9',
  https_proxy: 'http://127.0.0.1:9',
  http_proxy: 'http://127.0.0.1:9',
  ALL_PROXY: 'http://127.0.0.1:9',
  NO_PROXY: '',
};

let tmp: string;
let data: string;
let out: string;
let run: Awaited<ReturnType<typeof runCli>>;
let logs: { msg: string; level: number; [k: string]: unknown }[];

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'lt-run-'));
  data = await metalTagsSubset(join(tmp, 'data'), { limit: { train: 24, val: 8 } });
  out = join(tmp, 'out');
  const t0 = Date.now();
  run = await runCli(['train', '--data', data, '--epochs', '2', '--imgsz', '160', '--batch', '8', '--out', out, '--json'], {
    env: OFFLINE_ENV,
    timeoutMs: 900_000,
  });
  logs = run.stderr
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as { msg: string; level: number });
  await mkdir(join(projectRoot, 'test-artifacts', 'training'), { recursive: true });
  await writeFile(
    join(projectRoot, 'test-artifacts', 'training', 'short-run.json'),
    JSON.stringify(
      { wallSeconds: (Date.now() - t0) / 1000, exit: run.code, summary: run.stdout.trim() ? JSON.parse(run.stdout) : null },
      null,
      2,
    ),
  );
}, 900_000);

afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

describe('loupe train: a real short training, data set → ONNX → loupe eval → card', () => {
  it('succeeds offline and prints one JSON summary', () => {
    if (run.code !== 0) throw new Error(`loupe train exited ${run.code}:\n${run.stderr.slice(-3000)}`);
    const lines = run.stdout.trim().split('\n');
    expect(lines).toHaveLength(1);
    const s = JSON.parse(lines[0]!);
    expect(s.backend).toBe('local');
    expect(s.epochsRun).toBe(2);
    expect(s.secondsPerEpoch).toBeGreaterThan(0);
    for (const f of Object.values(s.files as Record<string, string>)) expect(existsSync(f), f).toBe(true);
    expect(existsSync(join(out, 'work'))).toBe(false); // ultralytics' run folder is cleaned up
  });

  it('made no network attempt (the audit hook would have reported one) and showed progress', () => {
    expect(run.stdout + run.stderr).not.toContain('network_attempt');
    expect(logs.some((l) => /network connection/.test(l.msg))).toBe(false);
    const started = logs.find((l) => l.msg === 'training started') as
      { hyp: Record<string, unknown>; counts: Record<string, { images: number }> } | undefined;
    expect(started?.hyp).toEqual({ warm_start: false, optimizer: 'auto', warmup_epochs: 3, close_mosaic: 10 });
    expect(started?.counts.train.images).toBe(24);
    // the overall bar's log lines (one per epoch, then its summary) and one validated line per epoch
    expect(logs.filter((l) => l.progress === 'train').map((l) => l.msg)).toEqual(['train 1/2', 'train 2/2', 'train 2/2 done']);
    const epochs = logs.filter((l) => /^epoch \d+\/\d+ validated$/.test(String(l.msg)));
    expect(epochs.map((l) => l.msg)).toEqual(['epoch 1/2 validated', 'epoch 2/2 validated']);
    for (const e of epochs)
      for (const k of ['box_loss', 'cls_loss', 'dfl_loss', 'P', 'R', 'mAP50', 'mAP50-95']) expect(typeof e[k], k).toBe('number');
  });

  it('exports a standard ultralytics ONNX (metadata intact) and results.csv per epoch', async () => {
    const meta = JSON.parse(
      await runPython(
        `import onnx, json\nm = onnx.load(${JSON.stringify(join(out, 'model.onnx'))})\nprint(json.dumps({'meta': {p.key: p.value for p in m.metadata_props}, 'input': [d.dim_value for d in m.graph.input[0].type.tensor_type.shape.dim], 'in': m.graph.input[0].name, 'out': m.graph.output[0].name}))`,
      ),
    );
    expect(meta.in).toBe('images');
    expect(meta.out).toBe('output0');
    expect(meta.input).toEqual([1, 3, 160, 160]);
    expect(meta.meta.names).toBe("{0: 'scratch'}");
    expect(meta.meta.imgsz).toBe('[160, 160]');
    expect(meta.meta.task).toBe('detect');
    const csv = readFileSync(join(out, 'results.csv'), 'utf8').trim().split('\n');
    expect(csv[0]).toContain('metrics/mAP50(B)');
    expect(csv).toHaveLength(3);
  });

  it("scores the ONNX with loupe eval on the test split, next to the trainer's val numbers, and writes the card", async () => {
    const s = JSON.parse(run.stdout);
    expect(s.test).toMatchObject({ evaluator: 'loupe eval', split: 'test', images: 35, instances: 73 });
    expect(s.val.map50).toBeGreaterThanOrEqual(0);
    // the same numbers `loupe eval` prints for that model and data set
    const ev = await runCli(['eval', '--model', join(out, 'model.onnx'), '--data', data, '--split', 'test', '--json'], {
      timeoutMs: 300_000,
    });
    expect(ev.code, ev.stderr).toBe(0);
    const e = JSON.parse(ev.stdout);
    expect(s.test.map50).toBeCloseTo(e.map50, 10);
    expect(s.test.map50_95).toBeCloseTo(e.map50_95, 10);

    const card = await readModelCard(join(out, 'card.json'));
    expect(card.classes).toEqual(['scratch']);
    expect(card.imgsz).toBe(160);
    expect(card.trainer).toMatchObject({
      name: 'ultralytics',
      version: '8.3.253',
      backend: 'local',
      device: 'cpu',
      base: 'yolov8n.yaml',
      epochsRun: 2,
      script: 'cloud/training/train.py',
    });
    expect(card.metrics.test).toEqual(s.test);
    expect(card.metrics.val?.map50).toBe(s.val.map50);
    expect(card.dataset.counts).toEqual({
      train: { images: 24, boxes: expect.any(Number) },
      val: { images: 8, boxes: expect.any(Number) },
      test: { images: 35, boxes: 73 },
    });
    expect(card.dataset.testImages).toHaveLength(35);
    expect(card.dataset.versionId).toMatch(/^[0-9a-f]{64}$/);
    expect(card.files.onnx.file).toBe('model.onnx');
    expect(card.command).toBe(
      `loupe train --data ${data} --base yolov8n.yaml --epochs 2 --imgsz 160 --batch 8 --patience 50 --seed 0 --out ${out}`,
    );
  });
});

describe('the offline guard is real', () => {
  it('train.py refuses and reports a non-loopback connection and name lookup', async () => {
    const outText = await runPython(
      [
        'import sys, socket',
        `sys.path.insert(0, ${JSON.stringify(join(projectRoot, 'cloud', 'training'))})`,
        'import train',
        'train.network_guard()',
        'for f in (lambda: socket.socket().connect(("192.0.2.1", 443)), lambda: socket.getaddrinfo("github.com", 443), lambda: socket.create_connection(("192.0.2.2", 80), timeout=1)):',
        '    try:',
        '        f()',
        '        print("CONNECTED")',
        '    except OSError as e:',
        '        print("refused:", e)',
        's = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(1)',
        'socket.create_connection(s.getsockname(), timeout=1).close(); print("loopback ok")',
      ].join('\n'),
    );
    expect(outText).not.toContain('CONNECTED');
    expect(outText).toContain('LOUPE_EVENT {"event": "network_attempt", "address": "(\'192.0.2.1\', 443)"}');
    expect(outText).toContain('refused: loupe: network access refused (offline trainer)');
    expect(outText).toContain('LOUPE_EVENT {"event": "network_attempt", "address": "github.com"');
    expect(outText).toContain('refused: loupe: name lookup refused (offline trainer): github.com');
    expect(outText).toContain('refused: loupe: name lookup refused (offline trainer): 192.0.2.2');
    expect(outText).toContain('loopback ok');
  });
});
