import type { GateConfig } from './decide.js';
import type { PrecisionChoice } from './precision.js';
import { annotate, classColor, type DrawBox } from '../visualize/annotate.js';
import { DIFF_CONF, DIFF_IOU, type ImageDifference } from './differences.js';

/**
 * What the gate reports: both models' scores on the same split of the same data set, their
 * precision–recall curves, and the verdict with its reasons. `renderGateHtml` turns it into one
 * self-contained page (inline CSS and SVG, no scripts, no external assets) a person can open
 * from a file or an artefact store.
 */
export interface EvalSummary {
  images: number;
  instances: number;
  map50: number;
  map50_95: number;
  precision: number;
  recall: number;
  per_class: { cls: number; name: string; instances: number; ap50: number; ap50_95: number }[];
}

/** One class's precision at rising recall (IoU 0.5), as ultralytics plots it. */
export interface PrCurve {
  cls: number;
  name: string;
  recall: number[];
  precision: number[];
  ap50?: number;
}

export interface ModelScore {
  ref: string | null;
  model: string;
  /** SHA-256 of the ONNX scored (reports from before it was recorded lack it). */
  sha256?: string;
  eval: EvalSummary;
  curves: PrCurve[];
  seconds: number;
}

export interface GateReport {
  passed: boolean;
  reasons: string[];
  config: GateConfig;
  data: string;
  datasetVersion: string | null;
  /** The challenger's file the gate compared: the one the fleet would run (see `fleetPrecision`). */
  challenger: ModelScore;
  champion: ModelScore | null;
  /** fp32 or int8 for the challenger, with both files' scores (absent when the loop did not quantize). */
  fleetPrecision?: PrecisionChoice & { fp32Model: string; int8Model: string | null };
  /** Images where challenger and champion differ at the operating point (differences.ts); absent without a champion. */
  differences?: ImageDifference[];
  createdAt: string;
}

/** The pictures of the first DIFF_PICTURES differing images, champion and challenger side by side, as data: URIs. */
export const DIFF_PICTURES = 24;

export async function differencePictures(r: GateReport): Promise<Map<string, { champion: string; challenger: string }>> {
  const out = new Map<string, { champion: string; challenger: string }>();
  const names = new Map<number, string>(r.challenger.eval.per_class.map((c) => [c.cls, c.name]));
  const name = (c: number) => names.get(c) ?? String(c);
  for (const d of (r.differences ?? []).slice(0, DIFF_PICTURES)) {
    const truth: DrawBox[] = d.truth.map((t) => ({ xyxy: t.xyxy, color: '#22c55e', dashed: true }));
    const side = async (
      preds: ImageDifference['challenger'],
      flagged: number[],
      flagLabel: string,
      misses: number[],
      missLabel: string,
    ): Promise<string> => {
      const boxes: DrawBox[] = [
        ...truth,
        ...misses.map((k) => ({ xyxy: d.truth[k]!.xyxy, color: '#d946ef', dashed: true, label: missLabel })),
        ...preds.map((p, i) =>
          flagged.includes(i)
            ? { xyxy: p.xyxy, color: '#f97316', label: `${flagLabel} ${p.conf.toFixed(2)}` }
            : { xyxy: p.xyxy, color: classColor(p.cls), label: `${name(p.cls)} ${p.conf.toFixed(2)}` },
        ),
      ];
      const jpg = await (
        await annotate(d.image, boxes)
      )
        .resize({ width: Math.min(d.width, 480), withoutEnlargement: true })
        .jpeg({ quality: 80 })
        .toBuffer();
      return `data:image/jpeg;base64,${jpg.toString('base64')}`;
    };
    out.set(d.image, {
      champion: await side(d.champion, d.removedFalsePositives, 'FP gone', d.fixedMisses, 'missed'),
      challenger: await side(d.challenger, d.newFalsePositives, 'new FP', d.newMisses, 'new miss'),
    });
  }
  return out;
}

function differencesHtml(r: GateReport, pictures: Map<string, { champion: string; challenger: string }>): string {
  if (!r.champion) return '';
  const diffs = r.differences;
  if (!diffs) return '<h2>Per-image differences</h2><p>(the evaluator kept no per-image results)</p>';
  const sum = (f: (d: ImageDifference) => number) => diffs.reduce((s, d) => s + f(d), 0);
  const head = `<h2>Per-image differences</h2>
<p>At conf &gt; ${DIFF_CONF}, IoU ≥ ${DIFF_IOU} on the ${esc(r.config.split)} split: <b>${sum((d) => d.newMisses.length)} new misses</b>, <b>${sum((d) => d.newFalsePositives.length)} new false positives</b>,
${sum((d) => d.fixedMisses.length)} misses fixed, ${sum((d) => d.removedFalsePositives.length)} false positives gone, on ${diffs.length} of ${r.challenger.eval.images} images.
Truth is green (dashed); a truth box the challenger newly misses is magenta; its new false positives are orange.</p>`;
  if (!diffs.length) return `${head}<p>No image differs.</p>`;
  const cards = diffs
    .slice(0, DIFF_PICTURES)
    .map((d) => {
      const p = pictures.get(d.image);
      const what = [
        d.newMisses.length ? `${d.newMisses.length} new miss${d.newMisses.length > 1 ? 'es' : ''}` : '',
        d.newFalsePositives.length ? `${d.newFalsePositives.length} new FP` : '',
        d.fixedMisses.length ? `${d.fixedMisses.length} fixed` : '',
        d.removedFalsePositives.length ? `${d.removedFalsePositives.length} FP gone` : '',
      ]
        .filter(Boolean)
        .join(', ');
      return `<div class="diff"><div class="cap"><code>${esc(d.image.split('/').pop() ?? d.image)}</code> — ${esc(what)}</div>
${p ? `<figure><img alt="champion" src="${p.champion}"><figcaption>champion ${esc(r.champion?.ref ?? '')}</figcaption></figure><figure><img alt="challenger" src="${p.challenger}"><figcaption>challenger ${esc(r.challenger.ref ?? '')}</figcaption></figure>` : ''}</div>`;
    })
    .join('\n');
  return `${head}${cards}${diffs.length > DIFF_PICTURES ? `<p>… and ${diffs.length - DIFF_PICTURES} more images (gate.json lists them all).</p>` : ''}`;
}

const esc = (s: unknown) =>
  String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
const num = (x: number | null | undefined, d = 4) => (x === null || x === undefined || !Number.isFinite(x) ? '–' : x.toFixed(d));

/** Keep at most `n` points, evenly spaced by index (enough for a 400 px wide chart). */
function thin(r: number[], p: number[], n = 200): [number, number][] {
  const len = Math.min(r.length, p.length);
  if (len <= n) return Array.from({ length: len }, (_, i) => [r[i]!, p[i]!]);
  const out: [number, number][] = [];
  for (let k = 0; k < n; k++) {
    const i = Math.round((k * (len - 1)) / (n - 1));
    out.push([r[i]!, p[i]!]);
  }
  return out;
}

interface Series {
  label: string;
  color: string;
  dash?: string;
  recall: number[];
  precision: number[];
}

export function prChartSvg(title: string, series: Series[], w = 420, h = 320): string {
  const m = { l: 48, r: 12, t: 28, b: 40 };
  const pw = w - m.l - m.r;
  const ph = h - m.t - m.b;
  const x = (v: number) => (m.l + v * pw).toFixed(1);
  const y = (v: number) => (m.t + (1 - v) * ph).toFixed(1);
  const grid: string[] = [];
  for (let i = 0; i <= 10; i += 2) {
    const v = i / 10;
    grid.push(`<line x1="${x(v)}" y1="${y(0)}" x2="${x(v)}" y2="${y(1)}" stroke="#e5e5e5"/>`);
    grid.push(`<line x1="${x(0)}" y1="${y(v)}" x2="${x(1)}" y2="${y(v)}" stroke="#e5e5e5"/>`);
    grid.push(`<text x="${x(v)}" y="${h - m.b + 16}" text-anchor="middle" font-size="11">${v.toFixed(1)}</text>`);
    grid.push(`<text x="${m.l - 6}" y="${Number(y(v)) + 4}" text-anchor="end" font-size="11">${v.toFixed(1)}</text>`);
  }
  const lines = series.map((s) => {
    const pts = thin(s.recall, s.precision)
      .map(([r, p]) => `${x(r)},${y(p)}`)
      .join(' ');
    return `<polyline fill="none" stroke="${s.color}" stroke-width="2" ${s.dash ? `stroke-dasharray="${s.dash}"` : ''} points="${pts}"><title>${esc(s.label)}</title></polyline>`;
  });
  const legend = series.map(
    (s, i) =>
      `<g transform="translate(${m.l + 10},${m.t + 14 + i * 16})"><line x1="0" y1="-4" x2="22" y2="-4" stroke="${s.color}" stroke-width="2" ${s.dash ? `stroke-dasharray="${s.dash}"` : ''}/><text x="28" y="0" font-size="11">${esc(s.label)}</text></g>`,
  );
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" viewBox="0 0 ${w} ${h}" role="img" aria-label="${esc(title)}">
<rect x="0" y="0" width="${w}" height="${h}" fill="#fff"/>
<text x="${w / 2}" y="18" text-anchor="middle" font-size="13" font-weight="bold">${esc(title)}</text>
${grid.join('\n')}
<rect x="${m.l}" y="${m.t}" width="${pw}" height="${ph}" fill="none" stroke="#333"/>
${lines.join('\n')}
${legend.join('\n')}
<text x="${m.l + pw / 2}" y="${h - 6}" text-anchor="middle" font-size="12">recall</text>
<text x="14" y="${m.t + ph / 2}" text-anchor="middle" font-size="12" transform="rotate(-90 14 ${m.t + ph / 2})">precision</text>
</svg>`;
}

export function renderGateHtml(r: GateReport, pictures: Map<string, { champion: string; challenger: string }> = new Map()): string {
  const metrics = ['map50', 'map50_95', 'precision', 'recall'] as const;
  const ch = r.challenger;
  const cp = r.champion;
  const rows = metrics
    .map((k) => {
      const a = ch.eval[k];
      const b = cp?.eval[k];
      const d = b === undefined ? null : a - b;
      const gated = k === r.config.metric ? ' class="gated"' : '';
      return `<tr${gated}><th>${k}${k === r.config.metric ? ' (gated)' : ''}</th><td>${num(a)}</td><td>${num(b)}</td><td>${d === null ? '–' : (d >= 0 ? '+' : '') + d.toFixed(4)}</td></tr>`;
    })
    .join('\n');
  const classes = new Map<number, string>();
  for (const c of ch.eval.per_class) classes.set(c.cls, c.name);
  for (const c of cp?.eval.per_class ?? []) classes.set(c.cls, c.name);
  const perClass = [...classes.entries()]
    .sort((a, b) => a[0] - b[0])
    .map(([cls, name]) => {
      const a = ch.eval.per_class.find((c) => c.cls === cls);
      const b = cp?.eval.per_class.find((c) => c.cls === cls);
      return `<tr><th>${esc(name)}</th><td>${a?.instances ?? '–'}</td><td>${num(a?.ap50)}</td><td>${num(b?.ap50)}</td><td>${num(a?.ap50_95)}</td><td>${num(b?.ap50_95)}</td></tr>`;
    })
    .join('\n');
  const charts = [...classes.entries()]
    .sort((a, b) => a[0] - b[0])
    .map(([cls, name]) => {
      const series: Series[] = [];
      const a = ch.curves.find((c) => c.cls === cls);
      const b = cp?.curves.find((c) => c.cls === cls);
      if (a)
        series.push({
          label: `challenger ${ch.ref ?? ''} AP50 ${num(a.ap50 ?? ch.eval.per_class.find((c) => c.cls === cls)?.ap50, 3)}`,
          color: '#1f77b4',
          recall: a.recall,
          precision: a.precision,
        });
      if (b && cp)
        series.push({
          label: `champion ${cp.ref ?? ''} AP50 ${num(b.ap50 ?? cp.eval.per_class.find((c) => c.cls === cls)?.ap50, 3)}`,
          color: '#ff7f0e',
          dash: '6 4',
          recall: b.recall,
          precision: b.precision,
        });
      return series.length ? `<figure>${prChartSvg(`PR curve: ${name}`, series)}</figure>` : '';
    })
    .join('\n');
  const verdict = r.passed ? 'PASSED' : 'REJECTED';
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>loupe gate: ${esc(verdict)} ${esc(ch.ref ?? ch.model)}</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;max-width:980px}
.verdict{font-size:22px;font-weight:bold;padding:10px 14px;border-radius:6px;display:inline-block}
.pass{background:#e3f5e1;color:#17611b}.fail{background:#fde2e1;color:#8a1c17}
table{border-collapse:collapse;margin:12px 0}td,th{border:1px solid #ccc;padding:4px 10px;text-align:right}th{text-align:left}
tr.gated{background:#fffbe6}figure{display:inline-block;margin:8px}code{background:#f4f4f4;padding:1px 4px}
.diff{border-top:1px solid #ddd;padding:8px 0}.diff img{max-width:460px;display:block}.diff figcaption{font-size:12px;color:#555}
</style></head><body>
<h1>Quality gate</h1>
<p class="verdict ${r.passed ? 'pass' : 'fail'}">${verdict}</p>
<ul>${r.reasons.map((x) => `<li>${esc(x)}</li>`).join('')}</ul>
<p>Rule: <code>${esc(r.config.metric)} ≥ ${r.config.threshold}</code> and <code>${esc(r.config.metric)} ≥ champion − ${r.config.tolerance}</code>,
both models scored by loupe's evaluator on the <b>${esc(r.config.split)}</b> split of <code>${esc(r.data)}</code>${r.datasetVersion ? ` (data set version <code>${esc(r.datasetVersion)}</code>)` : ''}:
${ch.eval.images} images, ${ch.eval.instances} instances.</p>
<table><tr><th></th><th>challenger ${esc(ch.ref ?? '')}</th><th>champion ${esc(cp?.ref ?? '(none)')}</th><th>Δ</th></tr>
${rows}</table>
${
  r.fleetPrecision
    ? `<h2>Precision of the challenger's file</h2>
<p>The fleet runs the <b>${esc(r.fleetPrecision.deployed)}</b> file: ${esc(r.fleetPrecision.reason)}. Rule: int8 when its <code>${esc(r.fleetPrecision.metric)}</code> ≥ fp32's − ${r.fleetPrecision.tolerance}; the gate above compares that file.</p>
<table><tr><th></th><th>${esc(r.fleetPrecision.metric)}</th><th>file</th></tr>
<tr${r.fleetPrecision.deployed === 'fp32' ? ' class="gated"' : ''}><th>fp32</th><td>${num(r.fleetPrecision.fp32)}</td><td><code>${esc(r.fleetPrecision.fp32Model)}</code></td></tr>
<tr${r.fleetPrecision.deployed === 'int8' ? ' class="gated"' : ''}><th>int8</th><td>${num(r.fleetPrecision.int8)}</td><td><code>${esc(r.fleetPrecision.int8Model ?? '–')}</code></td></tr></table>`
    : ''
}
<h2>Per class</h2>
<table><tr><th>class</th><th>instances</th><th>AP50 challenger</th><th>AP50 champion</th><th>AP50-95 challenger</th><th>AP50-95 champion</th></tr>
${perClass}</table>
<h2>Precision–recall</h2>
${charts}
${differencesHtml(r, pictures)}
<p><small>challenger: <code>${esc(ch.model)}</code> (${ch.seconds.toFixed(1)} s)${cp ? `<br>champion: <code>${esc(cp.model)}</code> (${cp.seconds.toFixed(1)} s)` : ''}<br>generated ${esc(r.createdAt)}</small></p>
</body></html>
`;
}
