import { mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ImageSource } from '../../cloud/labeling/images.js';
import { Labeling } from '../../cloud/labeling/jobs.js';
import { startLabelServer, type LabelServer } from '../../cloud/labeling/server.js';
import { makeRecord, openLabelStore, type SqliteLabelStore } from '../../cloud/labelstore/index.js';

/**
 * Issue 14 item 8: one insider must not be the whole workforce. With one credential, a person
 * could submit as three workers (X-Loupe-Worker, login name) and approve their own label, and a
 * 15,000-box label blocked the server while it was consolidated. Here: per-worker credentials,
 * identity fixed by the credential, verifier never a labeller, a box cap, consolidation off the
 * request path.
 */
const IMG = 's3://plant/incoming/a.jpg';
const IMG2 = 's3://plant/incoming/b.jpg';

async function api(
  srv: LabelServer,
  path: string,
  token: string,
  opts: { method?: string; body?: unknown; headers?: Record<string, string> } = {},
) {
  const r = await fetch(srv.url + path.replace(/^\//, ''), {
    method: opts.method ?? (opts.body ? 'POST' : 'GET'),
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', ...opts.headers },
    body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
  });
  return { status: r.status, body: (await r.json()) as Record<string, unknown> };
}

/** Wall time of one /api/me on a fresh connection (measures how long the server's event loop is busy). */
function probe(srv: LabelServer, token: string): Promise<number> {
  const u = new URL(srv.url + 'api/me');
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const req = request(
      { host: u.hostname, port: u.port, path: u.pathname, agent: false, headers: { authorization: `Bearer ${token}` } },
      (res) => {
        res.resume();
        res.on('end', () => resolve(performance.now() - t0));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

describe('labelling workforce: one credential, one worker', () => {
  let dir: string;
  let store: SqliteLabelStore;
  let lab: Labeling;
  let srv: LabelServer;
  const t: Record<string, string> = {};
  const box = { class_id: 0, left: 10, top: 10, width: 40, height: 30 };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'wf-id-'));
    store = openLabelStore(join(dir, 'labels.db'));
    const rec = (ref: string, w = 200, h = 150) =>
      makeRecord({
        source_ref: ref,
        image_width: w,
        image_height: h,
        annotations: [],
        event_time: 1,
        labeling_job: '',
        status: 'PENDING',
        device: 'd',
      });
    await store.append([rec(IMG), rec(IMG2, 4000, 4000)]);
    lab = new Labeling(store);
    await lab.createJob({ name: 'three', classes: ['scratch'], workersPerImage: 3, batch: [IMG] });
    for (const w of ['mallory', 'bob', 'carol']) t[w] = lab.workers.add(w, ['label', 'verify']).token;
    t.vera = lab.workers.add('vera', ['verify']).token;
    t.lena = lab.workers.add('lena', ['label']).token;
    srv = await startLabelServer({ lab, images: new ImageSource() });
  });
  afterAll(async () => {
    await srv?.stop();
    lab?.close();
    await store?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('fixes the worker from the credential: one holder cannot submit as three', async () => {
    expect(lab.workers.get('mallory')).toMatchObject({ id: 'mallory', roles: ['label', 'verify'], revoked: null });
    // the credential is stored hashed only
    const row = lab.db.prepare('SELECT * FROM labeling_workers WHERE id = ?').get('mallory') as Record<string, unknown>;
    expect(JSON.stringify(row)).not.toContain(t.mallory!);

    // mallory claims to be bob: refused, nothing recorded
    const claimed = await api(srv, `api/jobs/three/annotations`, t.mallory!, {
      body: { sourceRef: IMG, boxes: [box] },
      headers: { 'x-loupe-worker': 'bob' },
    });
    expect(claimed).toMatchObject({ status: 400, body: { code: 'WORKER_MISMATCH' } });
    expect(lab.getJob('three').counts.annotations).toBe(0);
    // a body field cannot name the worker either
    const first = await api(srv, `api/jobs/three/annotations`, t.mallory!, { body: { sourceRef: IMG, boxes: [box], worker: 'bob' } });
    expect(first).toMatchObject({ status: 200, body: { complete: false } });
    expect(lab.items('three')[0]!.annotations.map((a) => a.worker)).toEqual(['mallory']);
    const again = await api(srv, `api/jobs/three/annotations`, t.mallory!, { body: { sourceRef: IMG, boxes: [box] } });
    expect(again).toMatchObject({ status: 409, body: { code: 'LABEL_DUPLICATE' } });
    // logging in under another name with her credential does not work
    const login = await fetch(srv.url + 'api/login', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ token: t.mallory, worker: 'carol' }),
    });
    expect(login.status).toBe(400);
    const ok = await fetch(srv.url + 'api/login', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ token: t.mallory }),
    });
    expect(await ok.json()).toEqual({ worker: 'mallory', roles: ['label', 'verify'] });
    expect((await api(srv, 'api/me', 'loupe_w_' + 'A'.repeat(43))).status).toBe(401);
    expect(lab.getJob('three').counts.annotations).toBe(1);
  });

  it('a labeller never verifies their own image; roles are enforced', async () => {
    expect(
      (await api(srv, `api/jobs/three/annotations`, t.bob!, { body: { sourceRef: IMG, boxes: [{ ...box, left: 11 }] } })).body,
    ).toEqual({ complete: false });
    expect((await api(srv, `api/jobs/three/annotations`, t.vera!, { body: { sourceRef: IMG, boxes: [box] } })).body).toMatchObject({
      code: 'WORKER_FORBIDDEN',
    });
    expect(
      (await api(srv, `api/jobs/three/annotations`, t.carol!, { body: { sourceRef: IMG, boxes: [{ ...box, top: 12 }] } })).body,
    ).toEqual({ complete: true });
    await lab.settle();
    expect(lab.getJob('three')).toMatchObject({ status: 'verifying', counts: { consolidated: 1 } });

    // mallory labelled it: no verification task for her, and a direct verdict is refused
    expect((await api(srv, 'api/jobs/three/verify', t.mallory!)).body.task).toBeNull();
    const self = await api(srv, 'api/jobs/three/verify', t.mallory!, { body: { sourceRef: IMG, verdict: 'approve' } });
    expect(self).toMatchObject({ status: 403, body: { code: 'VERIFY_OWN_LABEL' } });
    expect((await api(srv, 'api/jobs/three/verify', t.lena!, { body: { sourceRef: IMG, verdict: 'approve' } })).body).toMatchObject({
      code: 'WORKER_FORBIDDEN',
    });
    expect((await store.latest({ sourceRefs: [IMG] }))[0]!.status).toBe('PENDING');

    const task = (await api(srv, 'api/jobs/three/verify', t.vera!)).body.task as { sourceRef: string; workers: string[] };
    expect(task).toMatchObject({ sourceRef: IMG, workers: ['bob', 'carol', 'mallory'] });
    expect((await api(srv, 'api/jobs/three/verify', t.vera!, { body: { sourceRef: IMG, verdict: 'approve' } })).status).toBe(200);
    const [rec] = await store.latest({ sourceRefs: [IMG] });
    expect(rec).toMatchObject({ status: 'APPROVED', meta: { workers: ['bob', 'carol', 'mallory'], verifier: 'vera' } });

    // a revoked credential stops at once, sessions included
    const login = await fetch(srv.url + 'api/login', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ token: t.carol }),
    });
    const cookie = login.headers.get('set-cookie')!.split(';')[0]!;
    expect((await fetch(srv.url + 'api/me', { headers: { cookie } })).status).toBe(200);
    lab.workers.revoke('carol');
    expect((await fetch(srv.url + 'api/me', { headers: { cookie } })).status).toBe(401);
    expect((await api(srv, 'api/me', t.carol!)).status).toBe(401);
  });

  it('caps boxes per image with a clear 413, and consolidates large labels off the request path', async () => {
    await lab.createJob({ name: 'big', classes: ['scratch'], workersPerImage: 3, batch: [IMG2], maxBoxes: 15_000 });
    const boxes = (d: number, n = 15_000) =>
      Array.from({ length: n }, (_, i) => ({
        class_id: 0,
        left: (i % 120) * 33 + d,
        top: Math.floor(i / 120) * 31 + d,
        width: 25,
        height: 25,
      }));
    // the default job cap (300) refuses a 301-box label before doing anything with it
    await lab.createJob({ name: 'default-cap', classes: ['scratch'], batch: [] });
    expect(lab.getJob('default-cap').maxBoxes).toBe(300);

    const w = {
      x: lab.workers.add('x', ['label']).token,
      y: lab.workers.add('y', ['label']).token,
      z: lab.workers.add('z', ['label']).token,
    };
    const over = await api(srv, 'api/jobs/big/annotations', w.x, { body: { sourceRef: IMG2, boxes: boxes(0, 15_001) } });
    expect(over).toMatchObject({ status: 413, body: { code: 'LABEL_TOO_MANY_BOXES' } });
    expect(String(over.body.error)).toMatch(/15001 boxes for one image; this job takes at most 15000/);

    expect((await api(srv, 'api/jobs/big/annotations', w.x, { body: { sourceRef: IMG2, boxes: boxes(0) } })).status).toBe(200);
    expect((await api(srv, 'api/jobs/big/annotations', w.y, { body: { sourceRef: IMG2, boxes: boxes(1) } })).status).toBe(200);
    // the third completes the image: 45,000 boxes to consolidate (seconds of CPU), in the worker thread
    const t0 = performance.now();
    const last = await api(srv, 'api/jobs/big/annotations', w.z, { body: { sourceRef: IMG2, boxes: boxes(2) } });
    const submitMs = performance.now() - t0;
    expect(last).toMatchObject({ status: 200, body: { complete: true } });
    expect(lab.getJob('big').counts).toMatchObject({ consolidating: 1, consolidated: 0 });
    // the server keeps answering while the consolidation runs
    const probes: number[] = [];
    const settled = lab.settle();
    let done = false;
    void settled.then(() => (done = true));
    while (!done) {
      probes.push(await probe(srv, w.x));
      await new Promise((r) => setTimeout(r, 20));
    }
    await settled;
    expect(lab.getJob('big').counts).toMatchObject({ consolidating: 0, consolidated: 1 });
    expect(lab.items('big')[0]!.consolidated).toHaveLength(15_000);
    // Loose bounds (a loaded shared machine): before the fix one probe waited the whole
    // consolidation (23 s under load 9); now each answers in well under a second.
    expect(Math.max(...probes)).toBeLessThan(1000);
    expect(submitMs).toBeLessThan(5000);
    console.log(
      `15,000 boxes x 3: last submission ${submitMs.toFixed(0)} ms; ${probes.length} probes during consolidation, slowest ${Math.max(...probes).toFixed(0)} ms`,
    );
  });
});
