import { mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { projectRoot, datasetDir } from '../../components/common/paths.js';
import { ImageSource, metalTagsMapping } from '../../cloud/labeling/images.js';
import { Labeling } from '../../cloud/labeling/jobs.js';
import { startLabelServer, type LabelServer } from '../../cloud/labeling/server.js';
import { makeRecord, openLabelStore, type SqliteLabelStore } from '../../cloud/labelstore/index.js';

const TOKEN = 'test-token-0123456789';

describe('labelling UI in Chromium (playwright-core)', () => {
  let dir: string;
  let store: SqliteLabelStore;
  let lab: Labeling;
  let srv: LabelServer;
  let browser: Browser;
  const file = readdirSync(join(datasetDir('metal-tags'), 'bad')).sort()[0]!;
  const ref = `s3://\${bucket}/pipeline/assets/images/upload/bad/${file}`;
  const artifacts = join(projectRoot, 'test-artifacts');

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ui-'));
    mkdirSync(artifacts, { recursive: true });
    store = openLabelStore(join(dir, 'labels.db'));
    await store.append([
      makeRecord({
        source_ref: ref,
        image_width: 450,
        image_height: 300,
        // the device's detection, shown for correction: a wrong box the worker deletes
        annotations: [{ class_id: 0, left: 300, top: 200, width: 60, height: 40, confidence: 0.42 }],
        event_time: 100,
        labeling_job: '',
        status: 'PENDING',
        device: 'line-1',
        model_version: '1.0.0',
      }),
    ]);
    lab = new Labeling(store);
    await lab.createJob({ name: 'ui-job', classes: ['scratch', 'dent'], instructions: 'Box every scratch tightly.', workersPerImage: 1 });
    srv = await startLabelServer({ lab, images: new ImageSource({ mappings: [metalTagsMapping(datasetDir('metal-tags'))] }), token: TOKEN });
    browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'] });
  });
  afterAll(async () => {
    await browser?.close();
    await srv?.stop();
    await store?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('refuses the API without the token, accepts a bearer token', async () => {
    expect((await fetch(srv.url + 'api/jobs')).status).toBe(401);
    expect((await fetch(srv.url + `api/image?ref=${encodeURIComponent(ref)}`)).status).toBe(401);
    const page = await fetch(srv.url, { redirect: 'manual' });
    expect(page.status).toBe(302);
    expect(page.headers.get('location')).toBe('/login');
    expect((await fetch(srv.url + 'api/jobs', { headers: { authorization: 'Bearer wrong-token-xx' } })).status).toBe(401);
    const ok = await fetch(srv.url + 'api/jobs', { headers: { authorization: `Bearer ${TOKEN}`, 'x-loupe-worker': 'script' } });
    expect(ok.status).toBe(200);
    expect(((await ok.json()) as { jobs: { name: string }[] }).jobs.map((j) => j.name)).toEqual(['ui-job']);
    const notInJob = await fetch(srv.url + 'api/image?ref=' + encodeURIComponent('s3://${bucket}/x/bad/other.jpg'), { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(notInJob.status).toBe(404);
  });

  it('logs in with the token, corrects the pre-annotation, draws a box, submits, and verifies', async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(srv.url);
    expect(new URL(page.url()).pathname).toBe('/login');

    await page.fill('#token', 'not-the-token');
    await page.fill('#worker', 'alice');
    await page.click('#login-button');
    await expect.poll(() => page.textContent('#login-error')).toMatch(/wrong token/);
    await page.fill('#token', TOKEN);
    await page.click('#login-button');
    await page.waitForURL(srv.url);
    await page.waitForSelector('#overlay .box.device');
    expect(await page.textContent('#whoami')).toBe('alice');
    expect(await page.textContent('#instructions')).toBe('Box every scratch tightly.');
    expect(await page.textContent('#overlay .box.device text')).toBe('scratch (device 0.42)');

    const toScreen = async (x: number, y: number) => {
      const r = (await page.locator('#overlay').boundingBox())!;
      return { x: r.x + (x * r.width) / 450, y: r.y + (y * r.height) / 300 };
    };
    // zoom in and back to fit with the keyboard
    const zoom0 = await page.textContent('#zoom-level');
    await page.keyboard.press('+');
    expect(await page.textContent('#zoom-level')).not.toBe(zoom0);
    await page.keyboard.press('0');
    expect(await page.textContent('#zoom-level')).toBe(zoom0);

    // select the device's box and delete it with the keyboard
    const dev = await toScreen(330, 220);
    await page.mouse.click(dev.x, dev.y);
    await page.keyboard.press('Delete');
    expect(await page.locator('#overlay .box').count()).toBe(0);

    // choose class 2 ("dent") with the key, draw a box, then switch it back to class 1
    await page.keyboard.press('2');
    const a = await toScreen(100, 60);
    const b = await toScreen(200, 150);
    await page.mouse.move(a.x, a.y);
    await page.mouse.down();
    await page.mouse.move((a.x + b.x) / 2, (a.y + b.y) / 2, { steps: 4 });
    await page.mouse.move(b.x, b.y, { steps: 4 });
    await page.mouse.up();
    expect(await page.textContent('#overlay .box text')).toBe('dent');
    await page.keyboard.press('1');
    expect(await page.textContent('#overlay .box text')).toBe('scratch');
    // move it by dragging its body 10 px right, then resize from its bottom-right corner
    const mid = await toScreen(150, 105);
    const mid2 = await toScreen(160, 105);
    await page.mouse.move(mid.x, mid.y);
    await page.mouse.down();
    await page.mouse.move(mid2.x, mid2.y, { steps: 3 });
    await page.mouse.up();
    const se = await toScreen(210, 150);
    const se2 = await toScreen(230, 170);
    await page.mouse.move(se.x, se.y);
    await page.mouse.down();
    await page.mouse.move(se2.x, se2.y, { steps: 3 });
    await page.mouse.up();
    // nudge 2 px up with the arrow key
    await page.keyboard.press('ArrowUp');
    await page.keyboard.press('ArrowUp');
    expect(await page.textContent('#box-count')).toBe('1');
    await page.screenshot({ path: join(artifacts, 'labeling-ui-label.png') });

    await page.keyboard.press('Enter');
    await expect.poll(() => page.textContent('#empty')).toMatch(/Nothing left to label/);

    await page.click('#mode-verify');
    await page.waitForSelector('#overlay .box.readonly');
    expect(await page.textContent('#verify-info')).toMatch(/1 box\(es\) from alice/);
    await page.screenshot({ path: join(artifacts, 'labeling-ui-verify.png') });
    await page.click('#approve');
    await expect.poll(() => page.textContent('#empty')).toMatch(/Nothing waiting for verification/);
    expect(errors).toEqual([]);
    await page.close();

    const [rec] = await store.latest({ sourceRefs: [ref] });
    expect(rec).toMatchObject({ status: 'APPROVED', labeling_job: 'labeling-job/ui-job', meta: { workers: ['alice'], verifier: 'alice' } });
    // drawn (100,60)-(200,150), moved +10 x, corner dragged to (230,170), nudged 2 px up:
    // (110,58)-(230,168) → left 110, top 58, 120 x 110 (± 2 px of mouse rounding)
    expect(rec!.annotations).toHaveLength(1);
    const box = rec!.annotations[0]!;
    expect(box.class_id).toBe(0);
    for (const [got, want] of [[box.left, 110], [box.top, 58], [box.width, 120], [box.height, 110]] as const) expect(Math.abs(got - want)).toBeLessThanOrEqual(2);
  });
});
