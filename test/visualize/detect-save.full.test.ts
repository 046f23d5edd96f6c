import { spawnSync } from 'node:child_process';
import { createReadStream, existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { datasetDir, projectRoot } from '../../lib/paths.js';
import { runCli } from '../helpers/cli.js';
import { runPython } from '../helpers/python.js';

// `loupe detect --save/--save-txt` on images, a video file and an HTTP stream: annotated pictures
// with boxes where the detections are, YOLO txt as ultralytics' own save_txt writes it (checked
// against ultralytics predict on the same ONNX model), and the speed line.

const model = join(projectRoot, 'models', 'metal-tags', 'model.onnx');
const art = join(projectRoot, 'test-artifacts', 'detect');
let dir: string;
let images: string;
let video: string;
let server: Server;
let url: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'loupe-detect-save-'));
  images = join(dir, 'images');
  await mkdir(images);
  const bad = join(datasetDir('metal-tags'), 'bad');
  for (const f of readdirSync(bad).sort().slice(0, 4)) await copyFile(join(bad, f), join(images, f));
  // A 4-frame video of those photos (MJPEG in AVI: every frame an intra frame, near-lossless).
  video = join(dir, 'tags.avi');
  const ff = spawnSync('ffmpeg', [
    '-hide_banner',
    '-loglevel',
    'error',
    '-framerate',
    '2',
    '-pattern_type',
    'glob',
    '-i',
    join(images, '*.jpg'),
    '-c:v',
    'mjpeg',
    '-q:v',
    '2',
    video,
  ]);
  expect(ff.status, ff.stderr?.toString()).toBe(0);
  server = createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'video/x-msvideo', 'content-length': statSync(video).size });
    createReadStream(video).pipe(res);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/tags.avi`;
}, 120_000);

afterAll(async () => {
  await new Promise((r) => server?.close(r));
  await rm(dir, { recursive: true, force: true });
});

interface Line {
  image: string;
  frame?: number;
  width: number;
  height: number;
  detections: { xyxy: number[]; conf: number; cls: number; name: string }[];
}

describe('loupe detect --save', () => {
  it('writes annotated images with boxes where the detections are, YOLO txt that matches them, and a speed line', async () => {
    const out = join(dir, 'out');
    const r = await runCli(['detect', images, '--model', model, '--save', out, '--save-txt', '--save-conf', '--json'], {
      timeoutMs: 120_000,
    });
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Line);
    expect(lines).toHaveLength(4);
    expect(r.stderr).toMatch(/"msg":"speed per image"/);
    expect(r.stderr).toMatch(/"inferenceMs":[\d.]+/);
    for (const l of lines) {
      const name = l.image.split('/').pop()!;
      const pic = join(out, name);
      const meta = await sharp(pic).metadata();
      expect([meta.width, meta.height]).toEqual([l.width, l.height]);
      // The box outline is drawn in the class colour (ultralytics' #FF3838 for class 0): look at
      // the middle of each box's top edge, which must be strongly red on the annotated picture.
      const { data, info } = await sharp(pic).raw().toBuffer({ resolveWithObject: true });
      for (const d of l.detections) {
        const x = Math.round((d.xyxy[0]! + d.xyxy[2]!) / 2);
        const y = Math.min(info.height - 1, Math.round(d.xyxy[1]!) + 1);
        const i = (y * info.width + x) * info.channels;
        // (JPEG softens a 2-pixel line: red clearly above green and blue rather than pure #FF3838)
        expect(data[i]! - data[i + 1]!, `${name} box at ${x},${y}: rgb ${data[i]},${data[i + 1]},${data[i + 2]}`).toBeGreaterThan(70);
        expect(data[i]! - data[i + 2]!).toBeGreaterThan(70);
      }
      const txt = join(out, 'labels', name.replace(/\.jpg$/, '.txt'));
      if (!l.detections.length) {
        expect(existsSync(txt)).toBe(false);
        continue;
      }
      const rows = readFileSync(txt, 'utf8')
        .trim()
        .split('\n')
        .map((t) => t.split(' ').map(Number));
      expect(rows).toHaveLength(l.detections.length);
      rows.forEach(([cls, cx, cy, w, h, conf], k) => {
        const d = l.detections[k]!;
        expect(cls).toBe(d.cls);
        expect(cx! * l.width).toBeCloseTo((d.xyxy[0]! + d.xyxy[2]!) / 2, 2);
        expect(cy! * l.height).toBeCloseTo((d.xyxy[1]! + d.xyxy[3]!) / 2, 2);
        expect(w! * l.width).toBeCloseTo(d.xyxy[2]! - d.xyxy[0]!, 2);
        expect(h! * l.height).toBeCloseTo(d.xyxy[3]! - d.xyxy[1]!, 2);
        expect(conf).toBeCloseTo(d.conf, 5);
      });
    }
    // Kept for people: the first annotated picture.
    await mkdir(art, { recursive: true });
    const first = lines.find((l) => l.detections.length)!;
    await sharp(join(out, first.image.split('/').pop()!))
      .png()
      .toFile(join(art, 'detect-annotated.png'));
  });

  it('--save-txt writes what ultralytics save_txt writes for the same model and images', async () => {
    const ours = join(dir, 'ours');
    const r = await runCli(['detect', images, '--model', model, '--save', ours, '--save-txt', '--save-conf'], { timeoutMs: 120_000 });
    expect(r.code, r.stderr).toBe(0);
    const theirs = join(dir, 'ultra');
    await runPython(
      `from ultralytics import YOLO\nYOLO(${JSON.stringify(model)}, task='detect').predict(${JSON.stringify(images)}, save_txt=True, save_conf=True, project=${JSON.stringify(theirs)}, name='p', exist_ok=True, verbose=False)`,
      { timeoutMs: 180_000 },
    );
    const theirLabels = join(theirs, 'p', 'labels');
    const names = readdirSync(theirLabels).sort();
    expect(readdirSync(join(ours, 'labels')).sort()).toEqual(names);
    for (const n of names) {
      const a = readFileSync(join(ours, 'labels', n), 'utf8')
        .trim()
        .split('\n');
      const b = readFileSync(join(theirLabels, n), 'utf8').trim().split('\n');
      expect(a.length, n).toBe(b.length);
      a.forEach((line, k) => {
        const x = line.split(' ');
        const y = b[k]!.split(' ');
        expect(x.length).toBe(y.length);
        // same %g formatting (6 significant digits); values agree to the detector's agreement tolerance
        for (const t of x) {
          expect(t).toMatch(/^-?\d+(\.\d+)?(e[-+]\d\d)?$/);
          expect(t.split('e')[0]!.replace(/[-.]/g, '').replace(/^0+/, '').length, t).toBeLessThanOrEqual(6);
        }
        x.forEach((v, i) => expect(Math.abs(Number(v) - Number(y[i]))).toBeLessThan(2e-3));
      });
    }
  }, 300_000);

  it('reads video files and stream URLs frame by frame (--vid-stride, --max-frames), saving one picture per frame', async () => {
    const out = join(dir, 'vid');
    const r = await runCli(['detect', video, '--model', model, '--save', out, '--json'], { timeoutMs: 120_000 });
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Line);
    expect(lines.map((l) => l.frame)).toEqual([0, 1, 2, 3]);
    expect(lines.every((l) => l.image === video && l.width === 450 && l.height === 300)).toBe(true);
    expect(readdirSync(out).sort()).toEqual(['tags_0.jpg', 'tags_1.jpg', 'tags_2.jpg', 'tags_3.jpg']);
    // Frames decode near-losslessly: the same scratches are found as on the photos.
    const photos = (await runCli(['detect', images, '--model', model, '--json'])).stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Line);
    lines.forEach((l, k) => expect(Math.abs(l.detections.length - photos[k]!.detections.length)).toBeLessThanOrEqual(1));

    const s = await runCli(['detect', url, '--model', model, '--vid-stride', '2', '--max-frames', '1', '--json'], { timeoutMs: 120_000 });
    expect(s.code, s.stderr).toBe(0);
    const sl = s.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Line);
    expect(sl.map((l) => [l.image, l.frame])).toEqual([[url, 0]]);
  });

  it('refuses --save-txt without --save, and names an unreadable video', async () => {
    const a = await runCli(['detect', images, '--model', model, '--save-txt']);
    expect(a.code).toBe(1);
    expect(a.stderr).toContain('--save-txt: needs --save DIR');
    const broken = join(dir, 'broken.mp4');
    await writeFile(broken, 'not a video\n');
    const b = await runCli(['detect', broken, '--model', model]);
    expect(b.code).toBe(1);
    expect(b.stderr).toContain(broken);
  });
});
