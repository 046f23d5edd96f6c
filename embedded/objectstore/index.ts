import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { hostname, networkInterfaces } from 'node:os';
import { resolve } from 'node:path';
import type { Logger } from 'pino';
import { LoupeError } from '../../lib/errors.js';
import { silentLogger } from '../../lib/log.js';
import { keysPath, loadOrCreateKeys, type StoreKeys } from './keys.js';
import { lockFolder } from './lock.js';
import { createHandler } from './server.js';
import { ObjectStoreState } from './store.js';

export { keysPath, readKeysFile, type StoreKeys } from './keys.js';

/**
 * The embedded S3-compatible object store: the stand-in for Amazon S3 on one machine, used
 * only through `@aws-sdk/client-s3` with `forcePathStyle: true`.
 *
 * Why hand-written: s3rver (the usual choice) was last released in 2021 (3.7.1) and, checked
 * against @aws-sdk/client-s3 3.11xx, stores the aws-chunked framing of streamed uploads
 * (`8\r\n...\r\n0\r\nx-amz-checksum-crc32:...`) as the object's bytes, because it predates
 * the SDK's default flexible checksums; it also knows no CRC checksums. MinIO is a separate Go
 * binary we cannot ship as an npm package. The S3 surface loupe needs is small (buckets,
 * objects, listings, multipart, checksums), so it lives here, persisted to a folder.
 */
export interface ObjectStoreOptions {
  /** folder holding buckets and objects; created if missing, reused (objects survive restarts) */
  dir: string;
  /** TCP port; 0 or absent = a free one. Reuse the old port to bring a stopped store back. */
  port?: number;
  /** interface to bind; default loopback */
  host?: string;
  region?: string;
  /**
   * The key pair requests must be signed with (SigV4). Given: it replaces the pair in
   * `<dir>/credentials.json`; absent: that file's pair, created at random on first start.
   */
  credentials?: StoreKeys;
  /** more Host names (host or host:port) clients may use besides the bound address and loopback names */
  allowedHosts?: string[];
  /** buckets to create at start if absent */
  buckets?: string[];
  /** S3's minimum size of every part but the last (5 MiB); lowered only by tests */
  minPartSize?: number;
  log?: Logger;
}

export interface ObjectStore {
  /** `http://127.0.0.1:<port>` */
  endpoint: string;
  port: number;
  dir: string;
  region: string;
  /** the key pair requests must be signed with, and the file it lives in (mode 0600) */
  credentials: StoreKeys;
  keysFile: string;
  /** ready-made S3Client config: `new S3Client(store.clientConfig)` */
  clientConfig: {
    endpoint: string;
    region: string;
    forcePathStyle: true;
    credentials: { accessKeyId: string; secretAccessKey: string };
  };
  /** close the listener and every open connection; the folder stays */
  stop(): Promise<void>;
}

/** The fields every store handle has, in-process or a child process. */
export function storeHandle(endpoint: string, port: number, dir: string, region: string, keys: StoreKeys): Omit<ObjectStore, 'stop'> {
  return {
    endpoint,
    port,
    dir,
    region,
    credentials: keys,
    keysFile: keysPath(dir),
    clientConfig: { endpoint, region, forcePathStyle: true, credentials: { ...keys } },
  };
}

/** `host:port` as a Host header carries it (IPv6 in brackets). */
const hostPort = (h: string, port: number): string => `${h.includes(':') ? `[${h}]` : h}:${port}`.toLowerCase();

/**
 * Host names a request may carry: the bound address and, for loopback or wildcard binds, the
 * loopback names; for wildcard binds also this machine's name and addresses; plus `extra`.
 * A request naming another host (DNS rebinding from a browser, a proxy mix-up) is refused.
 */
export function allowedHostSet(bound: string, port: number, extra: string[] = []): Set<string> {
  const names = new Set<string>([bound]);
  const wildcard = bound === '0.0.0.0' || bound === '::';
  if (wildcard || bound.startsWith('127.') || bound === '::1' || bound === 'localhost')
    for (const n of ['localhost', '127.0.0.1', '::1']) names.add(n);
  if (wildcard) {
    names.add(hostname());
    for (const list of Object.values(networkInterfaces())) for (const a of list ?? []) names.add(a.address);
  }
  const out = new Set<string>();
  for (const n of names) out.add(hostPort(n, port));
  for (const e of extra) out.add((/:\d+$/.test(e) && !/^[^[]*:.*:/.test(e) ? e : hostPort(e.replace(/^\[|\]$/g, ''), port)).toLowerCase());
  return out;
}

export async function startObjectStore(opts: ObjectStoreOptions): Promise<ObjectStore> {
  if (!opts.dir) throw new LoupeError('objectstore.dir', 'the object store needs a folder (dir)', { input: 'dir' });
  const dir = resolve(opts.dir);
  const region = opts.region ?? 'us-east-1';
  const log = opts.log ?? silentLogger;
  const lock = await lockFolder(dir, log);
  let server: Server | undefined;
  try {
    const keys = await loadOrCreateKeys(dir, opts.credentials);
    const state = await ObjectStoreState.open(dir);
    for (const b of opts.buckets ?? []) if (!state.hasBucket(b)) await state.createBucket(b);
    const host = opts.host ?? '127.0.0.1';
    let allowed = new Set<string>();
    const handler = createHandler(state, {
      region,
      minPartSize: opts.minPartSize ?? 5 * 1024 * 1024,
      keys,
      hostAllowed: (h) => allowed.has(h.toLowerCase()),
      log,
    });
    const srv = createServer({ keepAliveTimeout: 5000 }, (req, res) => {
      void handler(req, res);
    });
    server = srv;
    await new Promise<void>((res, rej) => {
      srv.once('error', (e: NodeJS.ErrnoException) =>
        rej(
          new LoupeError('objectstore.listen', `cannot listen on ${host}:${opts.port ?? 0}: ${e.code ?? e.message}`, {
            input: 'port',
            cause: e,
          }),
        ),
      );
      srv.listen(opts.port ?? 0, host, () => res());
    });
    const port = (srv.address() as AddressInfo).port;
    allowed = allowedHostSet(host, port, opts.allowedHosts);
    const endpoint = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
    log.info({ endpoint, dir, accessKeyId: keys.accessKeyId }, 'object store listening');
    let stopped: Promise<void> | undefined;
    return {
      ...storeHandle(endpoint, port, dir, region, keys),
      stop() {
        stopped ??= new Promise<void>((res) => {
          srv.close(() => res());
          srv.closeAllConnections();
        }).then(() => lock.release());
        return stopped;
      },
    };
  } catch (e) {
    server?.close();
    await lock.release();
    throw e;
  }
}
