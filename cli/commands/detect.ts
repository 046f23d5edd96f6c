import type { Command } from 'commander';
import { readdirSync, statSync } from 'node:fs';
import { extname, join, basename, resolve } from 'node:path';
import { LoupeError, errorMessage, isLoupeError } from '../../lib/errors.js';
import { createLogger } from '../../lib/log.js';
import { Detector, type DetectOptions, type DetectResult, type ImageInput } from '../../components/detector/detector.js';
import { readAhead } from '../../components/detector/read-ahead.js';
import { mkdir, writeFile } from 'node:fs/promises';
import { outputFormat, say } from '../../lib/terminal.js';
import { annotate, detectionBoxes } from '../../cloud/visualize/annotate.js';
import { isStreamUrl, isVideoFile, videoFrames } from '../../cloud/visualize/video-frames.js';
import { parseClassConf, parseClassList, parseImgsz, parseNames, parsePositiveInt, parseUnit } from '../../components/detector/options.js';
import { IMAGE_EXTENSIONS } from '../../cloud/dataset/yolo-read.js';

interface DetectCliOptions {
  model: string;
  conf: number;
  iou: number;
  imgsz?: number | [number, number];
  maxDet: number;
  classes?: string[];
  classConf?: Record<string, number>;
  names?: string[];
  threads?: number;
  sessions?: number;
  spinning?: boolean;
  save?: string;
  saveTxt?: boolean;
  saveConf?: boolean;
  vidStride: number;
  maxFrames?: number;
  json?: boolean;
}

type Item = { path: string; kind: 'image' | 'video' | 'stream'; error?: LoupeError };

/** Expand folders to the images and videos directly inside them (sorted, as ultralytics' loader does); URLs are streams. */
function expand(paths: string[]): Item[] {
  const out: Item[] = [];
  for (const p of paths) {
    if (isStreamUrl(p)) {
      out.push({ path: p, kind: 'stream' });
      continue;
    }
    let isDir = false;
    try {
      isDir = statSync(p).isDirectory();
    } catch {
      out.push({ path: p, kind: 'image', error: new LoupeError('IMAGE_MISSING', 'no such file or folder', { input: p }) });
      continue;
    }
    if (!isDir) {
      out.push({ path: p, kind: isVideoFile(p) ? 'video' : 'image' });
      continue;
    }
    const files = readdirSync(p)
      .filter((name) => IMAGE_EXTENSIONS.has(extname(name).toLowerCase()) || isVideoFile(name))
      .map((name) => join(p, name))
      .filter((f) => {
        try {
          return statSync(f).isFile(); // follows symlinks
        } catch {
          return false;
        }
      })
      .sort();
    if (files.length === 0)
      out.push({ path: p, kind: 'image', error: new LoupeError('IMAGE_NONE', 'folder holds no images or videos', { input: p }) });
    for (const f of files) out.push({ path: f, kind: isVideoFile(f) ? 'video' : 'image' });
  }
  return out;
}

function human(path: string, r: DetectResult, frame?: number): string {
  const dets = r.detections.map((d) => `  ${d.name} ${d.conf.toFixed(3)} [${d.xyxy.map((v) => v.toFixed(1)).join(', ')}]`);
  return [
    `${path}${frame === undefined ? '' : ` frame ${frame}`} (${r.width}x${r.height}): ${r.detections.length} detection${r.detections.length === 1 ? '' : 's'}`,
    ...dets,
  ].join('\n');
}

/** printf's %g with 6 significant digits (Python's "%g"), as ultralytics formats save_txt values. */
export function formatG(x: number): string {
  if (x === 0) return '0';
  const exp = Math.floor(Math.log10(Math.abs(x)));
  if (exp < -4 || exp >= 6) {
    const [m, e] = x.toExponential(5).split('e');
    const mant = m!.includes('.') ? m!.replace(/0+$/, '').replace(/\.$/, '') : m!;
    const n = Number(e);
    return `${mant}e${n < 0 ? '-' : '+'}${String(Math.abs(n)).padStart(2, '0')}`;
  }
  const t = x.toPrecision(6);
  return t.includes('.') ? t.replace(/0+$/, '').replace(/\.$/, '') : t;
}

/** YOLO txt lines as ultralytics' Results.save_txt writes them: "cls cx cy w h [conf]", normalised. */
export function yoloTxt(r: DetectResult, withConf: boolean): string {
  return r.detections
    .map((d) => {
      const [x1, y1, x2, y2] = d.xyxy;
      const v = [
        d.cls,
        (x1 + x2) / 2 / r.width,
        (y1 + y2) / 2 / r.height,
        (x2 - x1) / r.width,
        (y2 - y1) / r.height,
        ...(withConf ? [d.conf] : []),
      ];
      return v.map(formatG).join(' ');
    })
    .map((l) => `${l}\n`)
    .join('');
}

/**
 * `loupe detect PATH... --model M`: one JSON line per image on stdout (DESIGN.md contract), boxes in
 * original-image pixels. PATH may be an image, a folder, a video file or a stream URL (video
 * frames add "frame" to their line). --save DIR writes annotated images (boxes, class, score),
 * --save-txt YOLO txt labels as ultralytics does, and the speed line goes to stderr. Unreadable
 * images get an error line on stderr; the rest still run, and the exit code is 1 if any failed.
 */
export function register(program: Command): void {
  program
    .command('detect')
    .argument('<path...>', 'image files, folders, video files or stream URLs (rtsp://, http://, ...)')
    .description('detect objects in images, videos and streams with a YOLOv8 ONNX model (agrees with ultralytics predict)')
    .requiredOption('--model <onnx>', 'ultralytics YOLOv8 detection export (.onnx)')
    .option('--conf <x>', 'confidence threshold (strictly greater passes)', parseUnit, 0.25)
    .option('--iou <x>', 'NMS IoU threshold (strictly greater suppresses)', parseUnit, 0.7)
    .option('--imgsz <n>', 'inference size N or H,W (for dynamic models, or models without metadata)', parseImgsz)
    .option('--max-det <n>', 'most detections per image', parsePositiveInt, 300)
    .option('--classes <list>', 'keep only these classes (names or ids, comma-separated)', parseClassList)
    .option('--class-conf <pairs>', 'per-class thresholds, e.g. scratch=0.4,dent=0.3', parseClassConf)
    .option('--names <list>', 'class names, comma-separated (for models without metadata)', parseNames)
    .option('--threads <n>', 'onnxruntime threads, per session (default: all cores; 1 with --sessions)', parsePositiveInt)
    .option(
      '--sessions <n>',
      'model sessions running images at once, each in its own thread: more images/s on a multi-core host, a longer single run (default 1)',
      parsePositiveInt,
    )
    .option('--save <dir>', 'write annotated images (boxes, class, score) into this folder')
    .option('--save-txt', 'write YOLO txt labels (cls cx cy w h, normalised) into <save>/labels, as ultralytics does')
    .option('--save-conf', 'add the confidence to each --save-txt line')
    .option('--vid-stride <n>', 'video and stream frame stride', parsePositiveInt, 1)
    .option('--max-frames <n>', 'stop each video or stream after this many frames', parsePositiveInt)
    .option(
      '--spinning',
      "let onnxruntime's threads spin-wait between operators: a few % faster on a quiet host, up to 2x slower when other work shares the cores (default off)",
    )
    .option('--json', 'one JSON object per image per line')
    .action(async (paths: string[], o: DetectCliOptions) => {
      const log = createLogger('detect', { stream: 'stderr', level: process.env.LOUPE_LOG_LEVEL ?? 'warn' });
      if (o.saveTxt && !o.save)
        throw new LoupeError('CLI_BAD_OPTION', 'needs --save DIR (labels go to DIR/labels)', { input: '--save-txt' });
      const det = await Detector.load(o.model, {
        imgsz: o.imgsz,
        names: o.names,
        threads: o.threads,
        spinning: o.spinning === true,
        ...(o.sessions ? { sessions: o.sessions } : {}),
      });
      const opts: DetectOptions = {
        conf: o.conf,
        iou: o.iou,
        maxDet: o.maxDet,
        classes: o.classes,
        classConf: o.classConf,
        mode: 'predict',
      };
      const saveDir = o.save ? resolve(o.save) : undefined;
      if (saveDir) await mkdir(o.saveTxt ? join(saveDir, 'labels') : saveDir, { recursive: true });
      let failed = 0;
      let closed = false;
      let saved = 0;
      let labelled = 0;
      const speed = { decode: 0, preprocess: 0, inference: 0, postprocess: 0, n: 0 };
      // A reader that stops early (`| head`) closes the pipe: stop quietly instead of crashing.
      process.stdout.on('error', (e: NodeJS.ErrnoException) => {
        if (e.code === 'EPIPE') closed = true;
        else throw e;
      });
      const emit = async (path: string, r: DetectResult, image: ImageInput, frame?: number): Promise<void> => {
        const line = o.json
          ? JSON.stringify({
              image: path,
              ...(frame === undefined ? {} : { frame }),
              width: r.width,
              height: r.height,
              detections: r.detections.map((d) => ({ xyxy: d.xyxy, conf: d.conf, cls: d.cls, name: d.name })),
            })
          : human(path, r, frame);
        if (!closed) process.stdout.write(`${line}\n`);
        log.debug({ image: path, frame, ...r.timings }, 'detected');
        speed.decode += r.timings.decodeMs;
        speed.preprocess += r.timings.preprocessMs;
        speed.inference += r.timings.inferenceMs;
        speed.postprocess += r.timings.postprocessMs;
        speed.n++;
        if (!saveDir) return;
        const stem = basename(path.replace(/[?#].*$/, ''), extname(path)) || 'stream';
        const name = frame === undefined ? stem : `${stem}_${frame}`;
        const ext =
          frame === undefined && ['.jpg', '.jpeg', '.png', '.webp'].includes(extname(path).toLowerCase())
            ? extname(path).toLowerCase()
            : '.jpg';
        const pic = await annotate(image, detectionBoxes(r.detections));
        await (ext === '.png' ? pic.png() : ext === '.webp' ? pic.webp() : pic.jpeg({ quality: 95 })).toFile(join(saveDir, name + ext));
        saved++;
        if (o.saveTxt && r.detections.length) {
          await writeFile(join(saveDir, 'labels', `${name}.txt`), yoloTxt(r, Boolean(o.saveConf)));
          labelled++;
        }
      };
      try {
        det.validateOptions(opts);
        const items = expand(paths);
        // Keep one image decoding while the previous ones run, one per session (the detector
        // queues the rest); results are printed in input order.
        const start = (i: number): Promise<DetectResult> | undefined => {
          const it = items[i];
          if (!it || it.error || it.kind !== 'image') return undefined;
          const p = det.detect(it.path, opts);
          p.catch(() => {}); // handled when awaited below
          return p;
        };
        const take = readAhead(det.sessions, start);
        for (let i = 0; i < items.length && !closed; i++) {
          const cur = take(i);
          const it = items[i]!;
          try {
            if (it.error) throw it.error;
            if (it.kind === 'image') {
              await emit(it.path, await cur!, it.path);
              continue;
            }
            let frames = 0;
            for await (const f of videoFrames(it.path, { stride: o.vidStride, maxFrames: o.maxFrames })) {
              if (closed) break;
              await emit(it.path, await det.detect(f.image, opts), f.image, f.index);
              frames++;
            }
            log.info({ source: it.path, frames }, 'video done');
          } catch (e) {
            // Options and model errors are the same for every image: stop at the first.
            if (isLoupeError(e) && !e.code.startsWith('IMAGE_') && !e.code.startsWith('VIDEO_')) throw e;
            failed++;
            say(`loupe: ${isLoupeError(e) ? e.message : `${it.path}: ${errorMessage(e)}`}`);
          }
        }
      } finally {
        await det.dispose();
      }
      if (speed.n) {
        const ms = (x: number) => (x / speed.n).toFixed(1);
        const [h, w] = det.info.imgsz;
        const text = `Speed: ${ms(speed.decode)}ms decode, ${ms(speed.preprocess)}ms preprocess, ${ms(speed.inference)}ms inference, ${ms(speed.postprocess)}ms postprocess per image at shape (1, 3, ${h}, ${w})`;
        if (outputFormat() === 'human') say(text);
        else
          createLogger('detect', { stream: 'stderr' }).info(
            {
              images: speed.n,
              decodeMs: +ms(speed.decode),
              preprocessMs: +ms(speed.preprocess),
              inferenceMs: +ms(speed.inference),
              postprocessMs: +ms(speed.postprocess),
              shape: [1, 3, h, w],
            },
            'speed per image',
          );
      }
      if (saveDir)
        say(
          `Results saved to ${saveDir} (${saved} image${saved === 1 ? '' : 's'})${o.saveTxt ? `; ${labelled} label file${labelled === 1 ? '' : 's'} saved to ${join(saveDir, 'labels')}` : ''}`,
        );
      if (failed) {
        say(`loupe: ${failed} image${failed === 1 ? '' : 's'} could not be read`);
        process.exitCode = 1;
      }
    });
}
