import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { isIP, type AddressInfo } from 'node:net';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { errorMessage, LoupeError } from '../../lib/errors.js';
import { silentLogger } from '../../lib/log.js';
import { projectRoot } from '../../lib/paths.js';
import { crossOriginRefusal, hostAllowed, parseCookies } from '../labeling/server.js';
import type { ConsoleSources } from './sources.js';

/**
 * The operator console's web server: static pages (cloud/console/ui, no build step) and a
 * read-only JSON API over ConsoleSources.
 *
 * Beside the labelling UI, not inside it: the two serve different people with different
 * credentials (each labeller has their own worker credential; the console has one operator
 * credential), and a labeller's credential must not open fleet, model or run data. The console
 * reuses the labelling server's Host check (DNS rebinding) and cookie parsing, and refuses
 * cross-origin API requests the same way.
 *
 * Auth: the console credential (LOUPE_CONSOLE_TOKEN, or a 0600 file; never on the command line).
 * POST /api/login {token} sets an HttpOnly SameSite=Strict session cookie; scripts may send
 * `Authorization: Bearer <token>`. Pages redirect to /login without a session; the API answers 401.
 *
 * API (GET): /api/fleet · /api/live · /api/labelling · /api/runs · /api/models · /api/frame?thing=&frame=
 */
export interface ConsoleServerOptions {
  sources: ConsoleSources;
  token: string;
  port?: number;
  host?: string;
  allowedHosts?: string[];
  log?: Logger;
}

export interface ConsoleServer {
  url: string;
  port: number;
  server: Server;
  stop(): Promise<void>;
}

const UI_DIR = join(projectRoot, 'cloud', 'console', 'ui');
const ASSETS: Record<string, { file: string; type: string }> = {
  '/': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/login': { file: 'login.html', type: 'text/html; charset=utf-8' },
  '/assets/console.js': { file: 'console.js', type: 'text/javascript; charset=utf-8' },
  '/assets/login.js': { file: 'login.js', type: 'text/javascript; charset=utf-8' },
  '/assets/console.css': { file: 'console.css', type: 'text/css; charset=utf-8' },
};
const PUBLIC = new Set(['/login', '/assets/login.js', '/assets/console.css']);
const CSP =
  "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'; form-action 'self'";
const SESSION_TTL_MS = 12 * 3600 * 1000;

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

const digest = (s: string) => createHash('sha256').update(s).digest();

export async function startConsoleServer(opts: ConsoleServerOptions): Promise<ConsoleServer> {
  if (opts.token.length < 16)
    throw new LoupeError('CONSOLE_WEAK_TOKEN', 'the console credential must be at least 16 characters', { input: 'console token' });
  const log = opts.log ?? silentLogger;
  const want = digest(opts.token);
  const tokenOk = (t: string) => timingSafeEqual(digest(t), want);
  const sessions = new Map<string, number>();
  const allowedHosts = [...(opts.allowedHosts ?? []), ...(opts.host && !isIP(opts.host) ? [opts.host] : [])];

  const authed = (req: IncomingMessage): boolean => {
    const auth = req.headers.authorization;
    if (auth?.startsWith('Bearer ')) return tokenOk(auth.slice(7).trim());
    const sid = parseCookies(req.headers.cookie).loupe_console;
    const exp = sid ? sessions.get(sid) : undefined;
    return exp !== undefined && exp > Date.now();
  };

  const send = (res: ServerResponse, status: number, body: string | Buffer, headers: Record<string, string> = {}) => {
    res.writeHead(status, {
      'cache-control': 'no-store',
      'x-content-type-options': 'nosniff',
      'x-frame-options': 'DENY',
      'referrer-policy': 'no-referrer',
      ...headers,
    });
    res.end(body);
  };
  const json = (res: ServerResponse, status: number, v: unknown, headers: Record<string, string> = {}) =>
    send(res, status, JSON.stringify(v), { 'content-type': 'application/json', ...headers });

  const checkOrigin = (req: IncomingMessage, path: string) => {
    const host = req.headers.host;
    if (!hostAllowed(host, allowedHosts))
      throw new HttpError(403, `Host ${JSON.stringify(host ?? '')} is not this server (loupe console --allowed-host adds names)`);
    if (!path.startsWith('/api/')) return;
    const refusal = crossOriginRefusal(req);
    if (refusal) throw new HttpError(403, refusal);
  };

  const readBody = async (req: IncomingMessage): Promise<Record<string, unknown>> => {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const c of req) {
      size += (c as Buffer).length;
      if (size > 64 * 1024) throw new HttpError(413, 'request body over 64 KiB');
      chunks.push(c as Buffer);
    }
    try {
      return JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') as Record<string, unknown>;
    } catch {
      throw new HttpError(400, 'body must be JSON');
    }
  };

  const api: Record<string, () => Promise<unknown>> = {
    '/api/fleet': () => opts.sources.fleet(),
    '/api/live': () => opts.sources.live(),
    '/api/labelling': () => opts.sources.labelling(),
    '/api/runs': () => opts.sources.runs(),
    '/api/models': () => opts.sources.models(),
  };

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    let url: URL;
    try {
      url = new URL(`http://localhost${(req.url ?? '/').startsWith('/') ? req.url : '/' + req.url}`);
    } catch {
      throw new HttpError(400, 'malformed request target');
    }
    const path = url.pathname;
    const method = req.method ?? 'GET';
    checkOrigin(req, path);
    const asset = ASSETS[path];
    if (asset && method === 'GET') {
      if (!PUBLIC.has(path) && !authed(req)) {
        if (path === '/') return send(res, 302, '', { location: '/login' });
        throw new HttpError(401, 'log in first');
      }
      return send(res, 200, await readFile(join(UI_DIR, asset.file)), { 'content-type': asset.type, 'content-security-policy': CSP });
    }
    if (path === '/api/login' && method === 'POST') {
      const body = await readBody(req);
      if (typeof body.token !== 'string' || !tokenOk(body.token)) {
        log.warn({ from: req.socket.remoteAddress }, 'console: a login with a wrong credential');
        throw new HttpError(401, 'wrong credential');
      }
      const sid = randomBytes(32).toString('hex');
      const now = Date.now();
      for (const [k, exp] of sessions) if (exp < now) sessions.delete(k);
      sessions.set(sid, now + SESSION_TTL_MS);
      return json(
        res,
        200,
        { ok: true },
        { 'set-cookie': `loupe_console=${sid}; HttpOnly; SameSite=Strict; Path=/; Max-Age=${SESSION_TTL_MS / 1000}` },
      );
    }
    if (path === '/api/logout' && method === 'POST') {
      const sid = parseCookies(req.headers.cookie).loupe_console;
      if (sid) sessions.delete(sid);
      return json(res, 200, { ok: true }, { 'set-cookie': 'loupe_console=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0' });
    }
    if (!path.startsWith('/api/')) throw new HttpError(404, 'not found');
    if (!authed(req)) throw new HttpError(401, 'log in first');
    if (method !== 'GET') throw new HttpError(405, 'the console is read-only');
    if (path === '/api/frame') {
      const img = await opts.sources.frame(url.searchParams.get('thing') ?? '', url.searchParams.get('frame') ?? '');
      if (!img) throw new HttpError(404, 'that frame is not among the recent defects, or its file is gone');
      return send(res, 200, img, { 'content-type': 'image/jpeg' });
    }
    const f = api[path];
    if (!f) throw new HttpError(404, 'not found');
    return json(res, 200, await f());
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((e: unknown) => {
      const status = e instanceof HttpError ? e.status : 500;
      if (status === 500) log.error({ err: errorMessage(e) }, 'console: request failed');
      if (!res.headersSent) json(res, status, { error: errorMessage(e) });
      else res.end();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, opts.host ?? '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const host = opts.host ?? '127.0.0.1';
  return {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${port}/`,
    port,
    server,
    stop: () => new Promise((r) => server.close(() => r())),
  };
}
