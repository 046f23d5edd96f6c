import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, readdir, rm, writeFile, copyFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { datasetDir, projectRoot } from '../../lib/paths.js';
import { startBroker, type EmbeddedBroker } from '../../embedded/broker/broker.js';
import { startObjectStore, type ObjectStore } from '../../embedded/objectstore/index.js';
import { startEdgeStack, type EdgeStack } from '../../embedded/stack/edge.js';
import { LoopStore } from '../../cloud/loop/store.js';
import type { LoopConfigInput } from '../../cloud/loop/config.js';
import { ensureBuilt, until } from '../helpers/edge.js';

/**
 * `loupe console` in Chromium against a real running edge stack (local nucleus, broker, object
 * store, the four components inspecting metal-tags photos) and a loop home configured for it.
 * Every page is opened as an operator would, checked against the state it shows, and
 * screenshotted into test-artifacts/console/.
 */
const SHOTS = join(projectRoot, 'test-artifacts', 'console');
const TOKEN = 'console-test-credential-0123456789';
let dir: string;
let objectStore: ObjectStore;
let broker: EmbeddedBroker;
let stack: EdgeStack;
let consoleProc: ChildProcess | undefined;
let consoleUrl = '';
let browser: Browser;
let stderr = '';

beforeAll(async () => {
  ensureBuilt();
  await mkdir(SHOTS, { recursive: true });
  dir = await mkdtemp(join(tmpdir(), 'loupe-console-'));
  objectStore = await startObjectStore({ dir: join(dir, 's3'), buckets: ['loupe'] });
  broker = await startBroker();
  const metal = datasetDir('metal-tags');
  const camera = join(dir, 'camera');
  await mkdir(camera, { recursive: true });
  for (const f of (await readdir(join(metal, 'bad'))).sort().slice(0, 10)) await copyFile(join(metal, 'bad', f), join(camera, f));
  stack = await startEdgeStack({
    root: join(dir, 'edge'),
    thingName: 'line-3',
    bucket: 'loupe',
    objectStore,
    broker,
    source: { type: 'folder', path: camera, mode: 'loop' },
    fps: 2,
  });

  const home = join(dir, 'home');
  await mkdir(home, { recursive: true });
  const config: LoopConfigInput = {
    storage: { endpoint: objectStore.endpoint, bucket: 'loupe', keysFile: objectStore.keysFile },
    history: { labelsCsv: join(metal, 'labels.csv'), imagesDir: metal },
    labeling: { backend: 'simulated', workersPerImage: 1, cap: 8, seed: 1 },
    fleet: {
      backend: 'local',
      nucleusRoot: stack.nucleus.root,
      thingName: stack.thingName,
      mqttUrl: broker.url,
      minResults: 1,
      confirmTimeoutSeconds: 60,
    },
  };
  await writeFile(join(home, 'loop.json'), JSON.stringify(config, null, 2));
  // A loop run as the loop's store records one (the console reads runs from this store).
  const store = new LoopStore(join(home, 'loop.db'));
  const run = store.createRun('manual', {});
  for (const [i, [name, seconds]] of (
    [
      ['ingest', 1.2],
      ['label', 8.5],
      ['snapshot', 0.4],
    ] as const
  ).entries()) {
    store.startStep(run.id, name, i);
    store.finishStep(run.id, name, 'done', { output: { ok: true }, seconds });
  }
  store.setRunStatus(run.id, 'halted', { halt: 'too few new labels to train (3 < 10)' });
  store.close();
  await mkdir(join(home, 'runs', String(run.id)), { recursive: true });
  await writeFile(join(home, 'runs', String(run.id), 'loop.log'), '{"msg":"ingest: 3 new items"}\n{"msg":"label: job loop-1 done"}\n');

  consoleProc = spawn(
    process.execPath,
    [join(projectRoot, 'bin', 'loupe.js'), 'console', '--home', home, '--port', '0', '--log-format', 'json'],
    { env: { ...process.env, LOUPE_CONSOLE_TOKEN: TOKEN, LOUPE_NO_PROGRESS: '1' }, stdio: ['ignore', 'ignore', 'pipe'] },
  );
  consoleProc.stderr!.on('data', (b: Buffer) => (stderr += b.toString()));
  consoleUrl = await until(
    () => /operator console at (http:\/\/\S+)/.exec(stderr)?.[1],
    120_000,
    () => `the console to start; stderr: ${stderr.slice(-2000)}`,
  );
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
}, 400_000);

afterAll(async () => {
  await browser?.close();
  consoleProc?.kill('SIGTERM');
  await stack?.stop();
  await broker?.stop();
  await objectStore?.stop();
  if (dir) await rm(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 500 });
});

describe('the operator console in Chromium', () => {
  it('refuses API calls without the credential, a foreign Host and a cross-origin request', async () => {
    expect((await fetch(`${consoleUrl}api/fleet`)).status).toBe(401);
    expect((await fetch(`${consoleUrl}api/fleet`, { headers: { authorization: 'Bearer wrong-credential-000000' } })).status).toBe(401);
    expect(
      (await fetch(`${consoleUrl}api/fleet`, { headers: { authorization: `Bearer ${TOKEN}`, origin: 'http://evil.example' } })).status,
    ).toBe(403);
    const r = await fetch(`${consoleUrl}api/models`, { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(r.status).toBe(200);
    const page = await fetch(consoleUrl, { redirect: 'manual' });
    expect([page.status, page.headers.get('location')]).toEqual([302, '/login']);
  });

  it('logs in and shows every page (screenshots in test-artifacts/console/)', async () => {
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await ctx.newPage();
    await page.goto(consoleUrl);
    expect(page.url()).toMatch(/\/login$/);
    await page.fill('#token', 'not-the-credential');
    await page.click('button[type=submit]');
    await page.waitForSelector('#error:has-text("wrong credential")');
    await page.screenshot({ path: join(SHOTS, '0-login.png') });
    await page.fill('#token', TOKEN);
    await page.click('button[type=submit]');
    await page.waitForURL(consoleUrl);

    // Fleet: the device, the component versions the nucleus runs, health from telemetry.
    await page.goto(`${consoleUrl}#fleet`);
    await page.waitForSelector('main[data-loaded=fleet]');
    await until(
      async () => {
        await page.reload();
        await page.waitForSelector('main[data-loaded=fleet]');
        return (await page.textContent('main'))?.includes('line-3') && (await page.textContent('main'))?.includes('loupe.Inference');
      },
      120_000,
      'fleet page to show line-3 and its components',
    );
    const fleetText = (await page.textContent('main'))!;
    expect(fleetText).toContain('Fleet (local, target line-3)');
    expect(fleetText).toMatch(/loupe\.Model/);
    await page.screenshot({ path: join(SHOTS, '1-fleet.png'), fullPage: true });

    // Live: frames/s, latency and defect rate from telemetry; defect images with their boxes.
    await page.goto(`${consoleUrl}#live`);
    await page.waitForSelector('.card[data-thing=line-3]', { timeout: 120_000 });
    await page.waitForSelector('.defect .shot img', { timeout: 120_000 });
    await page.waitForFunction(
      () => Array.from(document.querySelectorAll('.defect .shot img')).some((i) => (i as HTMLImageElement).naturalWidth > 0),
      undefined,
      { timeout: 60_000 },
    );
    await page.waitForFunction(
      () =>
        /\d+(\.\d+)? frames\/s/.test(document.querySelector('.card')?.textContent ?? '') &&
        !document.querySelector('.card')!.textContent!.includes('— frames/s'),
      undefined,
      { timeout: 60_000 },
    );
    expect(await page.locator('.defect svg rect').count()).toBeGreaterThan(0);
    // the defect-rate table lists only classes detected in the telemetry window: a report that
    // already has frames/s may have none yet
    await expect.poll(() => page.textContent('.card[data-thing=line-3]'), { timeout: 60_000 }).toMatch(/scratch/);
    await page.screenshot({ path: join(SHOTS, '2-live.png'), fullPage: true });

    // Labelling queue: the imported history is approved.
    await page.goto(`${consoleUrl}#labelling`);
    await page.waitForSelector('main[data-loaded=labelling]');
    expect(await page.textContent('main')).toMatch(/Labelling queue \(235 images\)/);
    await page.screenshot({ path: join(SHOTS, '3-labelling.png'), fullPage: true });

    // Loop runs: stage timings and the run's log.
    await page.goto(`${consoleUrl}#runs`);
    await page.waitForSelector('section[data-run]');
    const runs = (await page.textContent('main'))!;
    expect(runs).toMatch(/run 1: halted/);
    expect(runs).toContain('too few new labels to train');
    expect(runs).toContain('8.5');
    expect(runs).toContain('label: job loop-1 done');
    await page.screenshot({ path: join(SHOTS, '4-runs.png'), fullPage: true });

    // Models: the seeded shipped model with its card.
    await page.goto(`${consoleUrl}#models`);
    await page.waitForSelector('section[data-model]');
    const models = (await page.textContent('main'))!;
    expect(models).toMatch(/metal-tags:1/);
    expect(models).toMatch(/approved/);
    expect(models).toContain('"testImages"');
    await page.screenshot({ path: join(SHOTS, '5-models.png'), fullPage: true });
    await ctx.close();
  }, 400_000);
});
