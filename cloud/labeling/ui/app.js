// The labelling app: pick a job, label images (draw/move/resize/delete boxes, class picker,
// keyboard, zoom, the device's pre-annotations shown for correction), or verify consolidated
// labels (approve, or reject with a reason).
import { BoxEditor } from './editor.js';

const $ = (id) => document.getElementById(id);
const state = { mode: 'label', job: null, jobs: [], task: null, busy: false };

const editor = new BoxEditor({
  img: $('image'),
  svg: $('overlay'),
  viewport: $('viewport'),
  onChange: () => renderPanel(),
});

async function api(path, opts = {}) {
  const res = await fetch(path, {
    ...opts,
    headers: { 'content-type': 'application/json', ...(opts.headers || {}) },
    body: opts.body ? JSON.stringify(opts.body) : undefined,
  });
  if (res.status === 401) {
    location.href = '/login';
    throw new Error('not logged in');
  }
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(body.error || `${res.status}`);
  return body;
}

function status(text, isError = false) {
  $('status').textContent = text;
  $('status').className = isError ? 'error' : '';
}

function renderClasses(classes) {
  const ol = $('classes');
  ol.replaceChildren(
    ...classes.map((name, i) => {
      const li = document.createElement('li');
      li.dataset.cls = String(i);
      const kbd = document.createElement('kbd');
      kbd.textContent = i < 9 ? String(i + 1) : '';
      li.append(kbd, document.createTextNode(name));
      li.addEventListener('click', () => editor.setClass(i));
      return li;
    }),
  );
}

function renderPanel() {
  for (const li of $('classes').children) li.classList.toggle('active', Number(li.dataset.cls) === editor.currentClass);
  $('box-count').textContent = String(editor.boxes.length);
  $('box-list').replaceChildren(
    ...editor.boxes.map((b, i) => {
      const li = document.createElement('li');
      li.textContent = `${editor.classes[b.cls] ?? b.cls} · ${Math.round(b.x1)},${Math.round(b.y1)} ${Math.round(b.x2 - b.x1)}×${Math.round(b.y2 - b.y1)}${b.origin === 'device' ? ' · device' : ''}`;
      li.classList.toggle('selected', i === editor.selected);
      li.addEventListener('click', () => editor.select(i));
      return li;
    }),
  );
  $('zoom-level').textContent = `${Math.round(editor.zoom * 100)}%`;
  $('delete-box').disabled = editor.readonly || editor.selected < 0;
}

function setMode(mode) {
  state.mode = mode;
  $('mode-label').setAttribute('aria-selected', String(mode === 'label'));
  $('mode-verify').setAttribute('aria-selected', String(mode === 'verify'));
  $('label-panel').hidden = mode !== 'label';
  $('verify-panel').hidden = mode !== 'verify';
  loadTask();
}

function showEmpty(text) {
  state.task = null;
  editor.clear();
  $('stage').hidden = true;
  $('empty').hidden = false;
  $('empty').textContent = text;
  renderPanel();
}

async function loadJobs() {
  const { jobs } = await api('/api/jobs');
  state.jobs = jobs;
  const sel = $('job-select');
  sel.replaceChildren(
    ...jobs.map((j) => {
      const o = document.createElement('option');
      o.value = j.name;
      o.textContent = `${j.name} (${j.status})`;
      return o;
    }),
  );
  const open = jobs.find((j) => j.status !== 'done') || jobs[jobs.length - 1];
  if (open) sel.value = open.name;
  state.job = sel.value || null;
}

async function loadTask() {
  if (!state.job) return showEmpty('No labelling jobs yet.');
  const path = state.mode === 'label' ? `/api/jobs/${encodeURIComponent(state.job)}/task` : `/api/jobs/${encodeURIComponent(state.job)}/verify`;
  let body;
  try {
    body = await api(path);
  } catch (e) {
    return status(e.message, true);
  }
  const { job, task } = body;
  renderClasses(job.classes);
  $('instructions').textContent = job.instructions || '—';
  $('job-progress').textContent = `${job.counts.consolidated}/${job.counts.items} labelled · ${job.counts.approved + job.counts.rejected}/${job.counts.items} verified`;
  if (!task) return showEmpty(state.mode === 'label' ? 'Nothing left to label in this job.' : 'Nothing waiting for verification in this job.');
  state.task = task;
  $('stage').hidden = false;
  $('empty').hidden = true;
  const url = `/api/image?ref=${encodeURIComponent(task.sourceRef)}`;
  if (state.mode === 'label') {
    await editor.load({ url, width: task.width, height: task.height, boxes: task.preAnnotations, classes: task.classes, origin: 'device' });
    status(`${task.remaining} image(s) left for you · ${task.sourceRef.split('/').pop()}`);
  } else {
    await editor.load({ url, width: task.width, height: task.height, boxes: task.annotations, classes: task.classes, readonly: true });
    $('verify-info').textContent = `${task.annotations.length} box(es) from ${task.workers.join(', ') || 'no one'} · ${task.remaining} left`;
    $('reason').value = '';
    status(task.sourceRef.split('/').pop());
  }
  renderPanel();
  $('viewport').focus({ preventScroll: true });
}

async function submit() {
  if (state.mode !== 'label' || !state.task || state.busy) return;
  state.busy = true;
  try {
    await api(`/api/jobs/${encodeURIComponent(state.job)}/annotations`, { method: 'POST', body: { sourceRef: state.task.sourceRef, boxes: editor.result() } });
    status('Submitted.');
    await loadTask();
  } catch (e) {
    status(e.message, true);
  } finally {
    state.busy = false;
  }
}

async function verdict(v) {
  if (state.mode !== 'verify' || !state.task || state.busy) return;
  const reason = $('reason').value.trim();
  if (v === 'reject' && !reason) {
    status('Say why it is rejected.', true);
    $('reason').focus();
    return;
  }
  state.busy = true;
  try {
    await api(`/api/jobs/${encodeURIComponent(state.job)}/verify`, { method: 'POST', body: { sourceRef: state.task.sourceRef, verdict: v, reason } });
    status(v === 'approve' ? 'Approved.' : 'Rejected.');
    await loadTask();
  } catch (e) {
    status(e.message, true);
  } finally {
    state.busy = false;
  }
}

document.addEventListener('keydown', (e) => {
  const typing = e.target instanceof HTMLTextAreaElement || e.target instanceof HTMLInputElement || e.target instanceof HTMLSelectElement;
  if (typing) {
    if (e.target === $('reason') && e.key === 'Enter' && (e.ctrlKey || e.metaKey)) verdict('reject');
    if (e.key === 'Escape') e.target.blur();
    return;
  }
  const k = e.key;
  if (/^[1-9]$/.test(k)) editor.setClass(Number(k) - 1);
  else if (k === 'Delete' || k === 'Backspace') editor.deleteSelected();
  else if (k === 'Tab') editor.selectNext();
  else if (k === 'Escape') editor.select(-1);
  else if (k === '+' || k === '=') editor.zoomBy(1.25);
  else if (k === '-') editor.zoomBy(0.8);
  else if (k === '0') editor.fit();
  else if (k.startsWith('Arrow')) {
    const step = e.shiftKey ? 10 : 1;
    editor.nudge(k === 'ArrowLeft' ? -step : k === 'ArrowRight' ? step : 0, k === 'ArrowUp' ? -step : k === 'ArrowDown' ? step : 0);
  } else if (k === 'Enter') submit();
  else if (k === 'a' || k === 'A') verdict('approve');
  else if (k === 'r' || k === 'R') {
    if (state.mode === 'verify') $('reason').focus();
  } else return;
  e.preventDefault();
});

$('submit').addEventListener('click', submit);
$('delete-box').addEventListener('click', () => editor.deleteSelected());
$('approve').addEventListener('click', () => verdict('approve'));
$('reject').addEventListener('click', () => verdict('reject'));
$('zoom-in').addEventListener('click', () => editor.zoomBy(1.25));
$('zoom-out').addEventListener('click', () => editor.zoomBy(0.8));
$('zoom-fit').addEventListener('click', () => editor.fit());
$('mode-label').addEventListener('click', () => setMode('label'));
$('mode-verify').addEventListener('click', () => setMode('verify'));
$('job-select').addEventListener('change', (e) => {
  state.job = e.target.value;
  loadTask();
});
$('logout').addEventListener('click', async () => {
  await api('/api/logout', { method: 'POST' });
  location.href = '/login';
});

const me = await api('/api/me');
$('whoami').textContent = me.worker;
await loadJobs();
await loadTask();
