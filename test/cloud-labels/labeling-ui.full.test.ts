import { mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { projectRoot, datasetDir } from '../../lib/paths.js';
import { ImageSource, metalTagsMapping } from '../../cloud/labeling/images.js';
import { Labeling } from '../../cloud/labeling/jobs.js';
import { startLabelServer, type LabelServer } from '../../cloud/labeling/server.js';
import { openLabelStore, type SqliteLabelStore } from '../../cloud/labelstore/index.js';
import { makeRecord } from '../../contracts/label-record.js';

/** Log in through the login page with a worker credential. */
async function login(page: import('playwright-core').Page, url: string, token: string): Promise<void> {
  await page.goto(url + 'login');
  await page.fill('#token', token);
  await page.click('#login-button');
  await page.waitForURL(url);
}

describe('labelling UI in Chromium (playwright-core)', () => {
  let dir: string;
  let store: SqliteLabelStore;
  let lab: Labeling;
  let srv: LabelServer;
  let browser: Browser;
  const tok: Record<string, string> = {};
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
    tok.alice = lab.workers.add('alice', ['label', 'verify']).token;
    tok.vera = lab.workers.add('vera', ['verify']).token;
    srv = await startLabelServer({ lab, images: new ImageSource({ mappings: [metalTagsMapping(datasetDir('metal-tags'))] }) });
    browser = await chromium.launch({
      executablePath: '/usr/bin/chromium',
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
    });
  });
  afterAll(async () => {
    await browser?.close();
    await srv?.stop();
    lab?.close();
    await store?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('refuses the API without a credential, accepts a worker credential as a bearer token', async () => {
    expect((await fetch(srv.url + 'api/jobs')).status).toBe(401);
    expect((await fetch(srv.url + `api/image?ref=${encodeURIComponent(ref)}`)).status).toBe(401);
    const page = await fetch(srv.url, { redirect: 'manual' });
    expect(page.status).toBe(302);
    expect(page.headers.get('location')).toBe('/login');
    expect((await fetch(srv.url + 'api/jobs', { headers: { authorization: 'Bearer wrong-token-xx' } })).status).toBe(401);
    const ok = await fetch(srv.url + 'api/jobs', { headers: { authorization: `Bearer ${tok.alice}` } });
    expect(ok.status).toBe(200);
    expect(((await ok.json()) as { jobs: { name: string }[] }).jobs.map((j) => j.name)).toEqual(['ui-job']);
    const notInJob = await fetch(srv.url + 'api/image?ref=' + encodeURIComponent('s3://${bucket}/x/bad/other.jpg'), {
      headers: { authorization: `Bearer ${tok.alice}` },
    });
    expect(notInJob.status).toBe(404);
  });

  it('logs in with a worker credential, corrects the pre-annotation, draws a box, undoes, submits; another worker verifies', async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(srv.url);
    expect(new URL(page.url()).pathname).toBe('/login');

    await page.fill('#token', 'not-a-credential');
    await page.click('#login-button');
    await expect.poll(() => page.textContent('#login-error')).toMatch(/unknown or revoked credential/);
    await page.fill('#token', tok.alice!);
    await page.click('#login-button');
    await page.waitForURL(srv.url);
    await page.waitForSelector('#overlay .box.device');
    expect(await page.textContent('#whoami')).toBe('alice (label, verify)');
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

    // select the device's box and delete it with the keyboard; undo brings it back, redo deletes it again
    const dev = await toScreen(330, 220);
    await page.mouse.click(dev.x, dev.y);
    await page.keyboard.press('Delete');
    expect(await page.locator('#overlay .box').count()).toBe(0);
    await page.keyboard.press('Control+z');
    expect(await page.locator('#overlay .box.device').count()).toBe(1);
    await page.keyboard.press('Control+Shift+z');
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

    // a wrong drag, undone with the button
    const w1 = await toScreen(20, 20);
    const w2 = await toScreen(60, 50);
    await page.mouse.move(w1.x, w1.y);
    await page.mouse.down();
    await page.mouse.move(w2.x, w2.y, { steps: 3 });
    await page.mouse.up();
    expect(await page.textContent('#box-count')).toBe('2');
    await page.click('#undo');
    expect(await page.textContent('#box-count')).toBe('1');
    await page.focus('#viewport');

    await page.keyboard.press('Enter');
    await expect.poll(() => page.textContent('#empty')).toMatch(/Nothing left to label/);
    await lab.settle();

    // alice labelled it: she is never offered it to verify
    await page.click('#mode-verify');
    await expect.poll(() => page.textContent('#empty')).toMatch(/Nothing waiting for verification/);
    // The UI shows the empty note first and re-renders the task list after it (loadTask, then
    // loadItems): until then the list is label mode's, drawn right after the submit while the
    // image was still 'consolidating' (what CI read once). Wait for verify mode's own list.
    await expect.poll(() => page.textContent('#task-list'), { timeout: 15_000 }).toMatch(/yours: others verify/);
    await page.click('#logout');
    await page.waitForURL(srv.url + 'login');

    await login(page, srv.url, tok.vera!);
    expect(await page.textContent('#whoami')).toBe('vera (verify)');
    expect(await page.isDisabled('#mode-label')).toBe(true);
    await page.waitForSelector('#overlay .box.readonly');
    expect(await page.textContent('#verify-info')).toMatch(/1 box\(es\) from alice/);
    await page.screenshot({ path: join(artifacts, 'labeling-ui-verify.png') });
    await page.click('#approve');
    await expect.poll(() => page.textContent('#empty')).toMatch(/Nothing waiting for verification/);
    expect(errors).toEqual([]);
    await page.close();

    const [rec] = await store.latest({ sourceRefs: [ref] });
    expect(rec).toMatchObject({ status: 'APPROVED', labeling_job: 'labeling-job/ui-job', meta: { workers: ['alice'], verifier: 'vera' } });
    // drawn (100,60)-(200,150), moved +10 x, corner dragged to (230,170), nudged 2 px up:
    // (110,58)-(230,168) → left 110, top 58, 120 x 110 (± 2 px of mouse rounding)
    expect(rec!.annotations).toHaveLength(1);
    const box = rec!.annotations[0]!;
    expect(box.class_id).toBe(0);
    for (const [got, want] of [
      [box.left, 110],
      [box.top, 58],
      [box.width, 120],
      [box.height, 110],
    ] as const)
      expect(Math.abs(got - want)).toBeLessThanOrEqual(2);
  });

  it('moves through a job: task list, skip, back to amend, and readable overlapping pre-annotations (score slider, hide)', async () => {
    const files = readdirSync(join(datasetDir('metal-tags'), 'bad'))
      .sort()
      .slice(1, 4);
    const refs = files.map((f) => `s3://\${bucket}/pipeline/assets/images/upload/bad/${f}`);
    // eight overlapping device detections around one scratch, scores 0.10 .. 0.80
    const crowd = Array.from({ length: 8 }, (_, i) => ({
      class_id: 0,
      left: 150 + i * 6,
      top: 100 + (i % 3) * 5,
      width: 90,
      height: 60,
      confidence: Math.round((0.1 + i * 0.1) * 100) / 100,
    }));
    await store.append(
      refs.map((r, i) =>
        makeRecord({
          source_ref: r,
          image_width: 450,
          image_height: 300,
          annotations: i === 0 ? crowd : [],
          event_time: 200 + i,
          labeling_job: '',
          status: 'PENDING',
          device: 'line-1',
          model_version: '1.0.0',
        }),
      ),
    );
    await lab.createJob({ name: 'flow', classes: ['scratch'], workersPerImage: 2, batch: refs });
    tok.bob = lab.workers.add('bob', ['label']).token;
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await login(page, srv.url, tok.bob!);
    await page.selectOption('#job-select', 'flow');
    await expect.poll(() => page.locator('#overlay .box.device').count()).toBe(8);
    // the overlay is drawn before the task list is fetched and rendered (CI read an empty list once)
    await expect.poll(() => page.locator('#task-list li').count(), { timeout: 15_000 }).toBe(3);
    expect(await page.getAttribute('#task-list li.current', 'data-ref')).toBe(refs[0]);

    // readable: no two labels overlap, even though the boxes do
    const labels = await page
      .locator('#overlay .label-bg')
      .evaluateAll((els) => els.map((e) => e.getBoundingClientRect()).map((r) => ({ x: r.x, y: r.y, w: r.width, h: r.height })));
    expect(labels).toHaveLength(8);
    const overlaps: string[] = [];
    for (let i = 0; i < labels.length; i++)
      for (let j = i + 1; j < labels.length; j++) {
        const a = labels[i]!;
        const b = labels[j]!;
        if (a.x < b.x + b.w - 0.5 && b.x < a.x + a.w - 0.5 && a.y < b.y + b.h - 0.5 && b.y < a.y + a.h - 0.5) overlaps.push(`${i}/${j}`);
      }
    expect(overlaps).toEqual([]);
    await page.screenshot({ path: join(artifacts, 'labeling-ui-overlap.png') });

    // the score slider leaves the weak ones out (not shown, not submitted); H hides the rest for a moment
    await page.locator('#min-conf').fill('0.5');
    await expect.poll(() => page.locator('#overlay .box.device').count()).toBe(4);
    expect(await page.textContent('#filtered-note')).toMatch(/4 of 8 shown; 4 below 0\.50 left out \(not submitted\)/);
    await page.screenshot({ path: join(artifacts, 'labeling-ui-overlap-filtered.png') });
    await page.focus('#viewport');
    await page.keyboard.press('h');
    expect(await page.locator('#overlay .box').count()).toBe(0);
    expect(await page.textContent('#box-count')).toBe('4');
    await page.keyboard.press('h');
    expect(await page.locator('#overlay .box.device').count()).toBe(4);
    await page.keyboard.press('Enter');
    await expect.poll(() => page.getAttribute('#task-list li.current', 'data-ref')).toBe(refs[1]);
    const mine = () =>
      lab
        .items('flow')
        .find((i) => i.sourceRef === refs[0])!
        .annotations.find((a) => a.worker === 'bob')!.boxes;
    expect(mine().map((b) => b.left)).toEqual([174, 180, 186, 192]); // the four scored 0.5 .. 0.8

    // skip the second image: the third comes; the list marks the skipped one
    await page.focus('#viewport');
    await page.keyboard.press('s');
    await expect.poll(() => page.getAttribute('#task-list li.current', 'data-ref')).toBe(refs[2]);
    expect(await page.getAttribute(`#task-list li[data-ref="${refs[1]}"]`, 'class')).toMatch(/skipped/);
    // back twice: the skipped one, then the first, with bob's own boxes to amend
    await page.keyboard.press('b');
    await expect.poll(() => page.getAttribute('#task-list li.current', 'data-ref')).toBe(refs[1]);
    await page.keyboard.press('b');
    await expect.poll(() => page.getAttribute('#task-list li.current', 'data-ref')).toBe(refs[0]);
    expect(await page.isVisible('#editing-note')).toBe(true);
    expect(await page.textContent('#box-count')).toBe('4');
    expect(await page.getAttribute(`#task-list li[data-ref="${refs[0]}"] .badge`, 'class')).toMatch(/labelled/);
    await page.click('#box-list li >> nth=0');
    await page.keyboard.press('Delete');
    await page.keyboard.press('Enter');
    await expect.poll(() => mine().length).toBe(3);
    // open the third from the task list
    await page.click(`#task-list li[data-ref="${refs[2]}"]`);
    await expect.poll(() => page.getAttribute('#task-list li.current', 'data-ref')).toBe(refs[2]);
    await page.screenshot({ path: join(artifacts, 'labeling-ui-tasks.png') });
    expect(errors).toEqual([]);
    await page.close();
  });
});
