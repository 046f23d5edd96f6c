'use strict';
// The operator console: one page per hash (#fleet, #live, #labelling, #runs, #models), each a
// read of the JSON API rendered as tables. DOM built with textContent only (data is never HTML).
const page = document.getElementById('page');
let timer = null;

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'class') e.className = v;
    else e.setAttribute(k, v);
  }
  for (const k of kids.flat(3)) if (k !== null && k !== undefined) e.append(k instanceof Node ? k : String(k));
  return e;
}
const fmt = (v) =>
  v === null || v === undefined
    ? '—'
    : typeof v === 'number'
      ? String(+v.toFixed(3))
      : typeof v === 'object'
        ? JSON.stringify(v)
        : String(v);
function table(cols, rows) {
  return el(
    'table',
    {},
    el(
      'tr',
      {},
      cols.map((c) => el('th', {}, c[0])),
    ),
    rows.map((r) =>
      el(
        'tr',
        {},
        cols.map((c) => el('td', {}, c[1](r))),
      ),
    ),
  );
}
const ago = (iso) => (iso ? `${Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000))} s ago` : '—');
function errorBox(v) {
  return v && typeof v === 'object' && 'error' in v && Object.keys(v).length === 1 ? el('p', { class: 'error' }, v.error) : null;
}

async function get(path) {
  const res = await fetch(path, { headers: { accept: 'application/json' } });
  if (res.status === 401) {
    location.href = '/login';
    throw new Error('logged out');
  }
  return res.json();
}

const pages = {
  async fleet() {
    const f = await get('/api/fleet');
    const devices = Array.isArray(f.devices) ? f.devices : [];
    const comps = f.components && !f.components.error ? Object.entries(f.components) : [];
    return [
      el('h2', {}, `Fleet (${f.backend}, target ${f.target})`),
      errorBox(f.devices),
      table(
        [
          ['device', (d) => d.device],
          ['loupe.Model version', (d) => fmt(d.modelVersion)],
          ['state', (d) => fmt(d.state)],
        ],
        devices,
      ),
      el('h2', {}, 'Component versions deployed'),
      errorBox(f.components),
      table(
        [
          ['component', (c) => c[0]],
          ['version', (c) => c[1].componentVersion],
        ],
        comps,
      ),
      el('h2', {}, 'Health (device telemetry)'),
      f.live
        ? table(
            [
              ['device', (t) => t.thing],
              ['model', (t) => (t.model ? `${t.model.name} ${t.model.version}` : '—')],
              ['last telemetry', (t) => ago(t.telemetryAt)],
              ['last result', (t) => ago(t.lastResultAt)],
              ['queue', (t) => fmt(t.queueDepth)],
              ['errors', (t) => fmt(t.errors)],
              ['model error', (t) => el('span', { class: t.modelError ? 'bad' : 'ok' }, t.modelError || 'none')],
            ],
            f.live,
          )
        : el('p', { class: 'muted' }, 'no MQTT feed'),
      el('h2', {}, 'Deployments'),
      table(
        [
          ['name', (d) => d.name],
          ['kind', (d) => d.kind],
          ['model', (d) => d.modelRef],
          ['version', (d) => d.version],
          ['state', (d) => el('span', { class: d.state === 'succeeded' ? 'ok' : d.state === 'failed' ? 'bad' : '' }, d.state)],
          ['at', (d) => d.createdAt],
        ],
        f.deployments,
      ),
    ];
  },
  async live() {
    const l = await get('/api/live');
    if (l.error) return [el('h2', {}, 'Live inspection'), errorBox(l)];
    const cards = l.things.map((t) => {
      const tel = t.telemetry || {};
      const rates = Object.entries(tel.defectRate || {});
      return el(
        'div',
        { class: 'card', 'data-thing': t.thing },
        el('div', {}, el('strong', {}, t.thing), ' ', el('span', { class: 'muted' }, ago(t.telemetryAt))),
        el('div', { class: 'figure' }, `${fmt(tel.fps)} frames/s`),
        el('div', {}, `latency p50 ${fmt(tel.latencyMs && tel.latencyMs.p50)} ms, p95 ${fmt(tel.latencyMs && tel.latencyMs.p95)} ms`),
        el('div', {}, `fail rate ${fmt(tel.failRate)}; ${t.results} results, ${t.defects} defects seen`),
        rates.length
          ? table(
              [
                ['class', (r) => r[0]],
                ['defect rate', (r) => fmt(r[1])],
              ],
              rates,
            )
          : el('div', { class: 'muted' }, 'no defects in the window'),
      );
    });
    const shots = l.defects.map((d) => {
      const svg = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
      svg.setAttribute('viewBox', `0 0 ${d.width || 1} ${d.height || 1}`);
      svg.setAttribute('preserveAspectRatio', 'none');
      for (const b of d.detections) {
        const r = document.createElementNS('http://www.w3.org/2000/svg', 'rect');
        const [x1, y1, x2, y2] = b.xyxy;
        Object.entries({
          x: x1,
          y: y1,
          width: x2 - x1,
          height: y2 - y1,
          fill: 'none',
          stroke: '#ef4444',
          'stroke-width': Math.max(2, (d.width || 100) / 150),
        }).forEach(([k, v]) => r.setAttribute(k, String(v)));
        svg.append(r);
      }
      const img = el('img', {
        src: `/api/frame?thing=${encodeURIComponent(d.thing)}&frame=${encodeURIComponent(d.frameId)}`,
        alt: `frame ${d.frameId}`,
      });
      img.addEventListener('error', () => img.replaceWith(el('div', { class: 'muted' }, 'frame not available here')));
      return el(
        'div',
        { class: 'defect' },
        el('div', { class: 'shot' }, img, svg),
        el('div', {}, `${d.thing} · ${d.time}`),
        el('div', {}, d.detections.map((b) => `${b.name} ${b.conf.toFixed(2)}`).join(', ')),
      );
    });
    return [
      el('h2', {}, 'Live inspection'),
      el('div', { class: 'cards' }, cards.length ? cards : el('p', { class: 'muted' }, 'no device has reported yet')),
      el('h2', {}, 'Recent defects'),
      el('div', { class: 'defects' }, shots.length ? shots : el('p', { class: 'muted' }, 'none yet')),
    ];
  },
  async labelling() {
    const q = await get('/api/labelling');
    if (q.error) return [el('h2', {}, 'Labelling queue'), errorBox(q)];
    return [
      el('h2', {}, `Labelling queue (${q.images} images)`),
      table(
        [
          ['state', (r) => r[0]],
          ['images', (r) => r[1]],
        ],
        Object.entries(q.counts),
      ),
      el('h2', {}, 'Jobs'),
      table(
        [
          ['job', (j) => j.name],
          ['status', (j) => j.status],
          ['images', (j) => j.counts.items],
          ['labelled', (j) => j.counts.consolidated],
          ['approved', (j) => j.counts.approved],
          ['rejected', (j) => j.counts.rejected],
          ['workers/image', (j) => j.workersPerImage],
        ],
        q.jobs,
      ),
      el('h2', {}, 'Waiting for labels (oldest first, 50 at most)'),
      table(
        [
          ['image', (r) => r.source_ref],
          ['device', (r) => r.device || '—'],
          ['pre-annotations', (r) => r.boxes],
        ],
        q.queue,
      ),
    ];
  },
  async runs() {
    const runs = await get('/api/runs');
    if (runs.error) return [el('h2', {}, 'Loop runs'), errorBox(runs)];
    return [
      el('h2', {}, 'Loop runs'),
      ...runs.map((r) =>
        el(
          'section',
          { 'data-run': r.id },
          el(
            'h2',
            {},
            `run ${r.id}: `,
            el('span', { class: r.status === 'succeeded' ? 'ok' : r.status === 'failed' ? 'bad' : '' }, r.status),
            ` (${r.trigger}, ${r.createdAt})`,
          ),
          r.halt || r.error ? el('p', { class: 'error' }, r.halt || r.error) : null,
          table(
            [
              ['step', (s) => s.name],
              ['status', (s) => s.status],
              ['seconds', (s) => fmt(s.seconds)],
              ['attempts', (s) => s.attempts],
              ['error', (s) => s.error || ''],
            ],
            r.steps,
          ),
          r.logs.map((l) => [el('div', { class: 'muted' }, l.file), el('pre', {}, l.tail)]),
        ),
      ),
    ];
  },
  async models() {
    const ms = await get('/api/models');
    if (ms.error) return [el('h2', {}, 'Models'), errorBox(ms)];
    return [
      el('h2', {}, 'Models'),
      table(
        [
          ['model', (m) => m.ref],
          ['status', (m) => el('span', { class: m.status === 'approved' ? 'ok' : m.status === 'rejected' ? 'bad' : '' }, m.status)],
          ['mAP50', (m) => fmt(m.metrics.map50)],
          ['mAP50-95', (m) => fmt(m.metrics.map50_95 ?? m.metrics['map50-95'])],
          ['fleet file', (m) => m.fleetPrecision],
          ['parent', (m) => m.parentRef || '—'],
          ['source', (m) => m.source],
          ['created', (m) => m.createdAt],
        ],
        ms,
      ),
      ...ms.map((m) =>
        el(
          'section',
          { 'data-model': m.ref },
          el('h2', {}, m.ref),
          m.gate
            ? table(
                [
                  ['gate', () => el('span', { class: m.gate.passed ? 'ok' : 'bad' }, m.gate.passed ? 'passed' : 'failed')],
                  ['metric', () => m.gate.metric],
                  ['challenger', () => fmt(m.gate.challenger)],
                  ['champion', () => `${fmt(m.gate.champion)} (${m.gate.championRef || '—'})`],
                  ['reasons', () => m.gate.reasons.join('; ')],
                ],
                [m.gate],
              )
            : el('p', { class: 'muted' }, 'no gate result (seeded or registered by hand)'),
          m.card ? el('pre', {}, JSON.stringify(m.card, null, 1)) : el('p', { class: 'muted' }, 'no model card'),
        ),
      ),
    ];
  },
};

async function show() {
  const name = (location.hash || '#fleet').slice(1);
  const render = pages[name] || pages.fleet;
  for (const a of document.querySelectorAll('header a')) a.classList.toggle('active', a.dataset.page === name);
  clearTimeout(timer);
  try {
    const kids = await render();
    page.replaceChildren(...kids.flat().filter(Boolean));
    page.dataset.loaded = name;
  } catch (e) {
    page.replaceChildren(el('p', { class: 'error' }, String(e.message || e)));
  }
  if (name === 'live') timer = setTimeout(show, 2000);
}
window.addEventListener('hashchange', show);
document.getElementById('logout').addEventListener('click', async () => {
  await fetch('/api/logout', { method: 'POST' });
  location.href = '/login';
});
show();
