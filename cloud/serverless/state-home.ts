import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, sep } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Readable } from 'node:stream';
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand, S3ServiceException, type S3Client } from '@aws-sdk/client-s3';
import type { Logger } from 'pino';
import { LoupeError } from '../../lib/errors.js';
import { silentLogger } from '../../lib/log.js';
import { loopHome, type LoopHome } from '../loop/config.js';

/**
 * A loop home kept in S3, for the handlers that run the loop's steps on AWS (Lambda, SageMaker
 * Processing), where no disk outlives one invocation. The loop's stores stay what they are
 * (SQLite files, the ingest watermark, the registry's content-addressed artefacts); an
 * invocation pulls them into a fresh folder, opens the ordinary LoopEnv on it, runs one step,
 * closes everything (SQLite checkpoints its WAL into the main file on close) and pushes back
 * what changed.
 *
 * Why SQLite files in S3 and not another store: the steps need the stores' exact semantics
 * (point-in-time label reads, labelling jobs committed atomically with their records, intent
 * rows before AWS create calls), which is what the local loop tests exercise; a second
 * implementation of each store for AWS would be the copy the loop's design rules out.
 *
 * Concurrency: every push is a conditional write. A file that existed is written with If-Match
 * on the ETag it had when pulled, a new one with If-None-Match: *; when another invocation
 * wrote it in between, S3 answers 412 and the push fails with STATE_CONFLICT (nothing of that
 * file is lost; the state machines retry the step, which pulls again and, being idempotent for
 * its run, redoes only what is missing). Files go out in a fixed order, loop.db last, so a push
 * cut off half way leaves the state a crash at that point would leave, which every step
 * already recovers from.
 *
 * Artefacts (`registry/artefacts/sha256/...`) are immutable and can be large: they are pulled
 * only when asked for (`fetchArtefacts`) and pushed once (If-None-Match: *; an existing one has
 * the same bytes by its name). Derived folders (snapshots, runs, the local component
 * repository) are not kept: a snapshot is rebuilt from the label store, bit for bit, by id.
 */
export interface StateHomeOptions {
  s3: S3Client;
  /** s3://bucket/prefix/ of the home. */
  uri: string;
  /** Local folder to use (default: a new temp folder). */
  dir?: string;
  log?: Logger;
}

const SKIP_DIRS = new Set(['snapshots', 'runs', 'components', 'tmp']);
const ARTEFACTS = 'registry/artefacts/';
/** Push order: artefacts, then every store, loop.db (the step records) last. */
const rank = (key: string) => (key.startsWith(ARTEFACTS) ? 0 : key === 'loop.db' ? 2 : 1);

export function parseStateUri(uri: string): { bucket: string; prefix: string } {
  const m = /^s3:\/\/([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])\/?(.*)$/.exec(uri);
  if (!m) throw new LoupeError('STATE_BAD_URI', 'expected s3://bucket/prefix/ for the loop home in S3', { input: uri });
  const prefix = m[2] ?? '';
  return { bucket: m[1]!, prefix: prefix === '' || prefix.endsWith('/') ? prefix : `${prefix}/` };
}

export class StateHome {
  readonly bucket: string;
  readonly prefix: string;
  /** ETags of the remote files as pulled (key relative to the prefix). */
  private readonly remote = new Map<string, string>();
  /** md5 of local files as pulled, to push only what changed. */
  private readonly pulledMd5 = new Map<string, string>();
  private readonly log: Logger;

  private constructor(
    private readonly o: StateHomeOptions,
    readonly dir: string,
  ) {
    ({ bucket: this.bucket, prefix: this.prefix } = parseStateUri(o.uri));
    this.log = o.log ?? silentLogger;
  }

  /** Pull the home (every file but the artefacts) into a local folder. */
  static async pull(o: StateHomeOptions): Promise<StateHome> {
    const dir = o.dir ?? (await mkdtemp(join(tmpdir(), 'loupe-home-')));
    const h = new StateHome(o, dir);
    await h.refresh();
    return h;
  }

  get home(): LoopHome {
    return loopHome(this.dir);
  }

  private async list(): Promise<{ key: string; etag: string }[]> {
    const out: { key: string; etag: string }[] = [];
    let token: string | undefined;
    do {
      const page = await this.o.s3.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: this.prefix, ContinuationToken: token }));
      for (const c of page.Contents ?? []) if (c.Key && c.ETag) out.push({ key: c.Key.slice(this.prefix.length), etag: c.ETag });
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    return out;
  }

  private async download(key: string): Promise<string> {
    const file = join(this.dir, ...key.split('/'));
    await mkdir(dirname(file), { recursive: true });
    const r = await this.o.s3.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.prefix + key }));
    await pipeline(r.Body as Readable, createWriteStream(file));
    if (r.ETag) this.remote.set(key, r.ETag);
    return file;
  }

  private async refresh(): Promise<void> {
    const objects = await this.list();
    let files = 0;
    for (const { key, etag } of objects) {
      this.remote.set(key, etag);
      if (key.startsWith(ARTEFACTS) || key.endsWith('/')) continue;
      const file = await this.download(key);
      this.pulledMd5.set(key, await md5File(file));
      files++;
    }
    this.log.info({ home: this.o.uri, files, artefacts: objects.length - files }, 'pulled the loop home from S3');
  }

  /** Fetch registry artefacts by their path in the artefact store (`sha256/aa/<digest><ext>`), when not here yet. */
  async fetchArtefacts(paths: string[]): Promise<void> {
    for (const p of paths) {
      const key = ARTEFACTS + p.split(sep).join('/');
      if (existsSync(join(this.dir, ...key.split('/')))) continue;
      if (!this.remote.has(key))
        throw new LoupeError('STATE_NO_ARTEFACT', 'the registry names an artefact the home in S3 does not hold', {
          input: `${this.o.uri}${key}`,
        });
      await this.download(key);
    }
  }

  private async localFiles(): Promise<string[]> {
    const out: string[] = [];
    const walk = async (d: string, rel: string) => {
      if (!existsSync(d)) return;
      for (const e of await readdir(d, { withFileTypes: true })) {
        const r = rel ? `${rel}/${e.name}` : e.name;
        if (e.isDirectory()) {
          if (!rel && SKIP_DIRS.has(e.name)) continue;
          if (e.name === 'tmp') continue;
          await walk(join(d, e.name), r);
        } else if (e.isFile() && !/-(wal|shm|journal)$/.test(e.name) && !e.name.endsWith('.lock')) out.push(r);
      }
    };
    await walk(this.dir, '');
    return out;
  }

  /**
   * Push what changed since the pull; throws STATE_CONFLICT when another invocation wrote a
   * file in between. Stores must be closed first (their WAL checkpointed into the main file).
   */
  async push(): Promise<{ pushed: string[] }> {
    const files = (await this.localFiles()).sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
    const pushed: string[] = [];
    for (const key of files) {
      const file = join(this.dir, ...key.split('/'));
      const etag = this.remote.get(key);
      const isArtefact = key.startsWith(ARTEFACTS);
      if (isArtefact && etag) continue;
      const md5 = await md5File(file);
      if (!isArtefact && this.pulledMd5.get(key) === md5) continue;
      const size = (await stat(file)).size;
      try {
        const r = await this.o.s3.send(
          new PutObjectCommand({
            Bucket: this.bucket,
            Key: this.prefix + key,
            Body: createReadStream(file),
            ContentLength: size,
            ...(etag ? { IfMatch: etag } : { IfNoneMatch: '*' }),
          }),
        );
        if (r.ETag) this.remote.set(key, r.ETag);
        this.pulledMd5.set(key, md5);
        pushed.push(key);
      } catch (e) {
        if (isPreconditionFailed(e)) {
          if (isArtefact) continue; // someone stored the same bytes under the same digest first
          throw new LoupeError('STATE_CONFLICT', `another invocation changed ${key} since this one pulled it; retry the step`, {
            input: `${this.o.uri}${key}`,
          });
        }
        throw e;
      }
    }
    this.log.info({ home: this.o.uri, pushed }, 'pushed the loop home to S3');
    return { pushed };
  }

  async dispose(): Promise<void> {
    await rm(this.dir, { recursive: true, force: true });
  }
}

function isPreconditionFailed(e: unknown): boolean {
  if (e instanceof S3ServiceException) return e.$metadata.httpStatusCode === 412 || e.name === 'PreconditionFailed';
  return (e as { name?: string }).name === 'PreconditionFailed';
}

async function md5File(path: string): Promise<string> {
  const h = createHash('md5');
  await pipeline(createReadStream(path), h);
  return h.digest('hex');
}
