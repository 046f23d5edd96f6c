import { copyFile, mkdtemp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LoupeError } from '../../lib/errors.js';
import { datasetDir, requireDataset } from '../../lib/paths.js';
import { decodeImage } from '../../components/detector/decode.js';
import { Detector } from '../../components/detector/detector.js';
import { runCli } from '../helpers/cli.js';
import { fixtureModel } from '../helpers/models.js';

// The Detector API's behaviour beyond agreement (which agreement.test.ts covers): inputs of every
// kind, concurrency, options, disposal; and `loupe detect`'s handling of folders and bad images.

let tmp: string;
let det: Detector;
let neu: Detector;
const images: string[] = [];

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'loupe-detect-'));
  const dir = join(datasetDir('metal-tags'), 'bad');
  images.push(
    ...readdirSync(dir)
      .sort()
      .slice(0, 8)
      .map((f) => join(dir, f)),
  );
  det = await Detector.load(await fixtureModel('metal-tags'));
  neu = await Detector.load(await fixtureModel('neu-det'));
});

afterAll(async () => {
  await det.dispose();
  await neu.dispose();
  await rm(tmp, { recursive: true, force: true });
});

describe('Detector', () => {
  it('exposes what the model is', () => {
    expect(det.info).toMatchObject({
      names: ['scratch'],
      imgsz: [480, 480],
      stride: 32,
      dynamic: false,
      nmsExport: false,
      fp16: false,
      inputName: 'images',
      outputName: 'output0',
    });
    expect(Object.isFrozen(det.info)).toBe(true);
  }, 600_000);

  it('gives the same result for a path, encoded bytes and decoded RGB', async () => {
    const a = await det.detect(images[0]);
    const b = await det.detect(await readFile(images[0]));
    const c = await det.detect(await decodeImage(images[0]));
    expect(a.detections.length).toBeGreaterThan(0);
    expect(b.detections).toEqual(a.detections);
    expect(c.detections).toEqual(a.detections);
    expect([a.width, a.height]).toEqual([450, 300]);
    for (const d of a.detections) {
      expect(d.name).toBe('scratch');
      expect(d.conf).toBeGreaterThan(0.25);
      expect(d.xyxy[0]).toBeGreaterThanOrEqual(0);
      expect(d.xyxy[2]).toBeLessThanOrEqual(450);
      expect(d.xyxy[3]).toBeLessThanOrEqual(300);
    }
    for (const k of ['decodeMs', 'preprocessMs', 'inferenceMs', 'postprocessMs', 'totalMs'] as const)
      expect(a.timings[k]).toBeGreaterThanOrEqual(0);
    expect(a.timings.inferenceMs).toBeGreaterThan(0);
  }, 600_000);

  it('is safe under concurrent calls (results equal the serial ones, in any interleaving)', async () => {
    const serial: Awaited<ReturnType<typeof det.detect>>['detections'][] = [];
    for (const f of images) serial.push((await det.detect(f)).detections);
    const mixed = await Promise.all([...images, ...images].map((f, i) => det.detect(f, i % 2 ? { conf: 0.25 } : {})));
    mixed.forEach((r, i) => expect(r.detections).toEqual(serial[i % images.length]));
  }, 600_000);

  it('keeps one image size cache from leaking into the next (different sizes back to back)', async () => {
    const small = join(tmp, 'crop.png');
    const sharp = (await import('sharp')).default;
    await sharp(images[1]).extract({ left: 10, top: 20, width: 211, height: 97 }).toFile(small);
    const before = await det.detect(images[1]);
    await det.detect(small);
    const after = await det.detect(images[1]);
    expect(after.detections).toEqual(before.detections);
  }, 600_000);

  it('applies class filters and per-class thresholds by name or id', async () => {
    // an image where the model sees more than one class at conf 0.01
    const dir = join(requireDataset('neu-det'), 'IMAGES');
    let f = '';
    let all = { detections: [] as Array<{ name: string; conf: number }> };
    let classes = new Set<string>();
    for (const name of readdirSync(dir)
      .sort()
      .filter((_, i) => i % 37 === 0)) {
      f = join(dir, name);
      all = await neu.detect(f, { conf: 0.01 });
      classes = new Set(all.detections.map((d) => d.name));
      if (classes.size > 1) break;
    }
    expect(classes.size).toBeGreaterThan(1);
    const [keep] = [...classes];
    const only = await neu.detect(f, { conf: 0.01, classes: [keep] });
    expect(only.detections).toEqual(all.detections.filter((d) => d.name === keep));
    const byId = await neu.detect(f, { conf: 0.01, classes: [neu.info.names.indexOf(keep)] });
    expect(byId.detections).toEqual(only.detections);
    const strict = await neu.detect(f, { conf: 0.01, classConf: { [keep]: 0.5 } });
    expect(strict.detections).toEqual(all.detections.filter((d) => d.name !== keep || d.conf > 0.5));
    const capped = await neu.detect(f, { conf: 0.01, maxDet: 2 });
    expect(capped.detections).toEqual(all.detections.slice(0, 2));
  }, 600_000);

  it('val mode: multi-label at conf 0.001 (more boxes than predict at the same threshold)', async () => {
    const f = join(requireDataset('neu-det'), 'IMAGES', readdirSync(join(requireDataset('neu-det'), 'IMAGES')).sort()[700]);
    const val = await neu.detect(f, { mode: 'val' });
    const pred = await neu.detect(f, { mode: 'predict', conf: 0.001 });
    expect(val.detections.length).toBeGreaterThan(pred.detections.length);
    expect(val.detections.every((d) => d.conf > 0.001)).toBe(true);
  }, 600_000);

  it('refuses bad options and bad images with errors that name them', async () => {
    const cases: Array<[() => Promise<unknown>, RegExp]> = [
      [() => det.detect(images[0], { conf: 1.5 }), /^conf: must be a number from 0 to 1/],
      [() => det.detect(images[0], { iou: -0.1 }), /^iou: /],
      [() => det.detect(images[0], { maxDet: 0 }), /^max-det: must be a positive integer/],
      [() => det.detect(images[0], { classes: ['dent'] }), /^classes: unknown class "dent"; the model's classes are 0=scratch/],
      [() => det.detect(images[0], { classConf: { scratch: 2 } }), /^class-conf scratch: /],
      [() => det.detect(join(tmp, 'missing.jpg')), /missing\.jpg: image file not found/],
      [() => det.detect(Buffer.from('not an image')), /<image buffer>: not a readable image/],
    ];
    for (const [fn, msg] of cases) {
      const e = await fn().then(
        () => undefined,
        (x: unknown) => x,
      );
      expect(e, String(msg)).toBeInstanceOf(LoupeError);
      expect((e as Error).message).toMatch(msg);
    }
    // and keeps working afterwards
    expect((await det.detect(images[0])).detections.length).toBeGreaterThan(0);
  }, 600_000);

  it('refuses work after dispose', async () => {
    const d = await Detector.load(await fixtureModel('metal-tags'));
    await d.warmup();
    await d.dispose();
    await expect(d.detect(images[0])).rejects.toThrow(/was disposed/);
  }, 600_000);
});

describe('loupe detect', () => {
  it('expands folders, reports unreadable images on stderr, keeps going, exits 1', async () => {
    const dir = join(tmp, 'line');
    await mkdir(dir);
    await copyFile(images[0], join(dir, 'a.jpg'));
    await writeFile(join(dir, 'b.jpg'), Buffer.from('truncated garbage'));
    await copyFile(images[2], join(dir, 'c.JPG'));
    const jpeg = await readFile(images[3]);
    await writeFile(join(dir, 'd.jpg'), jpeg.subarray(0, 200)); // cut off inside the header
    await writeFile(join(dir, 'notes.txt'), 'not an image, ignored');
    const r = await runCli(['detect', dir, join(tmp, 'nope.jpg'), '--model', await fixtureModel('metal-tags'), '--json']);
    expect(r.code).toBe(1);
    const lines = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { image: string; detections: unknown[] });
    expect(lines.map((l) => l.image)).toEqual([join(dir, 'a.jpg'), join(dir, 'c.JPG')]);
    expect(r.stderr).toContain(`loupe: ${join(dir, 'b.jpg')}: not a readable image`);
    expect(r.stderr).toContain(`loupe: ${join(dir, 'd.jpg')}: not a readable image`);
    expect(r.stderr).toContain(`loupe: ${join(tmp, 'nope.jpg')}: no such file or folder`);
    expect(r.stderr).toContain('loupe: 3 images could not be read');
    const ref = await det.detect(images[0]);
    expect(lines[0].detections).toEqual(ref.detections);
  }, 600_000);

  it('takes --classes, --class-conf, --max-det, --conf, --iou; refuses bad values before running', async () => {
    const model = await fixtureModel('metal-tags');
    const ok = await runCli([
      'detect',
      images[0],
      '--model',
      model,
      '--json',
      '--conf',
      '0.1',
      '--iou',
      '0.5',
      '--max-det',
      '1',
      '--classes',
      'scratch',
      '--class-conf',
      'scratch=0.2',
    ]);
    expect(ok.code, ok.stderr).toBe(0);
    const line = JSON.parse(ok.stdout) as { detections: Array<{ conf: number }> };
    const ref = await det.detect(images[0], { conf: 0.1, iou: 0.5, maxDet: 1, classConf: { scratch: 0.2 } });
    expect(line.detections).toEqual(ref.detections);
    expect(line.detections.length).toBe(1);
    for (const [args, msg] of [
      [['--conf', 'x'], /--conf/],
      [['--class-conf', 'scratch:0.3'], /--class-conf/],
      [['--classes', 'dent'], /classes: unknown class "dent"/],
      [['--imgsz', '640'], /does not fit the model's fixed input 480x480/],
      [['--max-det', '0'], /--max-det/],
    ] as const) {
      const r = await runCli(['detect', images[0], '--model', model, '--json', ...args]);
      expect(r.code, args.join(' ')).not.toBe(0);
      expect(r.stdout).toBe('');
      expect(r.stderr).toMatch(msg);
    }
  }, 600_000);

  it('--sessions 2 runs images two at a time and prints them in input order, as one single-threaded session does', async () => {
    const model = await fixtureModel('metal-tags');
    const [a, b] = await Promise.all([
      runCli(['detect', ...images.slice(0, 6), '--model', model, '--json', '--sessions', '2']),
      runCli(['detect', ...images.slice(0, 6), '--model', model, '--json', '--threads', '1']),
    ]);
    expect(a.code, a.stderr).toBe(0);
    expect(b.code, b.stderr).toBe(0);
    expect(
      a.stdout
        .trim()
        .split('\n')
        .map((l) => (JSON.parse(l) as { image: string }).image),
    ).toEqual(images.slice(0, 6));
    expect(a.stdout).toBe(b.stdout);
    const bad = await runCli(['detect', images[0], '--model', model, '--json', '--sessions', '0']);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/--sessions/);
  }, 600_000);

  it('prints a readable summary without --json', async () => {
    const r = await runCli(['detect', images[0], '--model', await fixtureModel('metal-tags')]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^.*\(450x300\): \d+ detections?\n {2}scratch 0\.\d{3} \[/);
  }, 600_000);
});
