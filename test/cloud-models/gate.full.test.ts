import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { pathToFileURL } from 'node:url';
import { chromium } from 'playwright-core';
import { projectRoot } from '../../lib/paths.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runGate, writeGateReport, gateSummary } from '../../cloud/gate/gate.js';
import { loupeEvaluator } from '../../cloud/gate/evaluator.js';
import { SHIPPED_MODEL_DIR, seedShippedModel } from '../../cloud/registry/seed.js';
import { openRegistry } from '../../cloud/registry/sqlite-registry.js';
import { yoloDataset } from '../helpers/datasets.js';
import { worseMetalTagsModel } from '../helpers/worse-model.js';
import { runCli } from '../helpers/cli.js';

describe("quality gate with loupe's evaluator on the metal-tags test split", () => {
  let dir: string;
  let data: string;
  let worse: string;
  const champion = { ref: 'metal-tags:1', onnx: join(SHIPPED_MODEL_DIR, 'model.onnx') };
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'loupe-gate-'));
    data = await yoloDataset('metal-tags');
    worse = await worseMetalTagsModel();
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('rejects a worse challenger, scoring both on the same 35 test images, and writes a readable report', async () => {
    const report = await runGate({
      challenger: { ref: null, onnx: worse },
      champion,
      data,
      config: { metric: 'map50', threshold: 0.5, tolerance: 0.02 },
      evaluate: loupeEvaluator,
    });
    expect(report.champion!.eval.images).toBe(35);
    expect(report.challenger.eval.images).toBe(35);
    expect(report.champion!.eval.instances).toBe(report.challenger.eval.instances);
    // The shipped model scores ~0.9 mAP50 on its test split (ultralytics val: 0.897).
    expect(report.champion!.eval.map50).toBeGreaterThan(0.85);
    expect(report.challenger.eval.map50).toBeLessThan(report.champion!.eval.map50 - 0.02);
    expect(report.passed).toBe(false);
    expect(report.reasons.some((r) => r.includes('< champion'))).toBe(true);
    const paths = await writeGateReport(report, join(dir, 'worse'));
    const html = readFileSync(paths.html, 'utf8');
    expect(html).toContain('REJECTED');
    expect((html.match(/<polyline/g) ?? []).length).toBe(2); // challenger and champion PR curves (one class)
    // self-contained: no scripts, no links, pictures only inline (data: URIs)
    expect(html).not.toMatch(/<script|href=/i);
    expect(html.match(/src="(?!data:image\/jpeg;base64,)/g)).toBeNull();
    // As a person sees it: rendered by Chromium, kept as a test artefact.
    const browser = await chromium.launch({
      executablePath: '/usr/bin/chromium',
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
    });
    try {
      const page = await browser.newPage({ viewport: { width: 1000, height: 900 } });
      const requests: string[] = [];
      page.on('request', (r) => requests.push(r.url()));
      await page.goto(pathToFileURL(paths.html).href);
      expect(await page.locator('.verdict').textContent()).toBe('REJECTED');
      expect(await page.locator('svg polyline').count()).toBe(2);
      expect(requests).toEqual([pathToFileURL(paths.html).href]); // nothing fetched besides the page
      await mkdir(join(projectRoot, 'test-artifacts'), { recursive: true });
      await page.screenshot({ path: join(projectRoot, 'test-artifacts', 'gate-report-rejected.png'), fullPage: true });
    } finally {
      await browser.close();
    }
    const json = JSON.parse(readFileSync(paths.json, 'utf8'));
    expect(json.challenger.curves[0].recall.length).toBe(1000);
    expect(gateSummary(report, paths.json)).toMatchObject({
      passed: false,
      metric: 'map50',
      championRef: 'metal-tags:1',
      threshold: 0.5,
      tolerance: 0.02,
    });
  });

  it('passes the champion against itself (equal scores are within tolerance)', async () => {
    const report = await runGate({ challenger: { ref: null, onnx: champion.onnx }, champion, data, evaluate: loupeEvaluator });
    expect(report.challenger.eval.map50).toBe(report.champion!.eval.map50);
    expect(report.passed).toBe(true);
  });

  it('`loupe models gate` exits 3 on rejection and registers the rejected version with `models register`', async () => {
    const home = join(dir, 'home');
    const out = join(dir, 'cli');
    const r = await runCli(['models', 'gate', '--home', home, '--challenger', worse, '--data', data, '--out', out, '--json']);
    expect(r.code, r.stderr).toBe(3);
    const res = JSON.parse(r.stdout);
    expect(res.passed).toBe(false);
    expect(existsSync(join(out, 'gate.html'))).toBe(true);
    // the report names the bytes it scored: another model cannot be registered with it
    const other = await runCli([
      'models',
      'register',
      '--home',
      home,
      '--onnx',
      join(SHIPPED_MODEL_DIR, 'model.onnx'),
      '--gate-report',
      join(out, 'gate.json'),
      '--json',
    ]);
    expect(other.code).toBe(1);
    expect(other.stderr).toMatch(/gate\.json: the gate report scored another model/);
    const reg = await runCli([
      'models',
      'register',
      '--home',
      home,
      '--onnx',
      worse,
      '--gate-report',
      join(out, 'gate.json'),
      '--parent',
      'metal-tags:1',
      '--json',
    ]);
    expect(reg.code, reg.stderr).toBe(0);
    const v = JSON.parse(reg.stdout);
    expect(v).toMatchObject({ ref: 'metal-tags:2', status: 'rejected', parentRef: 'metal-tags:1' });
    expect(v.metrics.map50).toBeCloseTo(res.challenger.map50, 10);
    const registry = openRegistry(join(home, 'registry'));
    try {
      expect((await registry.champion('metal-tags'))?.ref).toBe('metal-tags:1');
      expect((await seedShippedModel(registry)).ref).toBe('metal-tags:1');
    } finally {
      registry.close();
    }
  });
});
