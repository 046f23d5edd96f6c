import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { resolve } from 'node:path';
import type { Logger } from 'pino';
import { LoupeError } from '../../lib/errors.js';
import { silentLogger } from '../../lib/log.js';
import { createHandler } from './server.js';
import { ObjectStoreState } from './store.js';

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
  /** if set, requests must be signed with this access key id (the signature itself is not checked) */
  credentials?: { accessKeyId: string; secretAccessKey: string };
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

export const DEFAULT_CREDENTIALS = { accessKeyId: 'loupe-local', secretAccessKey: 'loupe-local-secret' };

export async function startObjectStore(opts: ObjectStoreOptions): Promise<ObjectStore> {
  if (!opts.dir) throw new LoupeError('objectstore.dir', 'the object store needs a folder (dir)', { input: 'dir' });
  const dir = resolve(opts.dir);
  const region = opts.region ?? 'us-east-1';
  const log = opts.log ?? silentLogger;
  const state = await ObjectStoreState.open(dir);
  for (const b of opts.buckets ?? []) if (!state.hasBucket(b)) await state.createBucket(b);
  const handler = createHandler(state, {
    region,
    minPartSize: opts.minPartSize ?? 5 * 1024 * 1024,
    accessKeyId: opts.credentials?.accessKeyId,
    log,
  });
  const server: Server = createServer({ keepAliveTimeout: 5000 }, (req, res) => {
    void handler(req, res);
  });
  const host = opts.host ?? '127.0.0.1';
  await new Promise<void>((res, rej) => {
    server.once('error', (e: NodeJS.ErrnoException) =>
      rej(new LoupeError('objectstore.listen', `cannot listen on ${host}:${opts.port ?? 0}: ${e.code ?? e.message}`, { input: 'port', cause: e })),
    );
    server.listen(opts.port ?? 0, host, () => res());
  });
  const port = (server.address() as AddressInfo).port;
  const endpoint = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  log.info({ endpoint, dir }, 'object store listening');
  let stopped: Promise<void> | undefined;
  return {
    endpoint,
    port,
    dir,
    region,
    clientConfig: { endpoint, region, forcePathStyle: true, credentials: opts.credentials ?? DEFAULT_CREDENTIALS },
    stop() {
      stopped ??= new Promise<void>((res) => {
        server.close(() => res());
        server.closeAllConnections();
      });
      return stopped;
    },
  };
}
