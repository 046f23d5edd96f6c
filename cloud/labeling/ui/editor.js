// The box editor: an <img> with an SVG overlay in image-pixel coordinates (viewBox = image
// size), so zooming only resizes the image and every box stays in original pixels.
// Edits can be undone and redone (a stack of box lists). The device's pre-annotations can be
// thinned by confidence (those below `minConf` are neither shown nor submitted) or hidden for
// a moment (`hideDevice`: still submitted); labels are placed so overlapping boxes stay readable.
const SVG = 'http://www.w3.org/2000/svg';
const MIN_SIZE = 2; // px: smaller drags are clicks, not boxes
const UNDO_LIMIT = 200;

export class BoxEditor {
  constructor({ img, svg, viewport, onChange }) {
    this.img = img;
    this.svg = svg;
    this.viewport = viewport;
    this.onChange = onChange || (() => {});
    this.boxes = [];
    this.selected = -1;
    this.currentClass = 0;
    this.classes = [];
    this.readonly = false;
    this.zoom = 1;
    this.width = 1;
    this.height = 1;
    this.drag = null;
    this.undoStack = [];
    this.redoStack = [];
    this.minConf = 0;
    this.hideDevice = false;
    svg.addEventListener('pointerdown', (e) => this.pointerDown(e));
    svg.addEventListener('pointermove', (e) => this.pointerMove(e));
    svg.addEventListener('pointerup', (e) => this.pointerUp(e));
    svg.addEventListener('pointercancel', (e) => this.pointerUp(e));
  }

  /** Show an image with boxes ({class_id,left,top,width,height[,confidence]}); origin marks pre-annotations. */
  async load({ url, width, height, boxes, classes, readonly, origin }) {
    this.width = width;
    this.height = height;
    this.classes = classes;
    this.readonly = Boolean(readonly);
    this.boxes = (boxes || []).map((b) => ({
      cls: b.class_id,
      x1: b.left,
      y1: b.top,
      x2: b.left + b.width,
      y2: b.top + b.height,
      origin: origin || 'worker',
      conf: b.confidence,
    }));
    this.selected = -1;
    this.undoStack = [];
    this.redoStack = [];
    this.svg.setAttribute('viewBox', `0 0 ${width} ${height}`);
    this.svg.setAttribute('preserveAspectRatio', 'none');
    await new Promise((resolve, reject) => {
      this.img.onload = resolve;
      this.img.onerror = () => reject(new Error('image failed to load'));
      this.img.src = url;
    });
    this.fit();
    this.render();
  }

  clear() {
    this.boxes = [];
    this.undoStack = [];
    this.redoStack = [];
    this.selected = -1;
    this.img.removeAttribute('src');
    this.render();
  }

  /** Whether box i takes part (false: a device box below the confidence threshold). */
  active(i) {
    const b = this.boxes[i];
    return !(b.origin === 'device' && b.conf !== undefined && b.conf < this.minConf);
  }

  /** Whether box i is drawn. */
  visible(i) {
    return this.active(i) && !(this.hideDevice && this.boxes[i].origin === 'device');
  }

  /** Device boxes left out by the confidence threshold. */
  get filteredCount() {
    return this.boxes.filter((_, i) => !this.active(i)).length;
  }

  setMinConf(v) {
    this.minConf = v;
    if (this.selected >= 0 && !this.visible(this.selected)) this.selected = -1;
    this.render();
    this.onChange('filter');
  }

  setHideDevice(v) {
    this.hideDevice = v;
    if (this.selected >= 0 && !this.visible(this.selected)) this.selected = -1;
    this.render();
    this.onChange('filter');
  }

  snapshot() {
    return this.boxes.map((b) => ({ ...b }));
  }

  /** Remember the boxes as they are, before an edit. */
  checkpoint(state = this.snapshot()) {
    this.undoStack.push(state);
    if (this.undoStack.length > UNDO_LIMIT) this.undoStack.shift();
    this.redoStack = [];
  }

  undo() {
    if (this.readonly || !this.undoStack.length) return;
    this.redoStack.push(this.snapshot());
    this.boxes = this.undoStack.pop();
    this.selected = -1;
    this.render();
    this.onChange('boxes');
  }

  redo() {
    if (this.readonly || !this.redoStack.length) return;
    this.undoStack.push(this.snapshot());
    this.boxes = this.redoStack.pop();
    this.selected = -1;
    this.render();
    this.onChange('boxes');
  }

  setZoom(z) {
    this.zoom = Math.min(8, Math.max(0.1, z));
    this.img.style.width = `${this.width * this.zoom}px`;
    this.img.style.height = `${this.height * this.zoom}px`;
    this.onChange('zoom');
  }

  zoomBy(f) {
    this.setZoom(this.zoom * f);
  }

  fit() {
    const w = this.viewport.clientWidth - 32;
    const h = this.viewport.clientHeight - 32;
    this.setZoom(Math.max(0.1, Math.min(w / this.width, h / this.height)));
  }

  toImage(e) {
    const r = this.svg.getBoundingClientRect();
    const x = ((e.clientX - r.left) * this.width) / r.width;
    const y = ((e.clientY - r.top) * this.height) / r.height;
    return { x: Math.max(0, Math.min(this.width, x)), y: Math.max(0, Math.min(this.height, y)) };
  }

  pointerDown(e) {
    if (this.readonly || e.button !== 0) return;
    e.preventDefault();
    this.viewport.focus({ preventScroll: true });
    const p = this.toImage(e);
    const t = e.target;
    const idx = t.dataset && t.dataset.index !== undefined ? Number(t.dataset.index) : -1;
    this.svg.setPointerCapture(e.pointerId);
    const before = this.snapshot();
    if (t.classList.contains('handle')) {
      const b = this.boxes[idx];
      const corner = t.dataset.corner;
      // resize around the opposite corner
      const ax = corner.includes('w') ? b.x2 : b.x1;
      const ay = corner.includes('n') ? b.y2 : b.y1;
      this.drag = { kind: 'resize', index: idx, ax, ay, before };
      this.select(idx);
    } else if (idx >= 0) {
      const b = this.boxes[idx];
      this.drag = { kind: 'move', index: idx, start: p, orig: { ...b }, moved: false, before };
      this.select(idx);
    } else {
      this.boxes.push({ cls: this.currentClass, x1: p.x, y1: p.y, x2: p.x, y2: p.y, origin: 'worker' });
      this.drag = { kind: 'draw', index: this.boxes.length - 1, ax: p.x, ay: p.y, before };
      this.selected = this.boxes.length - 1;
      this.render();
    }
  }

  pointerMove(e) {
    if (!this.drag) return;
    const p = this.toImage(e);
    const d = this.drag;
    const b = this.boxes[d.index];
    if (d.kind === 'draw' || d.kind === 'resize') {
      b.x1 = Math.min(d.ax, p.x);
      b.x2 = Math.max(d.ax, p.x);
      b.y1 = Math.min(d.ay, p.y);
      b.y2 = Math.max(d.ay, p.y);
    } else {
      const w = d.orig.x2 - d.orig.x1;
      const h = d.orig.y2 - d.orig.y1;
      const x1 = Math.max(0, Math.min(this.width - w, d.orig.x1 + p.x - d.start.x));
      const y1 = Math.max(0, Math.min(this.height - h, d.orig.y1 + p.y - d.start.y));
      d.moved = d.moved || x1 !== b.x1 || y1 !== b.y1;
      Object.assign(b, { x1, y1, x2: x1 + w, y2: y1 + h });
    }
    if (d.kind !== 'draw' && (d.kind === 'resize' || d.moved)) b.origin = 'worker';
    this.render();
  }

  pointerUp(e) {
    if (!this.drag) return;
    try {
      this.svg.releasePointerCapture(e.pointerId);
    } catch {
      // the pointer may already be released (pointercancel, lost capture)
    }
    const d = this.drag;
    this.drag = null;
    const b = this.boxes[d.index];
    if (d.kind === 'draw' && (b.x2 - b.x1 < MIN_SIZE || b.y2 - b.y1 < MIN_SIZE)) {
      this.boxes.splice(d.index, 1);
      this.selected = -1;
    } else if (d.kind === 'draw' || d.kind === 'resize' || d.moved) {
      this.checkpoint(d.before);
    }
    this.render();
    this.onChange('boxes');
  }

  select(i) {
    this.selected = i;
    if (i >= 0 && this.boxes[i]) this.currentClass = this.boxes[i].cls;
    this.render();
    this.onChange('select');
  }

  selectNext() {
    const n = this.boxes.length;
    for (let k = 1; k <= n; k++) {
      const i = (this.selected + k + n) % n;
      if (this.visible(i)) return this.select(i);
    }
  }

  deleteSelected() {
    if (this.readonly || this.selected < 0) return;
    this.checkpoint();
    this.boxes.splice(this.selected, 1);
    this.selected = -1;
    this.render();
    this.onChange('boxes');
  }

  setClass(k) {
    if (k < 0 || k >= this.classes.length) return;
    this.currentClass = k;
    if (!this.readonly && this.selected >= 0 && this.boxes[this.selected].cls !== k) {
      this.checkpoint();
      this.boxes[this.selected].cls = k;
      this.boxes[this.selected].origin = 'worker';
    }
    this.render();
    this.onChange('class');
  }

  nudge(dx, dy) {
    if (this.readonly || this.selected < 0) return;
    this.checkpoint();
    const b = this.boxes[this.selected];
    const w = b.x2 - b.x1;
    const h = b.y2 - b.y1;
    b.x1 = Math.max(0, Math.min(this.width - w, b.x1 + dx));
    b.y1 = Math.max(0, Math.min(this.height - h, b.y1 + dy));
    b.x2 = b.x1 + w;
    b.y2 = b.y1 + h;
    b.origin = 'worker';
    this.render();
    this.onChange('boxes');
  }

  /** Boxes as Ground Truth writes them, whole-pixel rounded. */
  result() {
    return this.boxes
      .filter((_, i) => this.active(i))
      .map((b) => {
        const left = Math.round(b.x1);
        const top = Math.round(b.y1);
        return { class_id: b.cls, left, top, width: Math.max(1, Math.round(b.x2) - left), height: Math.max(1, Math.round(b.y2) - top) };
      });
  }

  render() {
    const svg = this.svg;
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    const hs = 7 / this.zoom; // handle size in image px, constant on screen
    const fs = 12 / this.zoom; // label font size in image px
    const placed = []; // label rectangles already drawn, to keep overlapping boxes' labels apart
    const order = this.boxes.map((_, i) => i).filter((i) => this.visible(i) && i !== this.selected);
    if (this.selected >= 0 && this.visible(this.selected)) order.push(this.selected); // the selected box on top
    for (const i of order) {
      const b = this.boxes[i];
      const g = document.createElementNS(SVG, 'g');
      g.classList.add('box');
      if (b.origin === 'device') g.classList.add('device');
      if (this.readonly) g.classList.add('readonly');
      if (i === this.selected) g.classList.add('selected');
      g.dataset.index = String(i);
      const r = document.createElementNS(SVG, 'rect');
      r.classList.add('frame');
      r.dataset.index = String(i);
      r.setAttribute('x', b.x1);
      r.setAttribute('y', b.y1);
      r.setAttribute('width', Math.max(0, b.x2 - b.x1));
      r.setAttribute('height', Math.max(0, b.y2 - b.y1));
      g.appendChild(r);
      const text = `${this.classes[b.cls] ?? b.cls}${b.origin === 'device' ? ` (device${b.conf !== undefined ? ' ' + b.conf.toFixed(2) : ''})` : ''}`;
      // Try above the box, inside its top, below it, inside its bottom, then further up and down
      // (a stack of labels over a crowd of boxes, each tied to its box by a line); first free spot wins.
      const w = text.length * fs * 0.6 + 4 / this.zoom;
      const h = fs * 1.25;
      const ys = [b.y1 - h, b.y1, b.y2, b.y2 - h];
      for (let k = 2; k <= 12; k++) ys.push(b.y1 - k * h, b.y2 + (k - 1) * h);
      const x = Math.min(Math.max(0, b.x1), Math.max(0, this.width - w));
      const spots = ys.filter((y) => y >= 0 && y + h <= this.height).map((y) => ({ x, y }));
      if (!spots.length) spots.push({ x, y: 0 });
      const free = spots.find((p) => !placed.some((q) => p.x < q.x + q.w && q.x < p.x + w && p.y < q.y + q.h && q.y < p.y + h)) ?? spots[0];
      placed.push({ ...free, w, h });
      if (free.y + h < b.y1 - 0.5 || free.y > b.y2 + 0.5) {
        const lead = document.createElementNS(SVG, 'line');
        lead.classList.add('leader');
        lead.setAttribute('x1', free.x + 1 / this.zoom);
        lead.setAttribute('y1', free.y + (free.y < b.y1 ? h : 0));
        lead.setAttribute('x2', Math.max(b.x1, free.x + 1 / this.zoom));
        lead.setAttribute('y2', free.y < b.y1 ? b.y1 : b.y2);
        g.appendChild(lead);
      }
      const bg = document.createElementNS(SVG, 'rect');
      bg.classList.add('label-bg');
      bg.setAttribute('x', free.x);
      bg.setAttribute('y', free.y);
      bg.setAttribute('width', w);
      bg.setAttribute('height', h);
      g.appendChild(bg);
      const label = document.createElementNS(SVG, 'text');
      label.setAttribute('x', free.x + 2 / this.zoom);
      label.setAttribute('y', free.y + fs);
      label.setAttribute('font-size', String(fs));
      label.textContent = text;
      g.appendChild(label);
      if (i === this.selected && !this.readonly) {
        for (const [corner, x, y] of [
          ['nw', b.x1, b.y1],
          ['ne', b.x2, b.y1],
          ['sw', b.x1, b.y2],
          ['se', b.x2, b.y2],
        ]) {
          const hd = document.createElementNS(SVG, 'rect');
          hd.classList.add('handle', corner);
          hd.dataset.index = String(i);
          hd.dataset.corner = corner;
          hd.setAttribute('x', x - hs / 2);
          hd.setAttribute('y', y - hs / 2);
          hd.setAttribute('width', hs);
          hd.setAttribute('height', hs);
          g.appendChild(hd);
        }
      }
      svg.appendChild(g);
    }
  }
}
