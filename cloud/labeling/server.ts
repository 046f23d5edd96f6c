import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { isIP, type AddressInfo } from 'node:net';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { LoupeError, errorMessage, isLoupeError } from '../../lib/errors.js';
import { silentLogger } from '../../lib/log.js';
import { projectRoot } from '../../lib/paths.js';
import type { ImageSource } from './images.js';
import type { Labeling } from './jobs.js';
import { WorkerSession } from './session.js';

/**
 * The labelling web UI's server: plain HTML/JS/CSS assets (cloud/labeling/ui, no build step)
 * and a small JSON API over a `Labeling` instance.
 *
 *   const srv = await startLabelServer({ lab, images, port?, host?, allowedHosts? })
 *   srv.url  // http://127.0.0.1:<port>/ ; srv.stop()
 *
 * Who is asking: every worker has their own credential (`loupe labels workers add`, stored
 * hashed in the labelling database). POST /api/login {token} sets an HttpOnly, SameSite=Strict
 * session cookie for the credential's owner; scripts may send `Authorization: Bearer <token>`
 * instead. The worker is always the credential's owner: no header or body field can name
 * another (a differing `X-Loupe-Worker` or login `worker` is refused, not obeyed). Sessions
 * re-check the worker on every request, so a revoked credential stops at once. Pages redirect
 * to /login without a session; the API answers 401.
 *
 * Browser-borne attacks: requests must name this server in Host (an IP address, localhost, or
 * one of `allowedHosts`), which defeats DNS rebinding; API requests from another origin
 * (Origin, or Sec-Fetch-Site cross-site/same-site) are refused (CSRF), including login.
 *
 * API: GET /api/me · GET /api/jobs · GET /api/jobs/:job/items · GET /api/jobs/:job/task[?ref=R][&skip=R…]
 * · POST /api/jobs/:job/skip {sourceRef} · POST /api/jobs/:job/annotations {sourceRef, boxes, replace?}
 * · GET /api/jobs/:job/verify[?ref=R][&skip=R…] · POST /api/jobs/:job/verify {sourceRef, verdict:
 * approve|reject, reason} · GET /api/image?ref=… · POST /api/login {token} · POST /api/logout
 */
export interface LabelServerOptions {
  lab: Labeling;
  images: ImageSource;
  port?: number;
  host?: string;
  /** Host names (besides IP addresses and localhost) this server may be reached by, e.g. behind a proxy. */
  allowedHosts?: string[];
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
const MAX_SESSIONS = 10_000;
const MAX_SKIP = 500;

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
  if (e.code === 'UNAUTHENTICATED') return 401;
  if (e.code === 'WORKER_FORBIDDEN' || e.code === 'VERIFY_OWN_LABEL') return 403;
  if (e.code === 'LABEL_TOO_MANY_BOXES') return 413;
  if (/NO_JOB|NO_ITEM|IMAGE_MISSING/.test(e.code)) return 404;
  if (/DONE|DUPLICATE|NOT_READY|NOT_AVAILABLE/.test(e.code)) return 409;
  if (e.code === 'IMAGE_FETCH' || e.code === 'IMAGE_NO_SOURCE') return 502;
  return 400;
}

async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > MAX_BODY) throw new HttpError(413, 'request body over 1 MiB', 'BODY_TOO_LARGE');
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > MAX_BODY) throw new HttpError(413, 'request body over 1 MiB', 'BODY_TOO_LARGE');
    chunks.push(c as Buffer);
  }
  try {
    const v = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}');
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('not an object');
    return v as Record<string, unknown>;
  } catch (e) {
    throw new HttpError(400, `body must be a JSON object (${errorMessage(e)})`, 'BAD_BODY');
  }
}

/** Cookies by name; a value that is not valid percent-encoding is skipped, never thrown on. */
export function parseCookies(h: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of (h ?? '').split(';')) {
    const i = part.indexOf('=');
    if (i <= 0) continue;
    try {
      out[part.slice(0, i).trim()] = decodeURIComponent(part.slice(i + 1).trim());
    } catch {
      // a malformed value (loupe_session=%zz) is the same as none
    }
  }
  return out;
}

/**
 * Whether a Host header names this server: IP literals (a page on an IP origin is same-origin
 * with us, nothing to rebind), localhost and *.localhost (browsers resolve them to loopback
 * themselves), and the configured names. A DNS-rebinding page sends its own domain and fails.
 */
export function hostAllowed(host: string | undefined, allowed: readonly string[]): boolean {
  if (!host || /[@/\\?#\s]/.test(host)) return false; // a plain host[:port], no userinfo or path
  let name: string;
  try {
    name = new URL(`http://${host}`).hostname.toLowerCase();
  } catch {
    return false;
  }
  const bare = name.startsWith('[') ? name.slice(1, -1) : name;
  if (isIP(bare)) return true;
  if (name === 'localhost' || name.endsWith('.localhost')) return true;
  return allowed.some((a) => a.toLowerCase() === name);
}

/**
 * Why a request from a browser must be refused as cross-origin (CSRF), or null: an Origin that is
 * not this server's Host, or Sec-Fetch-Site cross-site/same-site. (The operator console uses it too.)
 */
export function crossOriginRefusal(req: IncomingMessage): string | null {
  const host = req.headers.host ?? '';
  const origin = req.headers.origin;
  if (origin !== undefined) {
    let same = false;
    try {
      const o = new URL(origin);
      same = (o.protocol === 'http:' || o.protocol === 'https:') && o.host.toLowerCase() === host.toLowerCase();
    } catch {
      same = false;
    }
    if (!same) return `cross-origin request from ${JSON.stringify(origin)} refused`;
  }
  const site = req.headers['sec-fetch-site'];
  if (site !== undefined && site !== 'same-origin' && site !== 'none')
    return `cross-site request (Sec-Fetch-Site: ${String(site)}) refused`;
  return null;
}

const safeDecode = (s: string): string => {
  try {
    return decodeURIComponent(s);
  } catch {
    throw new HttpError(400, 'malformed percent-encoding in the path', 'BAD_PATH');
  }
};

export async function startLabelServer(opts: LabelServerOptions): Promise<LabelServer> {
  if ((opts as { token?: unknown }).token !== undefined) {
    throw new LoupeError(
      'LABEL_SHARED_TOKEN',
      'a shared token lets one holder act as every worker; issue each worker a credential (`loupe labels workers add NAME`)',
      { input: 'token' },
    );
  }
  const log = opts.log ?? silentLogger;
  const sessions = new Map<string, { worker: string; expires: number }>();
  const ttl = (opts.sessionSeconds ?? 12 * 3600) * 1000;
  // The name it was told to listen on is one of its names.
  const allowedHosts = [...(opts.allowedHosts ?? []), ...(opts.host && !isIP(opts.host) ? [opts.host] : [])];
  const { lab, images } = opts;
  // Images that got all their labels before a crash are consolidated now.
  lab.settle().catch((e) => log.error({ err: errorMessage(e) }, 'labelling UI: consolidating left-over labels failed'));

  const sessionOf = (req: IncomingMessage): WorkerSession | null => {
    const auth = req.headers.authorization;
    let s: WorkerSession | null = null;
    if (auth?.startsWith('Bearer ')) {
      const w = lab.workers.authenticate(auth.slice(7).trim());
      s = w ? new WorkerSession(lab, w) : null;
    } else {
      const sid = parseCookies(req.headers.cookie).loupe_session;
      const entry = sid ? sessions.get(sid) : undefined;
      if (entry && entry.expires < Date.now()) sessions.delete(sid!);
      const w = entry && entry.expires >= Date.now() ? lab.workers.active(entry.worker) : null;
      s = w ? new WorkerSession(lab, w) : null;
    }
    const claimed = req.headers['x-loupe-worker'];
    if (s && claimed !== undefined && claimed !== s.id) {
      throw new HttpError(
        400,
        `X-Loupe-Worker says ${JSON.stringify(claimed)} but the credential belongs to ${s.id}; the worker is always the credential's owner`,
        'WORKER_MISMATCH',
      );
    }
    return s;
  };

  const newSession = (worker: string): string => {
    const now = Date.now();
    for (const [k, v] of sessions) if (v.expires < now) sessions.delete(k);
    // Map iteration is insertion order: the first entries are the oldest sessions.
    while (sessions.size >= MAX_SESSIONS) sessions.delete(sessions.keys().next().value!);
    const sid = randomBytes(32).toString('hex');
    sessions.set(sid, { worker, expires: now + ttl });
    return sid;
  };

  const send = (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) => {
    const data = typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body);
    res.writeHead(status, {
      'content-type': typeof body === 'string' || Buffer.isBuffer(body) ? 'text/plain; charset=utf-8' : 'application/json',
      'cache-control': 'no-store',
      'x-content-type-options': 'nosniff',
      'x-frame-options': 'DENY',
      'referrer-policy': 'no-referrer',
      ...headers,
    });
    res.end(data);
  };

  /** Host on every request; Origin / Sec-Fetch-Site on every API request. */
  const checkRequestOrigin = (req: IncomingMessage, path: string): void => {
    const host = req.headers.host;
    if (!hostAllowed(host, allowedHosts)) {
      throw new HttpError(
        403,
        `Host ${JSON.stringify(host ?? '')} is not this server (allowed: IP addresses, localhost${allowedHosts.length ? ', ' + allowedHosts.join(', ') : ''}; labels serve --allowed-host adds names)`,
        'BAD_HOST',
      );
    }
    if (!path.startsWith('/api/')) return;
    const refusal = crossOriginRefusal(req);
    if (refusal) throw new HttpError(403, refusal, 'BAD_ORIGIN');
  };

  const skipSet = (url: URL): Set<string> => {
    const skip = url.searchParams.getAll('skip');
    if (skip.length > MAX_SKIP) throw new HttpError(400, `at most ${MAX_SKIP} skipped images`, 'BAD_QUERY');
    return new Set(skip);
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    // Parsed as a path on a fixed origin: '//host/x' or an absolute URL in the request line must not
    // be read as another authority (new URL('//a', base) would).
    let url: URL;
    try {
      url = new URL(`http://localhost${(req.url ?? '/').startsWith('/') ? req.url : '/' + req.url}`);
    } catch {
      throw new HttpError(400, 'malformed request target', 'BAD_PATH');
    }
    const path = url.pathname;
    const method = req.method ?? 'GET';
    checkRequestOrigin(req, path);

    const asset = ASSETS[path];
    if (asset && method === 'GET') {
      if (!PUBLIC.has(path) && !sessionOf(req)) {
        if (path === '/') return send(res, 302, '', { location: '/login' });
        throw new HttpError(401, 'log in first');
      }
      const body = await readFile(join(UI_DIR, asset.file));
      return send(res, 200, body, {
        'content-type': asset.type,
        'content-security-policy':
          "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'; form-action 'self'",
      });
    }

    if (path === '/api/login' && method === 'POST') {
      const body = await readJson(req);
      const w = lab.workers.authenticate(body.token);
      if (!w) {
        log.warn({ remote: req.socket.remoteAddress }, 'labelling UI: login with an unknown or revoked credential');
        throw new HttpError(401, 'unknown or revoked credential', 'BAD_TOKEN');
      }
      if (body.worker !== undefined && body.worker !== w.id) {
        throw new HttpError(400, `this credential belongs to ${w.id}, not ${JSON.stringify(body.worker)}`, 'WORKER_MISMATCH');
      }
      const sid = newSession(w.id);
      log.info({ worker: w.id }, 'labelling UI: login');
      return send(
        res,
        200,
        { worker: w.id, roles: w.roles },
        { 'set-cookie': `loupe_session=${sid}; HttpOnly; SameSite=Strict; Path=/; Max-Age=${Math.floor(ttl / 1000)}` },
      );
    }

    if (!path.startsWith('/api/')) throw new HttpError(404, 'not found');
    const s = sessionOf(req);
    if (!s) throw new HttpError(401, 'log in first (your worker credential)', 'UNAUTHENTICATED');

    if (path === '/api/logout' && method === 'POST') {
      const sid = parseCookies(req.headers.cookie).loupe_session;
      if (sid) sessions.delete(sid);
      return send(res, 200, { ok: true }, { 'set-cookie': 'loupe_session=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0' });
    }
    if (path === '/api/me' && method === 'GET') return send(res, 200, { worker: s.id, roles: s.worker.roles });
    if (path === '/api/jobs' && method === 'GET') return send(res, 200, { jobs: lab.listJobs() });
    if (path === '/api/image' && method === 'GET') {
      const ref = url.searchParams.get('ref') ?? '';
      if (!lab.hasItem(ref)) throw new HttpError(404, 'no such image in any job');
      const buf = await images.read(ref);
      const type = /\.png$/i.test(ref) ? 'image/png' : 'image/jpeg';
      return send(res, 200, buf, { 'content-type': type, 'cache-control': 'private, max-age=3600' });
    }
    const m = /^\/api\/jobs\/([^/]+)\/(task|items|skip|annotations|verify)$/.exec(path);
    if (m) {
      const job = safeDecode(m[1]!);
      const what = m[2];
      if (what === 'items' && method === 'GET') return send(res, 200, { job: lab.getJob(job), items: s.items(job) });
      if (what === 'task' && method === 'GET') {
        const ref = url.searchParams.get('ref');
        return send(res, 200, { job: lab.getJob(job), task: ref !== null ? s.taskFor(job, ref) : s.nextTask(job, { skip: skipSet(url) }) });
      }
      if (what === 'skip' && method === 'POST') {
        const body = await readJson(req);
        s.skip(job, String(body.sourceRef ?? ''));
        return send(res, 200, { ok: true });
      }
      if (what === 'annotations' && method === 'POST') {
        const body = await readJson(req);
        const out = await s.submit(job, String(body.sourceRef ?? ''), body.boxes, { replace: body.replace === true });
        log.info(
          {
            job,
            sourceRef: body.sourceRef,
            worker: s.id,
            boxes: Array.isArray(body.boxes) ? body.boxes.length : null,
            complete: out.complete,
          },
          'labels submitted',
        );
        return send(res, 200, out);
      }
      if (what === 'verify' && method === 'GET') {
        const ref = url.searchParams.get('ref');
        return send(res, 200, {
          job: lab.getJob(job),
          task: s.nextVerification(job, { skip: skipSet(url), ...(ref !== null ? { ref } : {}) }),
        });
      }
      if (what === 'verify' && method === 'POST') {
        const body = await readJson(req);
        const verdict = body.verdict === 'approve' || body.verdict === 'reject' ? body.verdict : (String(body.verdict) as 'approve');
        await s.verify(job, String(body.sourceRef ?? ''), { verdict, reason: typeof body.reason === 'string' ? body.reason : undefined });
        log.info({ job, sourceRef: body.sourceRef, worker: s.id, verdict }, 'verdict recorded');
        return send(res, 200, { ok: true });
      }
    }
    throw new HttpError(404, 'not found');
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((e: unknown) => {
      if (res.headersSent) return res.destroy();
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
  const url = `http://${opts.host && opts.host !== '0.0.0.0' && opts.host !== '::' ? (isIP(opts.host) === 6 ? `[${opts.host}]` : opts.host) : '127.0.0.1'}:${port}/`;
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
