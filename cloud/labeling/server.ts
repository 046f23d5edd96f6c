import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { LoupeError, errorMessage, isLoupeError } from '../../lib/errors.js';
import { silentLogger } from '../../lib/log.js';
import { projectRoot } from '../../lib/paths.js';
import type { ImageSource } from './images.js';
import type { Labeling } from './jobs.js';

/**
 * The labelling web UI's server: plain HTML/JS/CSS assets (cloud/labeling/ui, no build step)
 * and a small JSON API over a `Labeling` instance.
 *
 *   const srv = await startLabelServer({ lab, images, token, port?, host? })
 *   srv.url  // http://127.0.0.1:<port>/ ; srv.stop()
 *
 * Access needs the token: POST /api/login {token, worker} sets an HttpOnly, SameSite=Strict
 * session cookie; scripts may instead send `Authorization: Bearer <token>` with an
 * `X-Loupe-Worker` header. Pages redirect to /login without a session; the API answers 401.
 * Images are served only for images that are part of a job.
 *
 * API: GET /api/me · GET /api/jobs · GET /api/jobs/:job/task · POST /api/jobs/:job/annotations
 * {sourceRef, boxes} · GET /api/jobs/:job/verify · POST /api/jobs/:job/verify {sourceRef,
 * verdict: approve|reject, reason} · GET /api/image?ref=… · POST /api/logout
 */
export interface LabelServerOptions {
  lab: Labeling;
  images: ImageSource;
  token: string;
  port?: number;
  host?: string;
  /** Session lifetime (s), default 12 h. */
  sessionSeconds?: number;
  log?: Logger;
}

export interface LabelServer {
  url: string;
  port: number;
  server: Server;
  stop(): Promise<void>;
}

const UI_DIR = join(projectRoot, 'cloud', 'labeling', 'ui');
const ASSETS: Record<string, { file: string; type: string }> = {
  '/': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/login': { file: 'login.html', type: 'text/html; charset=utf-8' },
  '/assets/app.js': { file: 'app.js', type: 'text/javascript; charset=utf-8' },
  '/assets/editor.js': { file: 'editor.js', type: 'text/javascript; charset=utf-8' },
  '/assets/login.js': { file: 'login.js', type: 'text/javascript; charset=utf-8' },
  '/assets/app.css': { file: 'app.css', type: 'text/css; charset=utf-8' },
};
const PUBLIC = new Set(['/login', '/assets/login.js', '/assets/app.css']);
const MAX_BODY = 1 << 20;

const digest = (s: string) => createHash('sha256').update(s).digest();

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly code = 'HTTP',
  ) {
    super(message);
  }
}

function statusOf(e: LoupeError): number {
  if (/NO_JOB|NO_ITEM/.test(e.code)) return 404;
  if (/DONE|DUPLICATE|NOT_READY/.test(e.code)) return 409;
  return 400;
}

async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > MAX_BODY) throw new HttpError(413, 'request body over 1 MiB');
    chunks.push(c as Buffer);
  }
  try {
    const v = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}');
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('not an object');
    return v as Record<string, unknown>;
  } catch (e) {
    throw new HttpError(400, `body must be a JSON object (${errorMessage(e)})`);
  }
}

function parseCookies(h: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of (h ?? '').split(';')) {
    const i = part.indexOf('=');
    if (i > 0) out[part.slice(0, i).trim()] = decodeURIComponent(part.slice(i + 1).trim());
  }
  return out;
}

export async function startLabelServer(opts: LabelServerOptions): Promise<LabelServer> {
  if (!opts.token || opts.token.length < 8) throw new LoupeError('LABEL_SERVER_TOKEN', 'the labelling UI needs a token of at least 8 characters', { input: 'token' });
  const log = opts.log ?? silentLogger;
  const tokenDigest = digest(opts.token);
  const sessions = new Map<string, { worker: string; expires: number }>();
  const ttl = (opts.sessionSeconds ?? 12 * 3600) * 1000;
  const { lab, images } = opts;

  const tokenOk = (t: unknown) => typeof t === 'string' && timingSafeEqual(digest(t), tokenDigest);
  const workerName = (w: unknown): string => {
    const s = typeof w === 'string' ? w.trim() : '';
    if (!/^[\w.@-]{1,64}$/.test(s)) throw new HttpError(400, 'worker name must be 1-64 letters, digits, . _ @ -', 'BAD_WORKER');
    return s;
  };

  const whoami = (req: IncomingMessage): string | null => {
    const auth = req.headers.authorization;
    if (auth?.startsWith('Bearer ')) {
      if (!tokenOk(auth.slice(7))) return null;
      return workerName(req.headers['x-loupe-worker'] ?? 'api');
    }
    const sid = parseCookies(req.headers.cookie).loupe_session;
    const s = sid ? sessions.get(sid) : undefined;
    if (!s) return null;
    if (s.expires < Date.now()) {
      sessions.delete(sid!);
      return null;
    }
    return s.worker;
  };

  const send = (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) => {
    const data = typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body);
    res.writeHead(status, {
      'content-type': typeof body === 'string' || Buffer.isBuffer(body) ? 'text/plain; charset=utf-8' : 'application/json',
      'cache-control': 'no-store',
      'x-content-type-options': 'nosniff',
      ...headers,
    });
    res.end(data);
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const path = url.pathname;
    const method = req.method ?? 'GET';

    const asset = ASSETS[path];
    if (asset && method === 'GET') {
      if (!PUBLIC.has(path) && !whoami(req)) {
        if (path === '/') return send(res, 302, '', { location: '/login' });
        throw new HttpError(401, 'log in first');
      }
      const body = await readFile(join(UI_DIR, asset.file));
      return send(res, 200, body, {
        'content-type': asset.type,
        'content-security-policy': "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'",
      });
    }

    if (path === '/api/login' && method === 'POST') {
      const body = await readJson(req);
      if (!tokenOk(body.token)) {
        log.warn({ remote: req.socket.remoteAddress }, 'labelling UI: login with a wrong token');
        throw new HttpError(401, 'wrong token', 'BAD_TOKEN');
      }
      const worker = workerName(body.worker);
      const sid = randomBytes(32).toString('hex');
      sessions.set(sid, { worker, expires: Date.now() + ttl });
      return send(res, 200, { worker }, { 'set-cookie': `loupe_session=${sid}; HttpOnly; SameSite=Strict; Path=/; Max-Age=${Math.floor(ttl / 1000)}` });
    }

    if (!path.startsWith('/api/')) throw new HttpError(404, 'not found');
    const worker = whoami(req);
    if (!worker) throw new HttpError(401, 'log in first (token)', 'UNAUTHENTICATED');

    if (path === '/api/logout' && method === 'POST') {
      const sid = parseCookies(req.headers.cookie).loupe_session;
      if (sid) sessions.delete(sid);
      return send(res, 200, { ok: true }, { 'set-cookie': 'loupe_session=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0' });
    }
    if (path === '/api/me' && method === 'GET') return send(res, 200, { worker });
    if (path === '/api/jobs' && method === 'GET') return send(res, 200, { jobs: lab.listJobs() });
    if (path === '/api/image' && method === 'GET') {
      const ref = url.searchParams.get('ref') ?? '';
      if (!lab.hasItem(ref)) throw new HttpError(404, 'no such image in any job');
      const buf = await images.read(ref);
      const type = /\.png$/i.test(ref) ? 'image/png' : 'image/jpeg';
      return send(res, 200, buf, { 'content-type': type, 'cache-control': 'private, max-age=3600' });
    }
    const m = /^\/api\/jobs\/([^/]+)\/(task|annotations|verify)$/.exec(path);
    if (m) {
      const job = decodeURIComponent(m[1]!);
      const what = m[2];
      if (what === 'task' && method === 'GET') return send(res, 200, { job: lab.getJob(job), task: lab.nextTask(job, worker) });
      if (what === 'annotations' && method === 'POST') {
        const body = await readJson(req);
        const out = await lab.submit(job, String(body.sourceRef ?? ''), worker, body.boxes);
        log.info({ job, sourceRef: body.sourceRef, worker }, 'labels submitted');
        return send(res, 200, out);
      }
      if (what === 'verify' && method === 'GET') return send(res, 200, { job: lab.getJob(job), task: lab.nextVerification(job, worker) });
      if (what === 'verify' && method === 'POST') {
        const body = await readJson(req);
        const verdict = body.verdict === 'approve' || body.verdict === 'reject' ? body.verdict : (String(body.verdict) as 'approve');
        await lab.verify(job, String(body.sourceRef ?? ''), { verdict, reason: typeof body.reason === 'string' ? body.reason : undefined, verifier: worker });
        log.info({ job, sourceRef: body.sourceRef, worker, verdict }, 'verdict recorded');
        return send(res, 200, { ok: true });
      }
    }
    throw new HttpError(404, 'not found');
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((e: unknown) => {
      if (e instanceof HttpError) return send(res, e.status, { error: e.message, code: e.code });
      if (isLoupeError(e)) return send(res, statusOf(e), { error: e.message, code: e.code });
      log.error({ err: errorMessage(e), url: req.url }, 'labelling UI: request failed');
      send(res, 500, { error: 'internal error' });
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, opts.host ?? '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const url = `http://${opts.host && opts.host !== '0.0.0.0' ? opts.host : '127.0.0.1'}:${port}/`;
  log.info({ url }, 'labelling UI listening');
  return {
    url,
    port,
    server,
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
