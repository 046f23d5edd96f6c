// The labelling app: pick a job, label images (draw/move/resize/delete boxes, class picker,
// keyboard, zoom, undo/redo, the device's pre-annotations shown for correction with a score
// threshold and a hide toggle), move through the job (task list, skip, back to amend your last
// labels), or verify consolidated labels (approve, or reject with a reason). Who you are comes
// from your credential; the server decides what you may label or verify.
import { BoxEditor } from './editor.js';

const $ = (id) => document.getElementById(id);
const state = {
  mode: 'label',
  job: null,
  jobs: [],
  task: null,
  busy: false,
  me: { worker: '', roles: [] },
  /** label mode: images opened this session, in order, and where in it the current one is (Back walks it) */
  history: [],
  pos: -1,
  /** images skipped this session, per mode (sent to the server so it offers others) */
  skipped: { label: new Set(), verify: new Set() },
  /** the task shows this worker's own earlier labels: submitting replaces them */
  amending: false,
};

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
  if (!res.ok) throw Object.assign(new Error(body.error || `${res.status}`), { status: res.status, code: body.code });
  return body;
}

const jobPath = (what, params = []) => {
  const q = new URLSearchParams(params);
  const qs = q.toString();
  return `/api/jobs/${encodeURIComponent(state.job)}/${what}${qs ? `?${qs}` : ''}`;
};
const shortName = (ref) => ref.split('/').slice(-2).join('/');

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
  const shown = editor.boxes.map((b, i) => ({ b, i })).filter(({ i }) => editor.active(i));
  $('box-count').textContent = String(shown.length);
  $('box-list').replaceChildren(
    ...shown.map(({ b, i }) => {
      const li = document.createElement('li');
      li.textContent = `${editor.classes[b.cls] ?? b.cls} · ${Math.round(b.x1)},${Math.round(b.y1)} ${Math.round(b.x2 - b.x1)}×${Math.round(b.y2 - b.y1)}${b.origin === 'device' ? ` · device ${b.conf !== undefined ? b.conf.toFixed(2) : ''}` : ''}`;
      li.classList.toggle('selected', i === editor.selected);
      li.addEventListener('click', () => editor.select(i));
      return li;
    }),
  );
  $('zoom-level').textContent = `${Math.round(editor.zoom * 100)}%`;
  $('delete-box').disabled = editor.readonly || editor.selected < 0;
  $('undo').disabled = editor.readonly || editor.undoStack.length === 0;
  $('redo').disabled = editor.readonly || editor.redoStack.length === 0;
  const filtered = editor.filteredCount;
  const device = editor.boxes.filter((b) => b.origin === 'device').length;
  $('filtered-note').textContent = device
    ? `${device - filtered} of ${device} shown${filtered ? `; ${filtered} below ${editor.minConf.toFixed(2)} left out (not submitted)` : ''}${editor.hideDevice ? '; hidden for now (still submitted)' : ''}`
    : 'none on this image';
  $('back').disabled = state.mode !== 'label' || previousRef() === null;
}

function setMode(mode) {
  state.mode = mode;
  $('mode-label').setAttribute('aria-selected', String(mode === 'label'));
  $('mode-verify').setAttribute('aria-selected', String(mode === 'verify'));
  $('label-panel').hidden = mode !== 'label';
  $('device-panel').hidden = mode !== 'label';
  $('verify-panel').hidden = mode !== 'verify';
  loadTask();
}

function showEmpty(text) {
  state.task = null;
  state.amending = false;
  editor.clear();
  $('stage').hidden = true;
  $('empty').hidden = false;
  $('empty').textContent = text;
  $('editing-note').hidden = true;
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

const STATE_TEXT = {
  'to-label': 'to label',
  labelled: 'yours',
  taken: 'being labelled',
  consolidating: 'consolidating',
  'awaiting-verification': 'to verify',
  approved: 'approved',
  rejected: 'rejected',
};

/** The task list: every image of the job as this worker sees it; a click opens one. */
async function loadItems() {
  if (!state.job) return $('task-list').replaceChildren();
  let body;
  try {
    body = await api(jobPath('items'));
  } catch (e) {
    return status(e.message, true);
  }
  const items = body.items;
  const counts = {};
  for (const it of items) counts[it.state] = (counts[it.state] || 0) + 1;
  $('task-summary').textContent = `(${items.length})`;
  $('task-list').replaceChildren(
    ...items.map((it) => {
      const li = document.createElement('li');
      li.dataset.ref = it.sourceRef;
      li.dataset.state = it.state;
      li.classList.toggle('current', state.task !== null && state.task.sourceRef === it.sourceRef);
      const openable =
        state.mode === 'label' ? it.state === 'to-label' || it.state === 'labelled' : it.state === 'awaiting-verification' && !it.mine;
      li.classList.toggle('openable', openable);
      if (state.skipped[state.mode].has(it.sourceRef)) li.classList.add('skipped');
      const name = document.createElement('span');
      name.className = 'name';
      name.textContent = shortName(it.sourceRef);
      const badge = document.createElement('span');
      badge.className = `badge ${it.state}`;
      badge.textContent =
        state.mode === 'verify' && it.state === 'awaiting-verification' && it.mine ? 'yours: others verify' : STATE_TEXT[it.state];
      li.append(name, badge);
      li.title = `${it.sourceRef} · ${it.labels} label(s)`;
      if (openable) li.addEventListener('click', () => loadTask(it.sourceRef));
      return li;
    }),
  );
}

/** Where Back goes: the image before the current one, or the last one opened when none is shown. */
function previousIndex() {
  const i = state.task ? state.pos - 1 : state.pos;
  return i >= 0 && i < state.history.length ? i : -1;
}
const previousRef = () => (previousIndex() < 0 ? null : state.history[previousIndex()]);

/** Show the next task (or the named image) for the current mode. */
async function loadTask(ref, opts = {}) {
  if (!state.job) return showEmpty('No labelling jobs yet.');
  const params = ref !== undefined ? [['ref', ref]] : [...state.skipped[state.mode]].map((r) => ['skip', r]);
  let body;
  try {
    body = await api(jobPath(state.mode === 'label' ? 'task' : 'verify', params));
  } catch (e) {
    status(e.message, true);
    return false;
  }
  const { job, task } = body;
  renderClasses(job.classes);
  $('instructions').textContent = job.instructions || '—';
  $('job-progress').textContent =
    `${job.counts.consolidated}/${job.counts.items} labelled · ${job.counts.approved + job.counts.rejected}/${job.counts.items} verified`;
  if (!task) {
    const skipped = state.skipped[state.mode].size;
    showEmpty(
      state.mode === 'label'
        ? `Nothing left to label in this job${skipped ? ` (${skipped} skipped: open them from the list)` : ''}.`
        : `Nothing waiting for verification in this job${skipped ? ` (${skipped} skipped)` : ''}.`,
    );
    await loadItems();
    return true;
  }
  state.task = task;
  $('stage').hidden = false;
  $('empty').hidden = true;
  const url = `/api/image?ref=${encodeURIComponent(task.sourceRef)}`;
  if (state.mode === 'label') {
    state.amending = Array.isArray(task.submitted);
    state.skipped.label.delete(task.sourceRef);
    if (opts.historyIndex !== undefined) state.pos = opts.historyIndex;
    else if (state.history[state.pos] !== task.sourceRef) {
      state.history = [...state.history.slice(0, state.pos + 1), task.sourceRef];
      state.pos = state.history.length - 1;
    }
    await editor.load({
      url,
      width: task.width,
      height: task.height,
      boxes: state.amending ? task.submitted : task.preAnnotations,
      classes: task.classes,
      origin: state.amending ? 'worker' : 'device',
    });
    $('editing-note').hidden = !state.amending;
    $('editing-note').textContent = state.amending
      ? 'Your earlier labels: submitting replaces them (until the image has all its labels).'
      : '';
    status(`${task.remaining} image(s) left for you · ${shortName(task.sourceRef)}`);
  } else {
    await editor.load({ url, width: task.width, height: task.height, boxes: task.annotations, classes: task.classes, readonly: true });
    $('verify-info').textContent =
      `${task.annotations.length} box(es) from ${task.workers.join(', ') || 'no one'} · ${task.remaining} left`;
    $('reason').value = '';
    status(shortName(task.sourceRef));
  }
  renderPanel();
  await loadItems();
  $('viewport').focus({ preventScroll: true });
  return true;
}

async function submit() {
  if (state.mode !== 'label' || !state.task || state.busy) return;
  state.busy = true;
  try {
    const out = await api(jobPath('annotations'), {
      method: 'POST',
      body: { sourceRef: state.task.sourceRef, boxes: editor.result(), replace: state.amending },
    });
    status(out.complete ? 'Submitted; the image has all its labels.' : state.amending ? 'Your labels were replaced.' : 'Submitted.');
    await loadTask();
  } catch (e) {
    status(e.message, true);
  } finally {
    state.busy = false;
  }
}

async function skip() {
  if (!state.task || state.busy) return;
  const ref = state.task.sourceRef;
  state.skipped[state.mode].add(ref);
  // skipping only tells the queue to offer the image to someone else; if that fails it is offered again later, no work is lost
  if (state.mode === 'label') await api(jobPath('skip'), { method: 'POST', body: { sourceRef: ref } }).catch(() => {});
  await loadTask();
  status(`Skipped ${shortName(ref)}.`);
}

async function back() {
  if (state.mode !== 'label' || state.busy) return;
  const i = previousIndex();
  if (i < 0) return status('Nothing before this image.', true);
  const ref = state.history[i];
  const ok = await loadTask(ref, { historyIndex: i });
  if (!ok) status(`Cannot go back to ${shortName(ref)}: it has all its labels now.`, true);
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
    await api(jobPath('verify'), { method: 'POST', body: { sourceRef: state.task.sourceRef, verdict: v, reason } });
    status(v === 'approve' ? 'Approved.' : 'Rejected.');
    await loadTask();
  } catch (e) {
    status(e.message, true);
  } finally {
    state.busy = false;
  }
}

function toggleHide() {
  $('hide-device').checked = !$('hide-device').checked;
  editor.setHideDevice($('hide-device').checked);
}

document.addEventListener('keydown', (e) => {
  const typing =
    e.target instanceof HTMLTextAreaElement ||
    (e.target instanceof HTMLInputElement && e.target.type !== 'range' && e.target.type !== 'checkbox') ||
    e.target instanceof HTMLSelectElement;
  if (typing) {
    if (e.target === $('reason') && e.key === 'Enter' && (e.ctrlKey || e.metaKey)) verdict('reject');
    if (e.key === 'Escape') e.target.blur();
    return;
  }
  const k = e.key;
  const ctrl = e.ctrlKey || e.metaKey;
  if (ctrl && (k === 'z' || k === 'Z')) {
    if (e.shiftKey) editor.redo();
    else editor.undo();
  } else if (ctrl && (k === 'y' || k === 'Y')) editor.redo();
  else if (ctrl) return;
  else if (/^[1-9]$/.test(k)) editor.setClass(Number(k) - 1);
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
  else if (k === 'h' || k === 'H') toggleHide();
  else if (k === 's' || k === 'S') skip();
  else if (k === 'b' || k === 'B') back();
  else if (k === 'a' || k === 'A') verdict('approve');
  else if (k === 'r' || k === 'R') {
    if (state.mode === 'verify') $('reason').focus();
  } else return;
  e.preventDefault();
});

$('submit').addEventListener('click', submit);
$('skip').addEventListener('click', skip);
$('verify-skip').addEventListener('click', skip);
$('back').addEventListener('click', back);
$('undo').addEventListener('click', () => editor.undo());
$('redo').addEventListener('click', () => editor.redo());
$('delete-box').addEventListener('click', () => editor.deleteSelected());
$('approve').addEventListener('click', () => verdict('approve'));
$('reject').addEventListener('click', () => verdict('reject'));
$('zoom-in').addEventListener('click', () => editor.zoomBy(1.25));
$('zoom-out').addEventListener('click', () => editor.zoomBy(0.8));
$('zoom-fit').addEventListener('click', () => editor.fit());
$('min-conf').addEventListener('input', (e) => {
  const v = Number(e.target.value);
  $('min-conf-value').textContent = v.toFixed(2);
  editor.setMinConf(v);
});
$('hide-device').addEventListener('change', (e) => editor.setHideDevice(e.target.checked));
$('mode-label').addEventListener('click', () => setMode('label'));
$('mode-verify').addEventListener('click', () => setMode('verify'));
$('job-select').addEventListener('change', (e) => {
  state.job = e.target.value;
  state.history = [];
  state.pos = -1;
  state.skipped = { label: new Set(), verify: new Set() };
  loadTask();
});
$('logout').addEventListener('click', async () => {
  await api('/api/logout', { method: 'POST' });
  location.href = '/login';
});

state.me = await api('/api/me');
$('whoami').textContent = `${state.me.worker} (${state.me.roles.join(', ')})`;
$('mode-label').disabled = !state.me.roles.includes('label');
$('mode-verify').disabled = !state.me.roles.includes('verify');
await loadJobs();
setMode(state.me.roles.includes('label') ? 'label' : 'verify');
