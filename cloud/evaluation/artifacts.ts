import { join, basename } from 'node:path';
import { writeFileAtomic } from '../../lib/fsutil.js';
import { annotate, classColor, mosaic, svgToPng } from '../visualize/annotate.js';
import { evalSummary, type EvalResult } from './evaluate.js';

/**
 * Evaluation artefacts a person (or the gate) can open: the metrics, the PR curves and the
 * confusion matrix as JSON data and SVG; the pictures ultralytics val writes (PR/F1/P/R curves,
 * confusion matrix raw and normalised) as PNG rendered from the same SVG by sharp; and, when the
 * evaluation kept its images, predicted-vs-truth grids. Every file is written atomically.
 */
export async function writeEvalArtifacts(result: EvalResult, dir: string): Promise<string[]> {
  const files: Array<[string, string | Buffer]> = [
    [
      'eval.json',
      JSON.stringify(
        {
          ...evalSummary(result),
          split: result.split,
          model: result.model,
          data: result.data,
          conf: result.conf,
          iou: result.iou,
          classes: result.classes,
          speed_ms: result.speed,
        },
        null,
        2,
      ),
    ],
    ['pr_curve.json', JSON.stringify(result.prCurve)],
    ['confusion_matrix.json', JSON.stringify(result.confusionMatrix, null, 1)],
    ['pr_curve.svg', prCurveSvg(result)],
    ['confusion_matrix.svg', confusionSvg(result)],
    // The pictures ultralytics val writes, under its names, as PNG.
    ['PR_curve.png', await svgToPng(prCurveSvg(result))],
    ['F1_curve.png', await svgToPng(confidenceCurveSvg(result, 'F1'))],
    ['P_curve.png', await svgToPng(confidenceCurveSvg(result, 'Precision'))],
    ['R_curve.png', await svgToPng(confidenceCurveSvg(result, 'Recall'))],
    ['confusion_matrix.png', await svgToPng(confusionSvg(result))],
    ['confusion_matrix_normalized.png', await svgToPng(confusionSvg(result, true))],
  ];
  if (result.imagesDetail) files.push(...(await batchGrids(result)));
  const out: string[] = [];
  for (const [name, body] of files) {
    const p = join(dir, name);
    await writeFileAtomic(p, typeof body === 'string' ? `${body}\n` : body);
    out.push(p);
  }
  return out;
}

/**
 * Predicted-vs-truth grids like ultralytics' val_batchN_labels.jpg / val_batchN_pred.jpg: the
 * first three batches of 16 images (sorted by path, as evaluated), truth boxes on one, the
 * predictions above conf 0.25 (ultralytics' plotting threshold) on the other.
 */
export const GRID_CONF = 0.25;

async function batchGrids(r: EvalResult): Promise<Array<[string, Buffer]>> {
  const names = r.confusionMatrix.labels;
  const items = r.imagesDetail ?? [];
  const out: Array<[string, Buffer]> = [];
  for (let b = 0; b < 3 && b * 16 < items.length; b++) {
    const batch = items.slice(b * 16, b * 16 + 16);
    const truth: Array<{ image: Buffer; caption: string }> = [];
    const pred: Array<{ image: Buffer; caption: string }> = [];
    for (const it of batch) {
      const caption = basename(it.image);
      const lab = it.labels.map((l) => ({ xyxy: l.xyxy, label: names[l.cls] ?? String(l.cls), color: classColor(l.cls) }));
      const prd = it.predictions
        .filter((p) => p.conf > GRID_CONF)
        .map((p) => ({ xyxy: p.xyxy, label: `${names[p.cls] ?? p.cls} ${p.conf.toFixed(1)}`, color: classColor(p.cls) }));
      truth.push({ image: await (await annotate(it.image, lab)).jpeg().toBuffer(), caption });
      pred.push({ image: await (await annotate(it.image, prd)).jpeg().toBuffer(), caption });
    }
    out.push([`val_batch${b}_labels.jpg`, await mosaic(truth, { cols: 4 })]);
    out.push([`val_batch${b}_pred.jpg`, await mosaic(pred, { cols: 4 })]);
  }
  return out;
}

/** F1, precision or recall against the confidence threshold per class, plus the mean (ultralytics' F1_curve/P_curve/R_curve). */
export function confidenceCurveSvg(r: EvalResult, what: 'F1' | 'Precision' | 'Recall'): string {
  const grid = r.prCurve.grid;
  const pick = (c: EvalResult['prCurve']['classes'][number]) => (what === 'F1' ? c.f1AtConf : what === 'Precision' ? c.pAtConf : c.rAtConf);
  const classes = r.prCurve.classes;
  const mean = grid.map((_, k) => (classes.length ? classes.reduce((s, c) => s + (pick(c)[k] ?? 0), 0) / classes.length : 0));
  let best = 0;
  for (let k = 1; k < mean.length; k++) if (mean[k]! > mean[best]!) best = k;
  const chart = curveChart(`${what}-confidence curve — ${esc(r.split)} split, ${r.images} images`, 'Confidence', what, grid);
  classes.forEach((c, i) =>
    chart.parts.push(
      `<path d="${chart.path(pick(c))}" fill="none" stroke="${PALETTE[i % PALETTE.length]}" stroke-width="1.5" opacity="0.85"/>`,
    ),
  );
  chart.parts.push(`<path d="${chart.path(mean)}" fill="none" stroke="#08306b" stroke-width="3"/>`);
  chart.legend('#08306b', `all classes ${f3(mean[best] ?? 0)} at ${f3(grid[best] ?? 0)}`, true);
  classes.forEach((c, i) => chart.legend(PALETTE[i % PALETTE.length]!, c.name));
  return chart.done();
}

const PALETTE = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf'];

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function f3(x: number): string {
  return x.toFixed(3);
}

/** Precision-recall curves at IoU 0.5 per class, plus their mean, like ultralytics' PR_curve.png. */
export function prCurveSvg(r: EvalResult): string {
  const grid = r.prCurve.grid;
  const chart = curveChart(`Precision-recall (IoU 0.5) — ${esc(r.split)} split, ${r.images} images`, 'Recall', 'Precision', grid);
  const curves = r.prCurve.classes.filter((c) => c.precision);
  curves.forEach((c, i) => {
    chart.parts.push(
      `<path d="${chart.path(c.precision!)}" fill="none" stroke="${PALETTE[i % PALETTE.length]}" stroke-width="1.5" opacity="0.85"/>`,
    );
  });
  if (curves.length) {
    const meanCurve = grid.map((_, k) => curves.reduce((s, c) => s + c.precision![k]!, 0) / curves.length);
    chart.parts.push(`<path d="${chart.path(meanCurve)}" fill="none" stroke="#08306b" stroke-width="3"/>`);
  }
  chart.legend('#08306b', `all classes ${f3(r.map50)} mAP@0.5`, true);
  curves.forEach((c, i) => chart.legend(PALETTE[i % PALETTE.length]!, `${c.name} ${f3(c.ap50)}`));
  for (const c of r.prCurve.classes.filter((x) => !x.precision)) chart.legend('#bbb', `${c.name} (no predictions) 0.000`);
  return chart.done();
}

/**
 * The frame both curve pictures share (ultralytics' layout: unit square axes, legend on the
 * right): SVG parts to append to, a path maker over `grid` (x) and a legend writer.
 */
function curveChart(title: string, xLabel: string, yLabel: string, grid: number[]) {
  const W = 720;
  const H = 520;
  const m = { l: 60, r: 220, t: 40, b: 50 };
  const pw = W - m.l - m.r;
  const ph = H - m.t - m.b;
  const X = (v: number): number => m.l + v * pw;
  const Y = (v: number): number => m.t + (1 - v) * ph;
  const step = Math.max(1, Math.floor(grid.length / 250));
  const parts: string[] = [];
  parts.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="DejaVu Sans, sans-serif" font-size="12">`,
  );
  parts.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  parts.push(`<text x="${m.l}" y="24" font-size="15">${title}</text>`);
  for (let t = 0; t <= 10; t += 2) {
    const v = t / 10;
    parts.push(
      `<line x1="${X(0)}" y1="${Y(v)}" x2="${X(1)}" y2="${Y(v)}" stroke="#ddd"/><text x="${m.l - 8}" y="${Y(v) + 4}" text-anchor="end">${v.toFixed(1)}</text>`,
    );
    parts.push(
      `<line x1="${X(v)}" y1="${Y(0)}" x2="${X(v)}" y2="${Y(1)}" stroke="#ddd"/><text x="${X(v)}" y="${Y(0) + 18}" text-anchor="middle">${v.toFixed(1)}</text>`,
    );
  }
  parts.push(`<rect x="${m.l}" y="${m.t}" width="${pw}" height="${ph}" fill="none" stroke="#333"/>`);
  parts.push(`<text x="${m.l + pw / 2}" y="${H - 12}" text-anchor="middle">${xLabel}</text>`);
  parts.push(`<text transform="translate(16 ${m.t + ph / 2}) rotate(-90)" text-anchor="middle">${yLabel}</text>`);
  const path = (ys: number[]): string => {
    const pts: string[] = [];
    for (let i = 0; i < grid.length; i += step) pts.push(`${X(grid[i]!).toFixed(1)},${Y(ys[i] ?? 0).toFixed(1)}`);
    pts.push(`${X(grid[grid.length - 1]!).toFixed(1)},${Y(ys[grid.length - 1] ?? 0).toFixed(1)}`);
    return `M${pts.join('L')}`;
  };
  let ly = m.t + 10;
  const legend = (color: string, text: string, wide = false): void => {
    parts.push(
      `<line x1="${W - m.r + 16}" y1="${ly}" x2="${W - m.r + 40}" y2="${ly}" stroke="${color}" stroke-width="${wide ? 3 : 2}"/><text x="${W - m.r + 46}" y="${ly + 4}">${esc(text)}</text>`,
    );
    ly += 18;
  };
  return { parts, path, legend, done: () => [...parts, '</svg>'].join('\n') };
}

/** Confusion matrix (rows predicted, columns true, last = background), shaded by column share; `normalize` shows the shares (ultralytics: each column divided by its sum). */
export function confusionSvg(r: EvalResult, normalize = false): string {
  const { labels, matrix, conf, iou } = r.confusionMatrix;
  const n = labels.length;
  const cell = Math.max(34, Math.min(80, Math.floor(560 / n)));
  const m = { l: 150, t: 70, r: 30, b: 140 };
  const W = Math.max(m.l + n * cell + m.r, 600);
  const H = m.t + n * cell + m.b;
  const colSum = labels.map((_, j) => matrix.reduce((s, row) => s + row[j], 0));
  const parts: string[] = [];
  parts.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="DejaVu Sans, sans-serif" font-size="12">`,
  );
  parts.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  parts.push(
    `<text x="40" y="24" font-size="15">Confusion matrix${normalize ? ' (normalised)' : ''} — ${esc(r.split)} split (conf &gt; ${conf}, IoU &gt; ${iou})</text>`,
  );
  parts.push(
    `<text x="40" y="44" fill="#555">${normalize ? 'share of each true class (column sums to 1)' : 'counts; shade = share of the true class (column)'}</text>`,
  );
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      const v = matrix[i][j];
      const share = colSum[j] ? v / colSum[j] : 0;
      const light = Math.round(255 - share * 200);
      const fill = `rgb(${light},${Math.round(255 - share * 140)},255)`;
      const x = m.l + j * cell;
      const y = m.t + i * cell;
      parts.push(`<rect x="${x}" y="${y}" width="${cell}" height="${cell}" fill="${v ? fill : '#fff'}" stroke="#ccc"/>`);
      if (v)
        parts.push(
          `<text x="${x + cell / 2}" y="${y + cell / 2 + 4}" text-anchor="middle" fill="${share > 0.55 ? 'white' : 'black'}">${normalize ? share.toFixed(2) : v}</text>`,
        );
    }
    parts.push(`<text x="${m.l - 8}" y="${m.t + i * cell + cell / 2 + 4}" text-anchor="end">${esc(labels[i])}</text>`);
    const x = m.l + i * cell + cell / 2;
    const y = m.t + n * cell + 8;
    parts.push(`<text transform="translate(${x + 4} ${y}) rotate(60)" text-anchor="start">${esc(labels[i])}</text>`);
  }
  parts.push(`<text x="${m.l + (n * cell) / 2}" y="${H - 10}" text-anchor="middle">True</text>`);
  parts.push(`<text transform="translate(24 ${m.t + (n * cell) / 2}) rotate(-90)" text-anchor="middle">Predicted</text>`);
  parts.push('</svg>');
  return parts.join('\n');
}
