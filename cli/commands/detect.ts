import type { Command } from 'commander';
import { readdirSync, statSync } from 'node:fs';
import { extname, join } from 'node:path';
import { LoupeError, errorMessage, isLoupeError } from '../../lib/errors.js';
import { createLogger } from '../../lib/log.js';
import { Detector, type DetectOptions, type DetectResult } from '../../components/detector/detector.js';
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
  json?: boolean;
}

/** Expand folders to the images directly inside them (sorted, as ultralytics' loader does). */
function expand(paths: string[]): Array<{ path: string; error?: LoupeError }> {
  const out: Array<{ path: string; error?: LoupeError }> = [];
  for (const p of paths) {
    let isDir = false;
    try {
      isDir = statSync(p).isDirectory();
    } catch {
      out.push({ path: p, error: new LoupeError('IMAGE_MISSING', 'no such file or folder', { input: p }) });
      continue;
    }
    if (!isDir) {
      out.push({ path: p });
      continue;
    }
    const files = readdirSync(p)
      .filter((name) => IMAGE_EXTENSIONS.has(extname(name).toLowerCase()))
      .map((name) => join(p, name))
      .filter((f) => {
        try {
          return statSync(f).isFile(); // follows symlinks
        } catch {
          return false;
        }
      })
      .sort();
    if (files.length === 0) out.push({ path: p, error: new LoupeError('IMAGE_NONE', 'folder holds no images', { input: p }) });
    for (const f of files) out.push({ path: f });
  }
  return out;
}

function human(path: string, r: DetectResult): string {
  const dets = r.detections.map((d) => `  ${d.name} ${d.conf.toFixed(3)} [${d.xyxy.map((v) => v.toFixed(1)).join(', ')}]`);
  return [`${path} (${r.width}x${r.height}): ${r.detections.length} detection${r.detections.length === 1 ? '' : 's'}`, ...dets].join('\n');
}

/**
 * `loupe detect PATH... --model M`: one JSON line per image on stdout (DESIGN.md contract), boxes in
 * original-image pixels. Unreadable images get an error line on stderr; the rest still run, and
 * the exit code is 1 if any failed.
 */
export function register(program: Command): void {
  program
    .command('detect')
    .argument('<path...>', 'image files or folders of images')
    .description('detect objects in images with a YOLOv8 ONNX model (agrees with ultralytics predict)')
    .requiredOption('--model <onnx>', 'ultralytics YOLOv8 detection export (.onnx)')
    .option('--conf <x>', 'confidence threshold (strictly greater passes)', parseUnit, 0.25)
    .option('--iou <x>', 'NMS IoU threshold (strictly greater suppresses)', parseUnit, 0.7)
    .option('--imgsz <n>', 'inference size N or H,W (for dynamic models, or models without metadata)', parseImgsz)
    .option('--max-det <n>', 'most detections per image', parsePositiveInt, 300)
    .option('--classes <list>', 'keep only these classes (names or ids, comma-separated)', parseClassList)
    .option('--class-conf <pairs>', 'per-class thresholds, e.g. scratch=0.4,dent=0.3', parseClassConf)
    .option('--names <list>', 'class names, comma-separated (for models without metadata)', parseNames)
    .option('--threads <n>', 'onnxruntime threads (default: all cores)', parsePositiveInt)
    .option('--json', 'one JSON object per image per line')
    .action(async (paths: string[], o: DetectCliOptions) => {
      const log = createLogger('detect', { stream: 'stderr', level: process.env.LOUPE_LOG_LEVEL ?? 'warn' });
      const det = await Detector.load(o.model, { imgsz: o.imgsz, names: o.names, threads: o.threads });
      const opts: DetectOptions = { conf: o.conf, iou: o.iou, maxDet: o.maxDet, classes: o.classes, classConf: o.classConf, mode: 'predict' };
      let failed = 0;
      let closed = false;
      // A reader that stops early (`| head`) closes the pipe: stop quietly instead of crashing.
      process.stdout.on('error', (e: NodeJS.ErrnoException) => {
        if (e.code === 'EPIPE') closed = true;
        else throw e;
      });
      try {
        det.validateOptions(opts);
        const items = expand(paths);
        // Keep one image decoding while the previous one runs (the detector queues the rest).
        const start = (i: number): Promise<DetectResult> | undefined => {
          const it = items[i];
          if (!it || it.error) return undefined;
          const p = det.detect(it.path, opts);
          p.catch(() => {}); // handled when awaited below
          return p;
        };
        let next = start(0);
        for (let i = 0; i < items.length && !closed; i++) {
          const cur = next;
          next = start(i + 1);
          const it = items[i];
          try {
            if (it.error) throw it.error;
            const r = await cur!;
            const line = o.json
              ? JSON.stringify({ image: it.path, width: r.width, height: r.height, detections: r.detections.map((d) => ({ xyxy: d.xyxy, conf: d.conf, cls: d.cls, name: d.name })) })
              : human(it.path, r);
            process.stdout.write(`${line}\n`);
            log.debug({ image: it.path, ...r.timings }, 'detected');
          } catch (e) {
            // Options and model errors are the same for every image: stop at the first.
            if (isLoupeError(e) && !e.code.startsWith('IMAGE_')) throw e;
            failed++;
            process.stderr.write(`loupe: ${isLoupeError(e) ? e.message : `${it.path}: ${errorMessage(e)}`}\n`);
          }
        }
      } finally {
        await det.dispose();
      }
      if (failed) {
        process.stderr.write(`loupe: ${failed} image${failed === 1 ? '' : 's'} could not be read\n`);
        process.exitCode = 1;
      }
    });
}
