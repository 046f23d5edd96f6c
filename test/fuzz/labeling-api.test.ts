import fc from 'fast-check';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ImageSource } from '../../cloud/labeling/images.js';
import { Labeling } from '../../cloud/labeling/jobs.js';
import { startLabelServer, type LabelServer } from '../../cloud/labeling/server.js';
import { makeRecord, openLabelStore, type SqliteLabelStore } from '../../cloud/labelstore/index.js';
import { FUZZ_SECONDS, fuzzAsync } from './harness.js';

/**
 * Fuzz target: the labelling API's bodies (and paths, queries, headers) against a running
 * server, and Labeling.submit/verify behind it. Property: every request gets an answer that is
 * not a 500 (a 4xx with a JSON {error, code} when refused), the server keeps serving, and the
 * direct calls give a result or a LoupeError.
 */
const REFS = ['s3://plant/incoming/a.jpg', 's3://plant/incoming/b.jpg', 's3://plant/incoming/c.jpg'];
let dir: string;
let store: SqliteLabelStore;
let lab: Labeling;
let srv: LabelServer;
const tokens: string[] = [];
const agent = new Agent({ keepAlive: true, maxSockets: 4 });

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'fuzz-lab-'));
  store = openLabelStore(join(dir, 'labels.db'));
  await store.append(
    REFS.map((r) =>
      makeRecord({
        source_ref: r,
        image_width: 200,
        image_height: 100,
        annotations: [],
        event_time: 1,
        labeling_job: '',
        status: 'PENDING',
        device: 'd',
      }),
    ),
  );
  lab = new Labeling(store);
  await lab.createJob({ name: 'fz', classes: ['scratch', 'dent'], workersPerImage: 3, maxBoxes: 50 });
  for (const [w, roles] of [
    ['w1', 'label,verify'],
    ['w2', 'label'],
    ['w3', 'label,verify'],
    ['v', 'verify'],
  ] as const)
    tokens.push(lab.workers.add(w, roles).token);
  // a.jpg and b.jpg are served from a folder; c.jpg's image is missing (a 404 to answer)
  mkdirSync(join(dir, 'images', 'incoming'), { recursive: true });
  for (const f of ['a.jpg', 'b.jpg']) writeFileSync(join(dir, 'images', 'incoming', f), 'jpeg');
  srv = await startLabelServer({
    lab,
    images: new ImageSource({ mappings: [{ refPrefix: 's3://plant/', dir: join(dir, 'images'), idParts: 2 }] }),
  });
});
afterAll(async () => {
  agent.destroy();
  await srv?.stop();
  lab?.close();
  await store?.close();
  rmSync(dir, { recursive: true, force: true });
});

const num = fc.oneof(
  { weight: 5, arbitrary: fc.integer({ min: -5, max: 260 }) },
  fc.double(),
  fc.constantFrom(Number.MAX_VALUE, -0, 1e308, 0.5),
);
const box = fc.oneof(
  { weight: 4, arbitrary: fc.record({ class_id: fc.oneof(fc.constantFrom(0, 1), num), left: num, top: num, width: num, height: num }) },
  {
    weight: 1,
    arbitrary: fc.record(
      { class_id: fc.anything(), left: fc.anything(), top: num, width: num, height: num, confidence: fc.anything() },
      { requiredKeys: [] },
    ),
  },
  { weight: 1, arbitrary: fc.anything() },
);
const body = fc.oneof(
  {
    weight: 6,
    arbitrary: fc
      .record(
        {
          sourceRef: fc.oneof(fc.constantFrom(...REFS), fc.string()),
          boxes: fc.oneof({ weight: 5, arbitrary: fc.array(box, { maxLength: 60 }) }, fc.anything()),
          replace: fc.oneof(fc.boolean(), fc.anything()),
          verdict: fc.constantFrom('approve', 'reject', 'maybe', ''),
          reason: fc.oneof(fc.string(), fc.anything()),
          token: fc.oneof(fc.constantFrom(...(tokens.length ? tokens : ['x'])), fc.string()),
          worker: fc.string(),
        },
        { requiredKeys: [] },
      )
      .map((o) => JSON.stringify(o)),
  },
  { weight: 2, arbitrary: fc.jsonValue({ maxDepth: 4 }).map((v) => JSON.stringify(v)) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 200 }) },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      '',
      '{',
      '{"boxes":',
      'null',
      '[]',
      '{"__proto__":{"x":1}}',
      '{"boxes":[' + '['.repeat(5000) + ']'.repeat(5000) + ']}',
    ),
  },
);
const segment = fc.oneof(
  { weight: 8, arbitrary: fc.constant('fz') },
  fc.constantFrom('nope', '%zz', '%2e%2e', '..', '', 'fz%2F..', 'a'.repeat(300)),
  fc.string({ maxLength: 12 }).map(encodeURIComponent),
);
const path = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.tuple(segment, fc.constantFrom('task', 'items', 'skip', 'annotations', 'verify')).map(([j, w]) => `/api/jobs/${j}/${w}`),
  },
  {
    weight: 2,
    arbitrary: fc.constantFrom(
      '/api/me',
      '/api/jobs',
      '/api/login',
      '/api/logout',
      '/api/image',
      '/',
      '/login',
      '/assets/app.js',
      '/api/',
      '/api/jobs/fz',
      '//api/me',
    ),
  },
  { weight: 1, arbitrary: fc.string({ maxLength: 30 }).map((s) => '/' + encodeURI(s).replace(/[?#]/g, '')) },
);
const query = fc.oneof(
  fc.constant(''),
  fc
    .array(fc.tuple(fc.constantFrom('ref', 'skip', 'x'), fc.oneof(fc.constantFrom(...REFS), fc.string({ maxLength: 20 }))), {
      maxLength: 4,
    })
    .map((kv) => '?' + kv.map(([k, v]) => `${k}=${encodeURIComponent(v)}`).join('&')),
  fc.constantFrom('?ref=%zz', '?skip=' + 'x&skip='.repeat(600)),
);
/** Mostly absent (null), sometimes one of the hostile values. */
const rarely = (a: fc.Arbitrary<string>) => fc.oneof({ weight: 6, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: a });
const requestArb = fc.record({
  method: fc.oneof({ weight: 8, arbitrary: fc.constantFrom('GET', 'POST') }, fc.constantFrom('PUT', 'DELETE', 'OPTIONS', 'HEAD')),
  path,
  query,
  auth: fc.oneof(
    { weight: 6, arbitrary: fc.nat({ max: 3 }).map((i) => `Bearer ${tokens[i]}`) },
    fc.constantFrom(undefined, 'Bearer ', 'Bearer x', 'Basic Zm9vOmJhcg=='),
    fc.string({ maxLength: 30 }),
  ),
  cookie: rarely(
    fc.constantFrom('loupe_session=%zz', 'loupe_session=', 'a=b; loupe_session=' + 'f'.repeat(64), '=;=;', 'loupe_session=%E0%A4%A'),
  ),
  origin: rarely(fc.constantFrom('http://evil.example', 'null', 'http://127.0.0.1', '%%%')),
  worker: rarely(fc.constantFrom('w1', 'w2', 'mallory', '')),
  contentType: fc.constantFrom('application/json', 'text/plain', 'application/x-www-form-urlencoded', ''),
  body,
});

interface Req {
  method: string;
  path: string;
  query: string;
  auth: string | undefined;
  cookie: string | null;
  origin: string | null;
  worker: string | null;
  contentType: string;
  body: string;
}

function send(r: Req) {
  const u = new URL(srv.url);
  const headers: Record<string, string> = {};
  if (r.auth !== undefined) headers.authorization = r.auth.replace(/[\r\n]/g, '');
  if (r.cookie) headers.cookie = r.cookie;
  if (r.origin) headers.origin = r.origin;
  if (r.worker !== null) headers['x-loupe-worker'] = r.worker;
  if (r.contentType) headers['content-type'] = r.contentType;
  const payload = r.method === 'GET' ? undefined : Buffer.from(r.body);
  // framed: Node does not chunk DELETE/OPTIONS bodies, and an unframed body is a malformed request
  if (payload) headers['content-length'] = String(payload.length);
  return new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = request({ host: u.hostname, port: u.port, method: r.method, path: r.path + r.query, headers, agent }, (res) => {
      let b = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (b += c));
      res.on('end', () => resolve({ status: res.statusCode!, body: b }));
    });
    req.on('error', reject);
    req.end(payload);
  });
}

describe('fuzz: labelling API', () => {
  it(
    'answers every request, never with a 500; refusals are 4xx with a code; the server keeps serving',
    async () => {
      const r = await fuzzAsync(
        'labeling-api',
        requestArb,
        async (req, stats) => {
          let invalidHeader = false;
          const t0 = performance.now();
          const res = await send(req).catch((e: Error) => {
            // Node refuses to send some generated header values itself: not the server's business
            if (/Invalid character|ERR_INVALID_CHAR|ERR_INVALID_HTTP_TOKEN/.test(`${(e as NodeJS.ErrnoException).code} ${e.message}`)) {
              invalidHeader = true;
              return { status: 0, body: '' };
            }
            throw e;
          });
          if (invalidHeader) return;
          stats.iterations++;
          stats.maxCallMs = Math.max(stats.maxCallMs, performance.now() - t0);
          // 500 is a crash; 502 is deliberate (the image's upstream failed) and must say so
          if (res.status >= 500 && !(res.status === 502 && /"code":"IMAGE_/.test(res.body)))
            throw new Error(`${req.method} ${req.path}${req.query} answered ${res.status}: ${res.body.slice(0, 200)}`);
          if (res.status >= 400 && req.path.startsWith('/api/') && req.method !== 'HEAD') {
            const b = JSON.parse(res.body) as { error?: unknown; code?: unknown };
            if (typeof b.error !== 'string' || typeof b.code !== 'string')
              throw new Error(`${res.status} without {error, code}: ${res.body.slice(0, 200)}`);
            stats.note(b.code, false);
          } else stats.note(String(res.status), res.status < 400);
          if (stats.iterations % 50 === 0) {
            const me = await send({
              method: 'GET',
              path: '/api/me',
              query: '',
              auth: `Bearer ${tokens[0]}`,
              cookie: null,
              origin: null,
              worker: null,
              contentType: '',
              body: '',
            });
            if (me.status !== 200) throw new Error(`server stopped serving: /api/me answered ${me.status}`);
          }
        },
        { maxCallMs: 10_000 },
      );
      expect(r.iterations).toBeGreaterThanOrEqual(20); // the budget is time: a loaded machine runs fewer
      expect(r.refused).toBeGreaterThan(0);
      await lab.settle();
      // what was accepted is consistent: every consolidated image had its three workers
      for (const it of lab.items('fz')) if (it.consolidated) expect(it.annotations.length).toBe(3);
    },
    FUZZ_SECONDS * 1000 + 120_000,
  );

  it(
    'Labeling.submit and verify: a result or a LoupeError for any boxes, verdict and reason',
    async () => {
      const r = await fuzzAsync(
        'labeling-submit',
        fc.record({
          ref: fc.oneof(fc.constantFrom(...REFS), fc.string()),
          worker: fc.constantFrom('x1', 'x2', 'x3', 'x4', ''),
          boxes: fc.oneof({ weight: 4, arbitrary: fc.array(box, { maxLength: 60 }) }, fc.anything()),
          replace: fc.boolean(),
          verdict: fc.oneof(fc.constantFrom('approve', 'reject'), fc.anything()),
          reason: fc.oneof(fc.string({ maxLength: 3000 }), fc.anything()),
        }),
        async ({ ref, worker, boxes, replace, verdict, reason }, stats) => {
          await stats.checkAsync(() => lab.submit('fz', ref, worker, boxes, { replace }));
          await stats.checkAsync(() => lab.verify('fz', ref, { verdict: verdict as 'approve', reason: reason as string, verifier: 'vx' }));
        },
      );
      expect(r.iterations).toBeGreaterThanOrEqual(20); // the budget is time: a loaded machine runs fewer
    },
    FUZZ_SECONDS * 1000 + 60_000,
  );
});
