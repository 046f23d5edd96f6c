import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ImageSource } from '../../cloud/labeling/images.js';
import { Labeling } from '../../cloud/labeling/jobs.js';
import { startLabelServer, type LabelServer } from '../../cloud/labeling/server.js';
import { makeRecord, openLabelStore, type SqliteLabelStore } from '../../cloud/labelstore/index.js';

/**
 * Issue 14 item 12, the labelling server's parts: a bad cookie must not make pages answer 500,
 * `--map` must not serve files outside its folder through `..` in a ref, and the API checks
 * Host (DNS rebinding) and Origin (CSRF).
 */

/** A raw request, so Host, Origin and Cookie are sent exactly as given (fetch rewrites Host). */
function raw(
  url: string,
  opts: { method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<{ status: number; body: string; headers: Record<string, unknown> }> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: u.hostname,
        port: u.port,
        path: u.pathname + u.search,
        method: opts.method ?? 'GET',
        headers: opts.headers,
        setHost: !opts.headers?.host,
      },
      (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode!, body, headers: res.headers }));
      },
    );
    req.on('error', reject);
    req.end(opts.body);
  });
}

describe('labelling server: hostile requests', () => {
  let dir: string;
  let store: SqliteLabelStore;
  let lab: Labeling;
  let srv: LabelServer;
  let bearer: Record<string, string>;
  let mapDir: string;
  const inside = 's3://plant/imgs/bad/a.jpg';
  const escaping = 's3://plant/imgs/../../secret.txt';

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ui-sec-'));
    mapDir = join(dir, 'images');
    mkdirSync(join(mapDir, 'bad'), { recursive: true });
    writeFileSync(join(mapDir, 'bad', 'a.jpg'), 'jpeg bytes');
    // A file beside the mapped folder that `..` in a ref would reach.
    writeFileSync(join(dir, 'secret.txt'), 'TOP SECRET');
    store = openLabelStore(join(dir, 'labels.db'));
    const rec = (ref: string) =>
      makeRecord({
        source_ref: ref,
        image_width: 100,
        image_height: 100,
        annotations: [],
        event_time: 1,
        labeling_job: '',
        status: 'PENDING',
        device: 'd',
      });
    await store.append([rec(inside), rec(escaping)]);
    lab = new Labeling(store);
    await lab.createJob({ name: 'sec', classes: ['scratch'] });
    const w = lab.workers.add('alice', ['label', 'verify']);
    bearer = { authorization: `Bearer ${w.token}` };
    srv = await startLabelServer({ lab, images: new ImageSource({ mappings: [{ refPrefix: 's3://plant/', dir: mapDir, idParts: 2 }] }) });
  });
  afterAll(async () => {
    await srv?.stop();
    lab?.close();
    await store?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('answers a malformed session cookie like no session, never 500', async () => {
    for (const cookie of ['loupe_session=%zz', 'loupe_session=%', 'a=%E0%A4%A; loupe_session=%zz%', 'loupe_session']) {
      const page = await raw(srv.url, { headers: { cookie } });
      expect(page.status, cookie).toBe(302);
      expect(page.headers.location).toBe('/login');
      expect((await raw(srv.url + 'api/jobs', { headers: { cookie } })).status, cookie).toBe(401);
      expect((await raw(srv.url + 'assets/app.js', { headers: { cookie } })).status, cookie).toBe(401);
      expect((await raw(srv.url + 'login', { headers: { cookie } })).status, cookie).toBe(200);
    }
    // a request target that looks like another authority is a path here, not a crash (found by test/fuzz)
    for (const target of ['//evil.example/api/me', '//kZ%5D%5B4-*ph', '//']) {
      const u = new URL(srv.url);
      const r = await new Promise<number>((resolve, reject) => {
        const req = request({ host: u.hostname, port: u.port, path: target, method: 'POST', headers: bearer }, (res) => {
          res.resume();
          resolve(res.statusCode!);
        });
        req.on('error', reject);
        req.end();
      });
      expect(r, target).toBeLessThan(500);
      expect(r, target).toBeGreaterThanOrEqual(400);
    }
    // a good credential beside a bad cookie still works
    expect((await raw(srv.url + 'api/jobs', { headers: { cookie: 'x=%zz', ...bearer } })).status).toBe(200);
  });

  it('serves mapped images only from inside their folder', async () => {
    const ok = await raw(srv.url + 'api/image?ref=' + encodeURIComponent(inside), { headers: bearer });
    expect(ok.status).toBe(200);
    expect(ok.body).toBe('jpeg bytes');
    const bad = await raw(srv.url + 'api/image?ref=' + encodeURIComponent(escaping), { headers: bearer });
    expect(bad.body).not.toContain('TOP SECRET');
    expect(bad.status).toBe(400);
    expect(JSON.parse(bad.body)).toMatchObject({ code: 'IMAGE_BAD_REF' });
    const images = new ImageSource({ mappings: [{ refPrefix: 's3://plant/', dir: mapDir, idParts: 2 }] });
    for (const ref of [escaping, 's3://plant/x/bad/..', 's3://plant/bad/.', 's3://plant/x/..\\..\\secret.txt', 's3://plant/a//b.jpg']) {
      expect(() => images.mappedPath(ref), ref).toThrow(/plain file and folder names|outside/);
    }
  });

  it('refuses requests for another host name (DNS rebinding)', async () => {
    const port = new URL(srv.url).port;
    for (const host of [`evil.example:${port}`, 'evil.example', `127.0.0.1.nip.io:${port}`]) {
      const r = await raw(srv.url + 'api/jobs', { headers: { host, ...bearer } });
      expect(r.status, host).toBe(403);
      expect(JSON.parse(r.body)).toMatchObject({ code: 'BAD_HOST' });
      expect((await raw(srv.url + 'login', { headers: { host } })).status, host).toBe(403);
    }
    for (const host of [`127.0.0.1:${port}`, `localhost:${port}`]) {
      expect((await raw(srv.url + 'api/jobs', { headers: { host, ...bearer } })).status, host).toBe(200);
    }
  });

  it('refuses cross-site requests (CSRF): foreign Origin or Sec-Fetch-Site', async () => {
    const port = new URL(srv.url).port;
    const body = JSON.stringify({ sourceRef: inside, boxes: [] });
    const post = (headers: Record<string, string>) =>
      raw(srv.url + 'api/jobs/sec/annotations', {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...bearer, ...headers },
        body,
      });
    const evil = await post({ origin: 'http://evil.example' });
    expect(evil.status).toBe(403);
    expect(JSON.parse(evil.body)).toMatchObject({ code: 'BAD_ORIGIN' });
    expect((await post({ origin: `http://evil.example:${port}` })).status).toBe(403);
    expect((await post({ origin: 'null' })).status).toBe(403);
    expect((await post({ 'sec-fetch-site': 'cross-site' })).status).toBe(403);
    expect(
      (
        await raw(srv.url + 'api/login', {
          method: 'POST',
          headers: { 'content-type': 'application/json', origin: 'http://evil.example' },
          body: '{"token":"x"}',
        })
      ).status,
    ).toBe(403);
    // nothing was recorded by the refused requests
    expect(lab.getJob('sec').counts.annotations).toBe(0);
    // same-origin requests (the UI itself) and scripts without Origin pass
    expect((await post({ origin: `http://127.0.0.1:${port}`, 'sec-fetch-site': 'same-origin' })).status).toBe(200);
    expect(lab.getJob('sec').counts.annotations).toBe(1);
  });
});
