import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger, silentLogger } from '../../lib/log.js';
import { datasetDir } from '../../lib/paths.js';
import { CameraRunner } from '../../components/camera/camera.js';
import type { CameraConfig } from '../../components/camera/config.js';
import { FrameStore } from '../../components/camera/frame-store.js';
import { FolderSource } from '../../components/camera/sources/folder.js';
import type { CameraHealth, FrameMessage } from '../../contracts/topics.js';

let tmp: string;
let images: string[];
beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'loupe-src-'));
  const dir = join(datasetDir('metal-tags'), 'good');
  images = (await readdir(dir))
    .sort()
    .slice(0, 5)
    .map((f) => join(dir, f));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function runner(cfg: Partial<CameraConfig> & Pick<CameraConfig, 'name' | 'source'>, store: FrameStore) {
  const frames: FrameMessage[] = [];
  const states: CameraHealth['state'][] = [];
  const r = new CameraRunner({ enabled: true, trigger: { type: 'continuous' }, ...cfg } as CameraConfig, {
    store,
    log: process.env.DBG ? createLogger('t', { stream: 'stderr' }) : silentLogger,
    backoff: { initialMs: 100, maxMs: 800 },
    publish: async (f) => {
      frames.push(f);
    },
    onHealth: (h) => states.push(h.state),
  });
  return { r, frames, states };
}

describe('folder source', () => {
  it('reads once in name order, loops, and watches for complete new files', async () => {
    const dir = join(tmp, 'watch');
    await import('node:fs/promises').then((f) => f.mkdir(dir, { recursive: true }));
    await writeFile(join(dir, 'b.jpg'), await readFile(images[1]!));
    await writeFile(join(dir, 'a.jpg'), await readFile(images[0]!));
    await writeFile(join(dir, 'notes.txt'), 'not an image');
    const once = new FolderSource({ type: 'folder', path: dir, mode: 'once', recursive: true, extensions: ['.jpg'], pollMs: 20 });
    await once.open();
    expect([(await once.next())?.origin, (await once.next())?.origin, await once.next()]).toEqual([
      join(dir, 'a.jpg'),
      join(dir, 'b.jpg'),
      null,
    ]);
    const loop = new FolderSource({ type: 'folder', path: dir, mode: 'loop', recursive: true, extensions: ['.jpg'], pollMs: 20 });
    await loop.open();
    const seen = [];
    for (let i = 0; i < 5; i++) seen.push((await loop.next())!.origin);
    expect(seen).toEqual(['a', 'b', 'a', 'b', 'a'].map((n) => join(dir, `${n}.jpg`)));
    const watch = new FolderSource({ type: 'folder', path: dir, mode: 'watch', recursive: true, extensions: ['.jpg'], pollMs: 20 });
    await watch.open();
    await watch.next();
    await watch.next();
    const later = watch.next();
    await writeFile(join(dir, 'c.jpg'), await readFile(images[2]!));
    expect((await later)?.origin).toBe(join(dir, 'c.jpg'));
    await expect(
      new FolderSource({
        type: 'folder',
        path: join(tmp, 'missing'),
        mode: 'loop',
        recursive: true,
        extensions: ['.jpg'],
        pollMs: 20,
      }).open(),
    ).rejects.toThrow(/source\.path .*missing: is not a readable folder/);
  });
});

describe('command and snapshot sources under supervision', () => {
  it('reads JPEGs a program writes to stdout, and restarts it when it exits', async () => {
    const store = new FrameStore(join(tmp, 'fs-cmd'), 100, 1e9);
    await store.init();
    // A "capture tool" that writes three frames and exits; the supervisor starts it again.
    const script = `const fs=require('fs');const b=fs.readFileSync(${JSON.stringify(images[0])});for(let i=0;i<3;i++)process.stdout.write(b);`;
    const { r, frames, states } = runner(
      { name: 'cmd', source: { type: 'command', command: process.execPath, args: ['-e', script], env: {}, frameTimeoutMs: 2000 } },
      store,
    );
    r.start();
    await until(() => frames.length >= 5, 20_000, '5 frames from the command source');
    await r.stop();
    expect(r.health.restarts).toBeGreaterThanOrEqual(1);
    expect(states).toContain('reconnecting');
    expect((await readFile(frames[0]!.path)).equals(await readFile(images[0]!))).toBe(true);
  });

  it('takes HTTP snapshots and rides out a failing camera', async () => {
    const jpeg = await readFile(images[1]!);
    let fail = true;
    const srv = createServer((req, res) => {
      if (fail) res.writeHead(503).end('busy');
      else res.writeHead(200, { 'content-type': 'image/jpeg' }).end(jpeg);
    });
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
    const url = `http://127.0.0.1:${(srv.address() as AddressInfo).port}/snapshot.jpg`;
    const store = new FrameStore(join(tmp, 'fs-snap'), 100, 1e9);
    await store.init();
    const { r, frames } = runner(
      { name: 'snap', source: { type: 'snapshot', url, headers: {}, timeoutMs: 1000 }, trigger: { type: 'interval', fps: 20 } },
      store,
    );
    r.start();
    await until(() => r.health.errors >= 2, 10_000, 'snapshot errors');
    expect(r.health.lastError).toMatch(/HTTP 503/);
    fail = false;
    await until(() => frames.length >= 3, 10_000, 'snapshots after recovery');
    expect(r.health.state).toBe('ok');
    await r.stop();
    srv.close();
  });
});

describe('stream source (ffmpeg)', () => {
  it('reconnects with backoff when the stream server disappears and returns, without stalling another camera', async () => {
    const port = 20000 + Math.floor(Math.random() * 20000);
    const url = `http://127.0.0.1:${port}/live`;
    let server: ChildProcess | undefined;
    const serve = () => {
      // ffmpeg serving a live MJPEG stream over HTTP (one client at a time).
      server = spawn(
        'ffmpeg',
        [
          '-hide_banner',
          '-loglevel',
          'error',
          '-re',
          '-f',
          'lavfi',
          '-i',
          'testsrc=size=160x120:rate=10',
          '-f',
          'mpjpeg',
          '-listen',
          '1',
          url,
        ],
        { stdio: 'ignore' },
      );
    };
    const store = new FrameStore(join(tmp, 'fs-stream'), 500, 1e9);
    await store.init();
    serve();
    const cam = runner(
      { name: 'line', source: { type: 'stream', url, rtspTransport: 'tcp', ffmpegPath: 'ffmpeg', quality: 5, frameTimeoutMs: 1500 } },
      store,
    );
    const other = runner(
      {
        name: 'other',
        source: {
          type: 'folder',
          path: join(datasetDir('metal-tags'), 'good'),
          mode: 'loop',
          recursive: true,
          extensions: ['.jpg'],
          pollMs: 50,
        },
        trigger: { type: 'interval', fps: 10 },
      },
      store,
    );
    cam.r.start();
    other.r.start();
    try {
      await until(() => cam.frames.length >= 10, 30_000, 'stream frames');
      expect(cam.r.health.state).toBe('ok');
      server!.kill('SIGKILL');
      await until(() => cam.r.health.state === 'reconnecting', 15_000, 'the camera to notice the outage');
      const otherBefore = other.frames.length;
      const camBefore = cam.frames.length;
      await new Promise((r) => setTimeout(r, 1500));
      expect(other.frames.length).toBeGreaterThan(otherBefore + 5); // the folder camera kept going
      serve();
      await until(() => cam.frames.length >= camBefore + 10, 30_000, 'stream frames after the server returned');
      expect(cam.r.health.state).toBe('ok');
      expect(cam.r.health.restarts).toBeGreaterThanOrEqual(1);
      const seqs = cam.frames.map((f) => f.seq);
      expect(seqs).toEqual(seqs.map((_, i) => i + 1)); // no gaps, no repeats in numbering
    } finally {
      await cam.r.stop();
      await other.r.stop();
      server?.kill('SIGKILL');
    }
  });
});
