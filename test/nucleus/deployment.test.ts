import { afterEach, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { createWriteStream, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import yazl from 'yazl';
import { Nucleus, type NucleusOptions } from '../../embedded/nucleus/nucleus.js';
import {
  agentRecords,
  removeRoot,
  sharedDir,
  stepResult,
  tempRoot,
  until,
  waitForRecord,
  writeAgentRecipe,
  writeRecipe,
} from '../helpers/nucleus.js';

/**
 * Deployments with real components: dependency resolution and start order, recipe variables,
 * artefacts (digests, ZIPs), configuration merge/reset, NOTIFY_COMPONENTS with deferrals,
 * crash -> BROKEN -> rollback, persistence across a nucleus restart.
 */
const roots: string[] = [];
const nuclei: Nucleus[] = [];

afterEach(async () => {
  for (const n of nuclei.splice(0)) await n.stop();
  for (const r of roots.splice(0)) await removeRoot(r);
});

async function startNucleus(opts: Partial<NucleusOptions> = {}): Promise<{ n: Nucleus; root: string }> {
  const root = opts.root ?? tempRoot('lnd-');
  if (!opts.root) roots.push(root);
  const n = new Nucleus({ root, mqttUrl: false, thingName: 'dep-thing', killGraceMs: 1000, ...opts });
  nuclei.push(n);
  await n.start();
  return { n, root };
}

const b64sha = (data: string | Buffer) => createHash('sha256').update(data).digest('base64');

function recipe(
  name: string,
  version: string,
  lifecycle: Record<string, unknown>,
  extra: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    RecipeFormatVersion: '2020-01-25',
    ComponentName: name,
    ComponentVersion: version,
    Manifests: [{ Platform: { os: 'linux' }, Lifecycle: lifecycle, ...(extra.Artifacts ? { Artifacts: extra.Artifacts } : {}) }],
    ...extra,
    ...(extra.Artifacts ? { Artifacts: undefined } : {}),
  };
}

async function zipOf(file: string, entries: Record<string, string>): Promise<void> {
  const z = new yazl.ZipFile();
  for (const [name, content] of Object.entries(entries))
    z.addBuffer(Buffer.from(content), name, { mode: name.endsWith('.sh') ? 0o100755 : 0o100644 });
  z.end();
  await pipeline(z.outputStream, createWriteStream(file));
}

describe('local deployments', () => {
  it('resolves dependencies by semver, starts them first, and resolves recipe variables and artefacts', async () => {
    const { n, root } = await startNucleus();
    const rdir = join(root, 'in', 'recipes');
    const adir = join(root, 'in', 'artifacts');
    // dep.Base in three versions; the app accepts >=1.0.0 <2.0.0 -> 1.5.0
    mkdirSync(join(adir, 'dep.Base', '1.5.0'), { recursive: true });
    writeFileSync(join(adir, 'dep.Base', '1.5.0', 'data.txt'), 'base data');
    await zipOf(join(adir, 'dep.Base', '1.5.0', 'bundle.zip'), { 'bin/run.sh': '#!/bin/sh\necho zipped\n', README: 'r' });
    const zipDigest = b64sha(readFileSync(join(adir, 'dep.Base', '1.5.0', 'bundle.zip')));
    for (const v of ['1.0.0', '1.5.0', '2.0.0']) {
      writeRecipe(
        rdir,
        recipe(
          'dep.Base',
          v,
          { Startup: 'sleep 1', Shutdown: 'true' },
          {
            ComponentConfiguration: { DefaultConfiguration: { port: 8080, nested: { k: 'v' } } },
            ...(v === '1.5.0'
              ? {
                  Artifacts: [
                    { Uri: 's3://bucket/dep.Base/1.5.0/data.txt', Digest: b64sha('base data'), Algorithm: 'SHA-256' },
                    { Uri: 's3://bucket/dep.Base/1.5.0/bundle.zip', Digest: zipDigest, Unarchive: 'ZIP', Permission: { Execute: 'OWNER' } },
                  ],
                }
              : {}),
          },
        ),
      );
    }
    writeRecipe(rdir, recipe('dep.Soft', '1.0.0', { Run: 'sleep 600' }));
    writeRecipe(rdir, recipe('not.A.Dep', '1.0.0', { Run: 'sleep 600' }));
    writeAgentRecipe(rdir, {
      name: 'dep.App',
      config: { x: 'own-value', list: [1, 2] },
      dependencies: {
        'dep.Base': { VersionRequirement: '>=1.0.0 <2.0.0', DependencyType: 'HARD' },
        'dep.Soft': { DependencyType: 'SOFT' },
      },
      setenv: {
        V_BASE_ART: '{dep.Base:artifacts:path}',
        V_BASE_UNZ: '{dep.Base:artifacts:decompressedPath}',
        V_BASE_PORT: '{dep.Base:configuration:/port}',
        V_BASE_NESTED: '{dep.Base:configuration:/nested}',
        V_BASE_WORK: '{dep.Base:work:path}',
        V_OWN: '{configuration:/x}',
        V_LIST: '{configuration:/list}',
        V_WORK: '{work:path}',
        V_ART: '{artifacts:path}',
        V_NOT_DEP: '{not.A.Dep:artifacts:path}',
        V_THING: '{iot:thingName}',
      },
      steps: [{ op: 'env' }],
    });
    const order: string[] = [];
    n.on('state', (name: string, s: string) => order.push(`${name}:${s}`));
    const rec = await n.deploy({ recipeDir: rdir, artifactDir: adir, merge: { 'dep.App': '1.0.0' } });
    expect(rec.status, rec.failureCause).toBe('SUCCEEDED');
    expect(rec.components).toEqual([
      { name: 'dep.App', version: '1.0.0', state: 'RUNNING' },
      { name: 'dep.Base', version: '1.5.0', state: 'RUNNING' },
      { name: 'dep.Soft', version: '1.0.0', state: 'RUNNING' },
    ]);
    // The app started only after its HARD dependency was up (a SOFT one does not hold it back).
    expect(order.indexOf('dep.App:STARTING')).toBeGreaterThan(order.indexOf('dep.Base:RUNNING'));
    expect(order.indexOf('dep.Base:RUNNING')).toBeGreaterThan(order.indexOf('dep.Base:STARTING'));
    const env = (await stepResult(root, 'dep.App', 'env')).result;
    const art = join(root, 'packages', 'artifacts', 'dep.Base', '1.5.0');
    expect(env).toMatchObject({
      V_BASE_ART: art,
      V_BASE_UNZ: join(root, 'packages', 'artifacts-unarchived', 'dep.Base', '1.5.0'),
      V_BASE_PORT: '8080',
      V_BASE_NESTED: '{"k":"v"}',
      V_BASE_WORK: join(root, 'work', 'dep.Base'),
      V_OWN: 'own-value',
      V_LIST: '[1,2]',
      V_WORK: join(root, 'work', 'dep.App'),
      V_ART: join(root, 'packages', 'artifacts', 'dep.App', '1.0.0'),
      V_NOT_DEP: '{not.A.Dep:artifacts:path}',
      V_THING: 'dep-thing',
    });
    expect(readFileSync(join(art, 'data.txt'), 'utf8')).toBe('base data');
    const unz = join(root, 'packages', 'artifacts-unarchived', 'dep.Base', '1.5.0', 'bundle');
    expect(readFileSync(join(unz, 'README'), 'utf8')).toBe('r');
    expect(readFileSync(join(unz, 'bin', 'run.sh'), 'utf8')).toContain('zipped');
    expect(existsSync(join(root, 'packages', 'recipes', 'dep.Base@2.0.0.recipe.json'))).toBe(true);

    // Version ranges that cannot be met change nothing and say why.
    writeRecipe(rdir, {
      ...recipe('dep.Needy', '1.0.0', { Run: 'sleep 600' }),
      ComponentDependencies: { 'dep.Base': { VersionRequirement: '>=3.0.0' } },
    });
    const bad = await n.deploy({ recipeDir: rdir, merge: { 'dep.Needy': '1.0.0' } });
    expect(bad.status).toBe('FAILED');
    expect(bad.detailedStatus).toBe('FAILED_NO_STATE_CHANGE');
    expect(bad.failureCause).toMatch(
      /dep\.Base: no version satisfies >=1\.0\.0 <2\.0\.0 \(from dep\.App@1\.0\.0\), >=3\.0\.0 \(from dep\.Needy@1\.0\.0\); the store has 2\.0\.0, 1\.5\.0, 1\.0\.0/,
    );
    const missing = await n.deploy({ merge: { 'no.Such': '9.9.9' } });
    expect(missing.failureCause).toMatch(/no\.Such: no version satisfies 9\.9\.9/);
    expect(n.status().components.map((c) => `${c.name}@${c.version}:${c.state}`)).toEqual([
      'dep.App@1.0.0:RUNNING',
      'dep.Base@1.5.0:RUNNING',
      'dep.Soft@1.0.0:RUNNING',
    ]);
  });

  it('refuses an artefact whose SHA-256 digest does not match, changing nothing', async () => {
    const { n, root } = await startNucleus();
    const rdir = join(root, 'in', 'recipes');
    const adir = join(root, 'in', 'artifacts');
    for (const v of ['1.0.0', '2.0.0']) {
      mkdirSync(join(adir, 'dig.C', v), { recursive: true });
      writeFileSync(join(adir, 'dig.C', v, 'model.onnx'), `model ${v}`);
      // v2's recipe carries the digest of different bytes
      writeRecipe(
        rdir,
        recipe(
          'dig.C',
          v,
          { Run: 'sleep 600' },
          { Artifacts: [{ Uri: `s3://b/dig.C/${v}/model.onnx`, Digest: b64sha(v === '1.0.0' ? 'model 1.0.0' : 'tampered') }] },
        ),
      );
    }
    expect((await n.deploy({ recipeDir: rdir, artifactDir: adir, merge: { 'dig.C': '1.0.0' } })).status).toBe('SUCCEEDED');
    const rec = await n.deploy({ recipeDir: rdir, artifactDir: adir, merge: { 'dig.C': '2.0.0' } });
    expect(rec.status).toBe('FAILED');
    expect(rec.detailedStatus).toBe('FAILED_NO_STATE_CHANGE');
    expect(rec.failureCause).toMatch(/dig\.C@2\.0\.0 artifact s3:\/\/b\/dig\.C\/2\.0\.0\/model\.onnx: SHA-256 digest mismatch/);
    expect(existsSync(join(root, 'packages', 'artifacts', 'dig.C', '2.0.0', 'model.onnx'))).toBe(false);
    expect(n.status().components).toEqual([{ name: 'dig.C', version: '1.0.0', state: 'RUNNING', root: true }]);
    // a missing artefact is named too
    writeRecipe(rdir, recipe('dig.D', '1.0.0', { Run: 'sleep 600' }, { Artifacts: [{ Uri: 's3://b/none.bin' }] }));
    const miss = await n.deploy({ recipeDir: rdir, artifactDir: adir, merge: { 'dig.D': '1.0.0' } });
    expect(miss.failureCause).toMatch(/dig\.D@1\.0\.0 artifact s3:\/\/b\/none\.bin: not found; looked in .*dig\.D\/1\.0\.0\/none\.bin/);
  });

  it('notifies components before an update, honours deferrals, and sends the post-update event', async () => {
    const { n, root } = await startNucleus();
    const rdir = join(root, 'in', 'recipes');
    writeAgentRecipe(rdir, { name: 'upd.Watcher', steps: [{ op: 'subscribeUpdates', deferTimes: 2, recheckAfterMs: 600 }] });
    writeRecipe(rdir, recipe('upd.Other', '1.0.0', { Run: 'sleep 600' }));
    writeRecipe(rdir, recipe('upd.Other', '2.0.0', { Run: 'sleep 601' }));
    expect((await n.deploy({ recipeDir: rdir, merge: { 'upd.Watcher': '1.0.0' } })).status).toBe('SUCCEEDED');
    await waitForRecord(root, 'upd.Watcher', (r) => r.op === 'done');
    const t0 = Date.now();
    const rec = await n.deploy({
      merge: { 'upd.Other': '1.0.0' },
      componentUpdatePolicy: { action: 'NOTIFY_COMPONENTS', timeoutSeconds: 10 },
    });
    const took = Date.now() - t0;
    expect(rec.status, rec.failureCause).toBe('SUCCEEDED');
    expect(rec.deferrals).toEqual([
      { component: 'upd.Watcher', message: 'busy inspecting', recheckAfterMs: 600 },
      { component: 'upd.Watcher', message: 'busy inspecting', recheckAfterMs: 600 },
    ]);
    expect(took).toBeGreaterThanOrEqual(1200);
    await waitForRecord(root, 'upd.Watcher', (r) => r.event === 'componentUpdate' && !!r.postUpdateEvent);
    // (the watcher may also see the post-update event of its own deployment)
    const evs = agentRecords(root, 'upd.Watcher').filter(
      (r) =>
        r.event === 'componentUpdate' &&
        ((r.preUpdateEvent ?? r.postUpdateEvent) as { deploymentId: string }).deploymentId === rec.deploymentId,
    );
    expect(evs.map((e) => (e.preUpdateEvent ? 'pre' : 'post'))).toEqual(['pre', 'pre', 'pre', 'post']);
    expect(evs[0]!.preUpdateEvent).toEqual({ deploymentId: rec.deploymentId, isGgcRestarting: false });
    expect(evs[3]!.postUpdateEvent).toEqual({ deploymentId: rec.deploymentId });

    // SKIP_NOTIFY_COMPONENTS: no events at all.
    const skip = await n.deploy({ merge: { 'upd.Other': '2.0.0' }, componentUpdatePolicy: { action: 'SKIP_NOTIFY_COMPONENTS' } });
    expect(skip.status).toBe('SUCCEEDED');
    await new Promise((r) => setTimeout(r, 300));
    expect(
      agentRecords(root, 'upd.Watcher').filter(
        (r) =>
          r.event === 'componentUpdate' &&
          ((r.preUpdateEvent ?? r.postUpdateEvent) as { deploymentId: string }).deploymentId === skip.deploymentId,
      ),
    ).toHaveLength(0);
  });

  it('goes ahead after the notification timeout when a subscriber does not answer', async () => {
    const { n, root } = await startNucleus();
    const rdir = join(root, 'in', 'recipes');
    writeAgentRecipe(rdir, { name: 'upd.Silent', steps: [{ op: 'subscribeUpdates', answer: false }] });
    writeRecipe(rdir, recipe('upd.X', '1.0.0', { Run: 'sleep 600' }));
    expect((await n.deploy({ recipeDir: rdir, merge: { 'upd.Silent': '1.0.0' } })).status).toBe('SUCCEEDED');
    await waitForRecord(root, 'upd.Silent', (r) => r.op === 'done');
    const t0 = Date.now();
    const rec = await n.deploy({ merge: { 'upd.X': '1.0.0' }, componentUpdatePolicy: { timeoutSeconds: 1 } });
    expect(rec.status).toBe('SUCCEEDED');
    expect(Date.now() - t0).toBeGreaterThanOrEqual(1000);
    expect(rec.deferrals).toEqual([]);
  });

  it('rolls back to the previous version and configuration when a component crashes into BROKEN', async () => {
    const { n, root } = await startNucleus();
    const rdir = join(root, 'in', 'recipes');
    writeRecipe(
      rdir,
      recipe(
        'rb.App',
        '1.0.0',
        { Run: 'echo v1 {configuration:/mode}; exec sleep 600', Shutdown: 'echo shutdown-v1' },
        { ComponentConfiguration: { DefaultConfiguration: { mode: 'safe' } } },
      ),
    );
    writeRecipe(
      rdir,
      recipe(
        'rb.App',
        '2.0.0',
        { Run: 'echo v2 crashing; exit 1' },
        { ComponentConfiguration: { DefaultConfiguration: { mode: 'fast' } } },
      ),
    );
    const v1 = await n.deploy({
      recipeDir: rdir,
      merge: { 'rb.App': '1.0.0' },
      configurationUpdate: { 'rb.App': { merge: { mode: 'careful' } } },
    });
    expect(v1.status).toBe('SUCCEEDED');
    const states: string[] = [];
    n.on('state', (name: string, s: string, prev: string) => name === 'rb.App' && states.push(`${prev}->${s}`));
    const v2 = await n.deploy({ merge: { 'rb.App': '2.0.0' }, configurationUpdate: { 'rb.App': { merge: { mode: 'reckless' } } } });
    expect(v2.status).toBe('FAILED');
    expect(v2.detailedStatus).toBe('FAILED_ROLLBACK_COMPLETE');
    expect(v2.failureCause).toMatch(/rb\.App is BROKEN/);
    expect(v2.rollbackError).toBeUndefined();
    // three crashes (RUNNING -> ERRORED twice, then BROKEN), then the rollback reinstalls v1
    expect(states.filter((s) => s === 'RUNNING->ERRORED')).toHaveLength(2);
    expect(states).toContain('RUNNING->BROKEN');
    expect(n.status().components).toEqual([{ name: 'rb.App', version: '1.0.0', state: 'RUNNING', root: true }]);
    expect(n.configuration('rb.App')).toMatchObject({ mode: 'careful' });
    const log = await n.readLog('rb.App');
    expect(log).toContain('v2 crashing');
    expect(log.match(/v1 careful/g)).toHaveLength(2); // started, then started again by the rollback
    expect(log).toContain('shutdown-v1');
    expect(log).toContain('component is BROKEN');

    // DO_NOTHING leaves the broken version in place.
    const keep = await n.deploy({ merge: { 'rb.App': '2.0.0' }, failureHandlingPolicy: 'DO_NOTHING' });
    expect(keep.detailedStatus).toBe('FAILED_ROLLBACK_NOT_REQUESTED');
    expect(n.status().components).toEqual([{ name: 'rb.App', version: '2.0.0', state: 'BROKEN', root: true }]);
  });

  it('rolls back when a component is not RUNNING within the health timeout', async () => {
    const { n, root } = await startNucleus();
    const rdir = join(root, 'in', 'recipes');
    writeRecipe(rdir, recipe('slow.App', '1.0.0', { Run: 'exec sleep 600' }));
    writeRecipe(rdir, recipe('slow.App', '2.0.0', { Startup: { Script: 'sleep 30', Timeout: 60 } }));
    expect((await n.deploy({ recipeDir: rdir, merge: { 'slow.App': '1.0.0' } })).status).toBe('SUCCEEDED');
    const rec = await n.deploy({ merge: { 'slow.App': '2.0.0' }, healthTimeoutSeconds: 1.5 });
    expect(rec.detailedStatus).toBe('FAILED_ROLLBACK_COMPLETE');
    expect(rec.failureCause).toMatch(/not RUNNING within 1\.5 s: slow\.App is STARTING/);
    expect(n.status().components[0]).toMatchObject({ version: '1.0.0', state: 'RUNNING' });
  });

  it('merges and resets configuration, and removes components (running their Shutdown)', async () => {
    const { n, root } = await startNucleus();
    const rdir = join(root, 'in', 'recipes');
    writeAgentRecipe(rdir, {
      name: 'cfg.App',
      config: { a: 1, b: { c: 2 } },
      steps: [{ op: 'subscribeConfig', keyPath: [] }],
      lifecycle: { Shutdown: `echo bye > ${join(sharedDir(root), 'shutdown-ran')}` },
    });
    expect(
      (
        await n.deploy({
          recipeDir: rdir,
          merge: { 'cfg.App': '1.0.0' },
          configurationUpdate: { 'cfg.App': { merge: { b: { c: 20, d: 3 } } } },
        })
      ).status,
    ).toBe('SUCCEEDED');
    expect(n.configuration('cfg.App')).toMatchObject({ a: 1, b: { c: 20, d: 3 } });
    await waitForRecord(root, 'cfg.App', (r) => r.op === 'done');
    const rec = await n.deploy({ configurationUpdate: { 'cfg.App': { reset: ['/b/c'], merge: { a: 5 } } } });
    expect(rec.status).toBe('SUCCEEDED');
    expect(n.configuration('cfg.App')).toMatchObject({ a: 5, b: { c: 2, d: 3 } });
    await until(() => agentRecords(root, 'cfg.App').filter((r) => r.event === 'configUpdate').length >= 2, 10_000, 'config events');
    expect(
      agentRecords(root, 'cfg.App')
        .filter((r) => r.event === 'configUpdate')
        .map((r) => (r.keyPath as string[]).join('/'))
        .sort(),
    ).toEqual(['a', 'b/c']);
    // a configuration update for a component outside the deployment is an error
    const stray = await n.deploy({ configurationUpdate: { 'no.Such': { merge: { a: 1 } } } });
    expect(stray.failureCause).toMatch(/no\.Such: has a configuration update but is not part of the deployment/);

    const removed = await n.deploy({ remove: ['cfg.App'] });
    expect(removed.status).toBe('SUCCEEDED');
    expect(n.status().components).toEqual([]);
    expect(readFileSync(join(sharedDir(root), 'shutdown-ran'), 'utf8')).toBe('bye\n');
    expect(agentRecords(root, 'cfg.App').some((r) => r.op === 'sigterm')).toBe(true);
  });

  it('lets components validate configuration changes and refuses rejected ones before anything changes', async () => {
    const { n, root } = await startNucleus();
    const rdir = join(root, 'in', 'recipes');
    writeAgentRecipe(rdir, { name: 'val.App', config: { threshold: 0.5 }, steps: [{ op: 'subscribeValidate' }] });
    expect((await n.deploy({ recipeDir: rdir, merge: { 'val.App': '1.0.0' } })).status).toBe('SUCCEEDED');
    await waitForRecord(root, 'val.App', (r) => r.op === 'done');
    const ok = await n.deploy({ configurationUpdate: { 'val.App': { merge: { threshold: 0.7 } } } });
    expect(ok.status).toBe('SUCCEEDED');
    const ev = await waitForRecord(root, 'val.App', (r) => r.event === 'validate');
    expect(ev).toMatchObject({ deploymentId: ok.deploymentId, configuration: { threshold: 0.7 } });
    const no = await n.deploy({ configurationUpdate: { 'val.App': { merge: { threshold: 0.9, reject: true } } } });
    expect(no.detailedStatus).toBe('FAILED_NO_STATE_CHANGE');
    expect(no.failureCause).toMatch(/val\.App rejected its new configuration: reject is set/);
    expect(n.configuration('val.App')).toMatchObject({ threshold: 0.7 });
    expect(n.configuration('val.App')).not.toHaveProperty('reject');
  });

  it('persists deployments and comes back with the last good deployment after a restart', async () => {
    const root = tempRoot('lnp-');
    roots.push(root);
    const rdir = join(root, 'in', 'recipes');
    writeAgentRecipe(rdir, {
      name: 'per.App',
      config: { level: 1 },
      steps: [{ op: 'updateConfig', keyPath: [], value: { learned: 'yes' } }],
    });
    writeRecipe(rdir, recipe('per.Bad', '1.0.0', { Run: 'exit 1' }));
    const first = await startNucleus({ root });
    const ok = await first.n.deploy({
      recipeDir: rdir,
      merge: { 'per.App': '1.0.0' },
      configurationUpdate: { 'per.App': { merge: { level: 2 } } },
    });
    expect(ok.status).toBe('SUCCEEDED');
    await waitForRecord(root, 'per.App', (r) => r.op === 'updateConfig');
    const failed = await first.n.deploy({ merge: { 'per.Bad': '1.0.0' } });
    expect(failed.detailedStatus).toBe('FAILED_ROLLBACK_COMPLETE');
    await first.n.stop();
    nuclei.splice(nuclei.indexOf(first.n), 1);

    const second = await startNucleus({ root });
    await second.n.waitForState('per.App', 'RUNNING', 30_000);
    expect(second.n.status().components).toEqual([{ name: 'per.App', version: '1.0.0', state: 'RUNNING', root: true }]);
    expect(second.n.configuration('per.App')).toMatchObject({ level: 2, learned: 'yes' });
    const history = second.n.listDeployments();
    expect(history.map((d) => [d.deploymentId, d.status, d.detailedStatus])).toEqual([
      [ok.deploymentId, 'SUCCEEDED', 'SUCCESSFUL'],
      [failed.deploymentId, 'FAILED', 'FAILED_ROLLBACK_COMPLETE'],
    ]);
  });

  it('keeps a running dependency version that satisfies the requirement, and copies the whole artefact folder', async () => {
    const { n, root } = await startNucleus();
    const rdir = join(root, 'in', 'recipes');
    const adir = join(root, 'in', 'artifacts');
    writeRecipe(rdir, recipe('lib.Dep', '1.0.0', { Run: 'sleep 600' }));
    writeRecipe(
      rdir,
      recipe('app.One', '1.0.0', { Run: 'sleep 600' }, { ComponentDependencies: { 'lib.Dep': { VersionRequirement: '^1.0.0' } } }),
    );
    // app.One's folder holds files its recipe does not list: they come along, as with greengrass-cli.
    mkdirSync(join(adir, 'app.One', '1.0.0', 'sub'), { recursive: true });
    writeFileSync(join(adir, 'app.One', '1.0.0', 'extra.txt'), 'extra');
    writeFileSync(join(adir, 'app.One', '1.0.0', 'sub', 'inner.txt'), 'inner');
    const first = await n.deploy({ recipeDir: rdir, artifactDir: adir, merge: { 'app.One': '1.0.0' } });
    expect(first.status, first.failureCause).toBe('SUCCEEDED');
    expect(readFileSync(join(root, 'packages', 'artifacts', 'app.One', '1.0.0', 'extra.txt'), 'utf8')).toBe('extra');
    expect(readFileSync(join(root, 'packages', 'artifacts', 'app.One', '1.0.0', 'sub', 'inner.txt'), 'utf8')).toBe('inner');
    // A newer lib.Dep arrives with another component that accepts either version: 1.0.0 runs and stays.
    const rdir2 = join(root, 'in', 'recipes2');
    writeRecipe(rdir2, recipe('lib.Dep', '1.1.0', { Run: 'sleep 600' }));
    writeRecipe(
      rdir2,
      recipe('app.Two', '1.0.0', { Run: 'sleep 600' }, { ComponentDependencies: { 'lib.Dep': { VersionRequirement: '>=1.0.0' } } }),
    );
    const second = await n.deploy({ recipeDir: rdir2, merge: { 'app.Two': '1.0.0' } });
    expect(second.status, second.failureCause).toBe('SUCCEEDED');
    expect(n.status().components.find((c) => c.name === 'lib.Dep')?.version).toBe('1.0.0');
    // A requirement the running version does not meet still moves it.
    const rdir3 = join(root, 'in', 'recipes3');
    writeRecipe(
      rdir3,
      recipe('app.Three', '1.0.0', { Run: 'sleep 600' }, { ComponentDependencies: { 'lib.Dep': { VersionRequirement: '>=1.1.0' } } }),
    );
    const third = await n.deploy({ recipeDir: rdir3, merge: { 'app.Three': '1.0.0' } });
    expect(third.status, third.failureCause).toBe('SUCCEEDED');
    expect(n.status().components.find((c) => c.name === 'lib.Dep')?.version).toBe('1.1.0');
  });

  it('fills in {iot:thingName} in deployed configuration (accessControl included) only with interpolateComponentConfiguration', async () => {
    const agent = (rdir: string) =>
      writeAgentRecipe(rdir, {
        name: 'interp.Agent',
        config: { topic: 'up/{iot:thingName}' },
        accessControl: {
          'aws.greengrass.ipc.mqttproxy': { p: { operations: ['aws.greengrass#PublishToIoTCore'], resources: ['up/{iot:thingName}'] } },
        },
        steps: [
          { op: 'getConfig', keyPath: ['topic'] },
          { op: 'publishIot', topic: 'up/dep-thing', payload: Buffer.from('x').toString('base64') },
        ],
      });
    for (const interpolate of [false, true]) {
      const { n, root } = await startNucleus({ interpolateComponentConfiguration: interpolate });
      agent(join(root, 'in'));
      expect((await n.deploy({ recipeDir: join(root, 'in'), merge: { 'interp.Agent': '1.0.0' } })).status).toBe('SUCCEEDED');
      await waitForRecord(root, 'interp.Agent', (r) => r.op === 'done');
      const recs = agentRecords(root, 'interp.Agent').filter((r) => r.step !== undefined);
      expect(recs[0]!.result.value, String(interpolate)).toEqual({ topic: interpolate ? 'up/dep-thing' : 'up/{iot:thingName}' });
      // Offline (no broker): an authorized publish fails with the offline message, a denied one with Not Authorized.
      expect(recs[1]!.error.serviceError.message, String(interpolate)).toBe(
        interpolate ? 'Publish to topic up/dep-thing failed: Cannot publish because device is configured to run offline' : 'Not Authorized',
      );
    }
  });
});
