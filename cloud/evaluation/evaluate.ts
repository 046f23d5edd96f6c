import { existsSync } from 'node:fs';
import { LoupeError } from '../../lib/errors.js';
import { Detector, type DetectorLoadOptions } from '../../components/detector/detector.js';
import { readAhead } from '../../components/detector/read-ahead.js';
import { readYoloDataset } from '../dataset/yolo-read.js';
import type { SplitName, YoloSplitItem } from '../dataset/types.js';
import { apPerClass, boxIou, ConfusionMatrix, matchPredictions, NIOU } from './metrics.js';
import type { LetterboxGeometry } from '../../components/detector/letterbox.js';
import { scaleBoxes } from '../../components/detector/postprocess.js';

/**
 * The evaluator: ultralytics `val` on a YOLO data set, run with loupe's detector (the code the
 * device runs), so the numbers the gate compares are the numbers the fleet will produce.
 *
 * Mirrors ultralytics 8.3.253 (engine/validator.py, models/yolo/detect/val.py): the val loader's
 * preprocessing (Detector mode 'val'), multi-label NMS at conf 0.001 / IoU 0.7, matching of
 * predictions and labels in the letterboxed input space (labels go through the same float32
 * transforms as its LetterBox/Format), IoU thresholds 0.50:0.95, 101-point AP, P/R at the best
 * smoothed mean F1. Exported (non-PyTorch) models are validated one image per batch; dynamic
 * models use the per-image rectangle (set_rectangle with a batch of one).
 */

export interface EvaluateOptions {
  /** ONNX path or a loaded Detector (not disposed here). */
  model: string | Detector;
  /** data.yaml of a YOLO data set. */
  data: string;
  split?: SplitName;
  conf?: number;
  iou?: number;
  maxDet?: number;
  /** For models without metadata (see Detector.load). */
  load?: DetectorLoadOptions;
  onProgress?: (done: number, total: number) => void;
  /** Keep each image's labels and predictions (original pixels) in `images_detail`, for pictures and per-image comparisons. */
  keepImages?: boolean;
}

/** One image's truth and predictions in original-image pixels (predictions at the evaluation's conf). */
export interface ImageDetail {
  image: string;
  width: number;
  height: number;
  labels: { cls: number; xyxy: [number, number, number, number] }[];
  predictions: { cls: number; conf: number; xyxy: [number, number, number, number] }[];
}

export interface PerClassResult {
  cls: number;
  name: string;
  instances: number;
  ap50: number;
  ap50_95: number;
}

/** The DESIGN.md contract of `loupe eval --json`. */
export interface EvalSummary {
  images: number;
  instances: number;
  map50: number;
  map50_95: number;
  precision: number;
  recall: number;
  per_class: PerClassResult[];
}

export interface ClassDetail extends PerClassResult {
  /** Images containing the class. */
  images: number;
  precision: number;
  recall: number;
  /** AP at each IoU threshold 0.50, 0.55, ... 0.95. */
  ap: number[];
}

export interface PrCurves {
  /** Recall grid (x) for `precision`, and confidence grid for the P/R/F1 curves (same 1000 points). */
  grid: number[];
  classes: Array<{
    cls: number;
    name: string;
    ap50: number;
    precision: number[] | null;
    pAtConf: number[];
    rAtConf: number[];
    f1AtConf: number[];
  }>;
  /** Confidence of the reported P/R operating point (best smoothed mean F1). */
  bestConf: number;
}

export interface ConfusionMatrixData {
  /** Class names, then 'background'. */
  labels: string[];
  /** matrix[predicted][true]. */
  matrix: number[][];
  conf: number;
  iou: number;
}

export interface EvalResult extends EvalSummary {
  model: string;
  data: string;
  split: SplitName;
  conf: number;
  iou: number;
  classes: ClassDetail[];
  /** Mean milliseconds per image. */
  speed: { decode: number; preprocess: number; inference: number; postprocess: number };
  prCurve: PrCurves;
  confusionMatrix: ConfusionMatrixData;
  /** Present with `keepImages`. */
  imagesDetail?: ImageDetail[];
}

const fr = Math.fround;

/** Parse label lines the way verify_image_label does (float32 rows, duplicates removed); refuse bad ones. */
function labelRows(item: YoloSplitItem, nc: number): Float32Array[] {
  const rows: Float32Array[] = [];
  const seen = new Set<string>();
  item.labels.forEach((l, i) => {
    const row = Float32Array.of(l.cls, l.cx, l.cy, l.w, l.h);
    const where = `${item.labelPath} box ${i + 1}`;
    if (!Number.isInteger(l.cls) || l.cls < 0 || l.cls >= nc)
      throw new LoupeError('LABEL_BAD_CLASS', `class ${l.cls} is not one of the data set's ${nc} classes`, { input: where });
    for (let k = 1; k < 5; k++) {
      if (row[k] > 1.01 || row[k] < -0.01)
        throw new LoupeError('LABEL_OUT_OF_RANGE', `coordinate ${row[k]} is not normalised to 0..1`, { input: where });
    }
    const key = row.join(',');
    if (!seen.has(key)) {
      seen.add(key);
      rows.push(row);
    }
  });
  return rows;
}

/**
 * Label boxes in model-input pixels, through the same float32 steps as ultralytics: xywh->xyxy,
 * denormalise by the loaded (resized) size, LetterBox scale r and padding, Format back to
 * normalised xywh, then the validator's xywh->xyxy * input size.
 */
function labelBoxesInInput(rows: Float32Array[], g: LetterboxGeometry, r: number): Float32Array {
  const out = new Float32Array(rows.length * 4);
  const rf = fr(r);
  rows.forEach((row, k) => {
    const [, cx, cy, w, h] = row;
    const hw = fr(w / 2);
    const hh = fr(h / 2);
    // xywh2xyxy (numpy float32), denormalize(w1, h1), scale(r), add_padding(left, top)
    let x1 = fr(fr(fr(fr(cx - hw) * g.srcW) * rf) + g.left);
    let y1 = fr(fr(fr(fr(cy - hh) * g.srcH) * rf) + g.top);
    let x2 = fr(fr(fr(fr(cx + hw) * g.srcW) * rf) + g.left);
    let y2 = fr(fr(fr(fr(cy + hh) * g.srcH) * rf) + g.top);
    // Format: xyxy2xywh, normalise by the letterboxed size
    const ncx = fr(fr(fr(x1 + x2) / 2) / g.outW);
    const ncy = fr(fr(fr(y1 + y2) / 2) / g.outH);
    const nw = fr(fr(x2 - x1) / g.outW);
    const nh = fr(fr(y2 - y1) / g.outH);
    // _prepare_batch: xywh2xyxy(bbox) * imgsz
    const hw2 = fr(nw / 2);
    const hh2 = fr(nh / 2);
    x1 = fr(fr(ncx - hw2) * g.outW);
    y1 = fr(fr(ncy - hh2) * g.outH);
    x2 = fr(fr(ncx + hw2) * g.outW);
    y2 = fr(fr(ncy + hh2) * g.outH);
    out.set([x1, y1, x2, y2], k * 4);
  });
  return out;
}

/** Evaluate a detection model on one split of a YOLO data set. */
export async function evaluate(opts: EvaluateOptions): Promise<EvalResult> {
  const split = opts.split ?? 'test';
  const conf = opts.conf ?? 0.001;
  const iou = opts.iou ?? 0.7;
  if (!existsSync(opts.data)) throw new LoupeError('DATA_MISSING', 'data set description not found', { input: opts.data });
  const ds = readYoloDataset(opts.data);
  const items = ds.splits[split];
  if (!items)
    throw new LoupeError('DATA_NO_SPLIT', `data set has no '${split}' split (it has: ${Object.keys(ds.splits).join(', ') || 'none'})`, {
      input: ds.yamlPath,
    });
  if (items.length === 0) throw new LoupeError('DATA_EMPTY_SPLIT', `the '${split}' split has no images`, { input: ds.yamlPath });

  const owned = typeof opts.model === 'string';
  const det = typeof opts.model === 'string' ? await Detector.load(opts.model, opts.load) : opts.model;
  try {
    const names = det.info.names;
    if (ds.names.length !== names.length) {
      throw new LoupeError(
        'EVAL_CLASS_MISMATCH',
        `data set has ${ds.names.length} classes (${ds.names.join(', ')}) but the model has ${names.length} (${names.join(', ')})`,
        { input: ds.yamlPath },
      );
    }
    const nc = names.length;
    const cm = new ConfusionMatrix(nc, conf);
    const tps: Uint8Array[] = [];
    const confs: Float32Array[] = [];
    const pcls: Int32Array[] = [];
    const tcls: number[] = [];
    const imagesPerClass = new Array<number>(nc).fill(0);
    const speed = { decode: 0, preprocess: 0, inference: 0, postprocess: 0 };
    const detail: ImageDetail[] = [];
    const sorted = [...items].sort((a, b) => (a.imagePath < b.imagePath ? -1 : a.imagePath > b.imagePath ? 1 : 0));
    // Decode the next image while the current ones run, one per session (the detector queues the
    // rest); results are taken in order.
    const start = (k: number) => {
      if (k >= sorted.length) return undefined;
      const p = det.detectRaw(sorted[k].imagePath, { mode: 'val', conf, iou, maxDet: opts.maxDet });
      p.catch(() => {}); // surfaced when awaited
      return p;
    };
    const take = readAhead(det.sessions, start);
    for (let k = 0; k < sorted.length; k++) {
      const item = sorted[k];
      const rows = labelRows(item, nc);
      const res = (await take(k))!;
      const gCls = rows.map((r) => r[0]);
      // LetterBox's ratio r (1 unless a non-square model forces a second resize)
      const g = res.geometry;
      const r = Math.min(g.outH / g.srcH, g.outW / g.srcW, 1);
      const gBoxes = labelBoxesInInput(rows, g, r);
      const n = res.conf.length;
      const iouM = rows.length && n ? boxIou(gBoxes, rows.length, res.xyxy, n) : new Float32Array(0);
      tps.push(rows.length && n ? matchPredictions(res.cls, gCls, iouM) : new Uint8Array(n * NIOU));
      confs.push(res.conf);
      pcls.push(res.cls);
      tcls.push(...gCls);
      for (const c of new Set(gCls)) imagesPerClass[c]++;
      cm.processBatch(res.xyxy, res.conf, res.cls, gBoxes, gCls);
      if (opts.keepImages) {
        const orig = Float32Array.from(res.xyxy);
        scaleBoxes(orig, n, res.scale);
        detail.push({
          image: item.imagePath,
          width: res.width,
          height: res.height,
          labels: rows.map((row) => {
            const [c, cx, cy, w, h] = row;
            return {
              cls: c!,
              xyxy: [(cx! - w! / 2) * res.width, (cy! - h! / 2) * res.height, (cx! + w! / 2) * res.width, (cy! + h! / 2) * res.height],
            };
          }),
          predictions: Array.from(res.conf, (cf, i) => ({
            cls: res.cls[i]!,
            conf: cf,
            xyxy: [orig[i * 4]!, orig[i * 4 + 1]!, orig[i * 4 + 2]!, orig[i * 4 + 3]!] as [number, number, number, number],
          })),
        });
      }
      speed.decode += res.timings.decodeMs;
      speed.preprocess += res.timings.preprocessMs;
      speed.inference += res.timings.inferenceMs;
      speed.postprocess += res.timings.postprocessMs;
      opts.onProgress?.(k + 1, sorted.length);
    }
    const cat = <T extends Uint8Array | Float32Array | Int32Array>(parts: T[], make: (n: number) => T): T => {
      const out = make(parts.reduce((s, p) => s + p.length, 0));
      let o = 0;
      for (const p of parts) {
        out.set(p as never, o);
        o += p.length;
      }
      return out;
    };
    const stats = apPerClass(
      cat(tps, (n) => new Uint8Array(n)),
      cat(confs, (n) => new Float32Array(n)),
      cat(pcls, (n) => new Int32Array(n)),
      Int32Array.from(tcls),
    );
    const mean = (a: number[]): number => (a.length ? a.reduce((s, v) => s + v, 0) / a.length : 0);
    const classes: ClassDetail[] = stats.classes.map((c, i) => ({
      cls: c,
      name: names[c],
      instances: stats.nt[i],
      ap50: stats.ap[i][0],
      ap50_95: mean(stats.ap[i]),
      images: imagesPerClass[c],
      precision: stats.p[i],
      recall: stats.r[i],
      ap: stats.ap[i],
    }));
    const nImg = sorted.length;
    for (const k of Object.keys(speed) as Array<keyof typeof speed>) speed[k] /= nImg;
    return {
      images: nImg,
      instances: tcls.length,
      map50: mean(stats.ap.map((a) => a[0])),
      map50_95: mean(stats.ap.map(mean)),
      precision: mean(stats.p),
      recall: mean(stats.r),
      per_class: classes.map(({ cls, name, instances, ap50, ap50_95 }) => ({ cls, name, instances, ap50, ap50_95 })),
      model: det.info.path,
      data: ds.yamlPath,
      split,
      conf,
      iou,
      classes,
      speed,
      prCurve: {
        grid: Array.from(stats.px),
        bestConf: stats.px[stats.bestIndex],
        classes: stats.classes.map((c, i) => ({
          cls: c,
          name: names[c],
          ap50: stats.ap[i][0],
          precision: stats.prCurve[i] ? Array.from(stats.prCurve[i]!) : null,
          pAtConf: Array.from(stats.pCurve[i]),
          rAtConf: Array.from(stats.rCurve[i]),
          f1AtConf: Array.from(stats.f1Curve[i]),
        })),
      },
      confusionMatrix: { labels: [...names, 'background'], matrix: cm.matrix, conf: cm.conf, iou: cm.iou },
      ...(opts.keepImages ? { imagesDetail: detail } : {}),
    };
  } finally {
    if (owned) await det.dispose();
  }
}

/** The DESIGN.md `loupe eval --json` object. */
export function evalSummary(r: EvalSummary): EvalSummary {
  return {
    images: r.images,
    instances: r.instances,
    map50: r.map50,
    map50_95: r.map50_95,
    precision: r.precision,
    recall: r.recall,
    per_class: r.per_class.map(({ cls, name, instances, ap50, ap50_95 }) => ({ cls, name, instances, ap50, ap50_95 })),
  };
}
