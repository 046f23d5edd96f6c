// The box editor: an <img> with an SVG overlay in image-pixel coordinates (viewBox = image
// size), so zooming only resizes the image and every box stays in original pixels.
const SVG = 'http://www.w3.org/2000/svg';
const MIN_SIZE = 2; // px: smaller drags are clicks, not boxes

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
    this.selected = -1;
    this.img.removeAttribute('src');
    this.render();
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
    if (t.classList.contains('handle')) {
      const b = this.boxes[idx];
      const corner = t.dataset.corner;
      // resize around the opposite corner
      const ax = corner.includes('w') ? b.x2 : b.x1;
      const ay = corner.includes('n') ? b.y2 : b.y1;
      this.drag = { kind: 'resize', index: idx, ax, ay };
      this.select(idx);
    } else if (idx >= 0) {
      const b = this.boxes[idx];
      this.drag = { kind: 'move', index: idx, start: p, orig: { ...b }, moved: false };
      this.select(idx);
    } else {
      this.boxes.push({ cls: this.currentClass, x1: p.x, y1: p.y, x2: p.x, y2: p.y, origin: 'worker' });
      this.drag = { kind: 'draw', index: this.boxes.length - 1, ax: p.x, ay: p.y };
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
    } catch {}
    const d = this.drag;
    this.drag = null;
    const b = this.boxes[d.index];
    if (d.kind === 'draw' && (b.x2 - b.x1 < MIN_SIZE || b.y2 - b.y1 < MIN_SIZE)) {
      this.boxes.splice(d.index, 1);
      this.selected = -1;
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
    if (!this.boxes.length) return;
    this.select((this.selected + 1) % this.boxes.length);
  }

  deleteSelected() {
    if (this.readonly || this.selected < 0) return;
    this.boxes.splice(this.selected, 1);
    this.selected = -1;
    this.render();
    this.onChange('boxes');
  }

  setClass(k) {
    if (k < 0 || k >= this.classes.length) return;
    this.currentClass = k;
    if (!this.readonly && this.selected >= 0) {
      this.boxes[this.selected].cls = k;
      this.boxes[this.selected].origin = 'worker';
    }
    this.render();
    this.onChange('class');
  }

  nudge(dx, dy) {
    if (this.readonly || this.selected < 0) return;
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
    return this.boxes.map((b) => {
      const left = Math.round(b.x1);
      const top = Math.round(b.y1);
      return { class_id: b.cls, left, top, width: Math.max(1, Math.round(b.x2) - left), height: Math.max(1, Math.round(b.y2) - top) };
    });
  }

  render() {
    const svg = this.svg;
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    const hs = 7 / this.zoom; // handle size in image px, constant on screen
    this.boxes.forEach((b, i) => {
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
      const label = document.createElementNS(SVG, 'text');
      label.setAttribute('x', b.x1 + 2 / this.zoom);
      label.setAttribute('y', Math.max(12 / this.zoom, b.y1 - 3 / this.zoom));
      label.setAttribute('font-size', String(12 / this.zoom));
      label.textContent = `${this.classes[b.cls] ?? b.cls}${b.origin === 'device' ? ` (device${b.conf !== undefined ? ' ' + b.conf.toFixed(2) : ''})` : ''}`;
      g.appendChild(label);
      if (i === this.selected && !this.readonly) {
        for (const [corner, x, y] of [['nw', b.x1, b.y1], ['ne', b.x2, b.y1], ['sw', b.x1, b.y2], ['se', b.x2, b.y2]]) {
          const h = document.createElementNS(SVG, 'rect');
          h.classList.add('handle', corner);
          h.dataset.index = String(i);
          h.dataset.corner = corner;
          h.setAttribute('x', x - hs / 2);
          h.setAttribute('y', y - hs / 2);
          h.setAttribute('width', hs);
          h.setAttribute('height', hs);
          g.appendChild(h);
        }
      }
      svg.appendChild(g);
    });
  }
}
