import { cpSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { silentLogger } from '../../lib/log.js';
import { projectRoot } from '../../lib/paths.js';
import { LOOP_STORE_SCHEMA, LoopStore } from '../../cloud/loop/store.js';
import { checkOutput, done, halted, runLoop, type LoopStep } from '../../cloud/loop/runner.js';
import { LOOP_STEPS, bindStep, loopSteps, priorSchema, publishStep, registerStep } from '../../cloud/loop/steps.js';
import { STEP_OUTPUTS, registerOutput } from '../../cloud/loop/outputs.js';
import { loopHome, parseLoopConfig, type LoopConfigInput } from '../../cloud/loop/config.js';
import { LoopEnv } from '../../cloud/loop/env.js';
import type { EvaluateFn } from '../../cloud/gate/gate.js';
import { deployedArtefact } from '../../cloud/registry/types.js';
import { MemoryFleet, memoryFleetPort } from '../helpers/memory-fleet.js';

/**
 * Typed loop steps over ports: outputs checked on write and on resume (a store written by the
 * previous release reads; a renamed field fails the resume naming run, step and field before
 * anything runs), halting as a typed outcome kept across the loop store's migration, and a new
 * fleet backend put behind the fleet port as one file (test/helpers/memory-fleet.ts).
 */
const tmp = mkdtempSync(join(tmpdir(), 'loupe-loop-typed-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
let n = 0;
const fresh = () => {
  const d = join(tmp, String(++n));
  mkdirSync(d, { recursive: true });
  return d;
};
const interrupted = join(projectRoot, 'test', 'fixtures', 'previous-release', 'interrupted');
const noEvaluate: EvaluateFn = () => Promise.reject(new Error('no evaluation in this test'));
const baseConfig: LoopConfigInput = {
  storage: { endpoint: 'http://127.0.0.1:9', bucket: 'loupe', credentials: { accessKeyId: 'a', secretAccessKey: 'b' } },
  labeling: { backend: 'simulated', workersPerImage: 2, cap: 4, seed: 3 },
  fleet: { backend: 'local', nucleusRoot: '/nonexistent/nucleus', thingName: 'line-1', mqttUrl: 'mqtt://127.0.0.1:1' },
};
/** No telemetry (no `things`): confirm asks the fleet what its devices run. */
const controlPlaneConfig: LoopConfigInput = {
  storage: { backend: 's3', region: 'eu-west-1', endpoint: 'http://127.0.0.1:9', bucket: 'loupe' },
  fleet: {
    backend: 'aws',
    region: 'eu-west-1',
    thingGroupArn: 'arn:aws:iot:eu-west-1:111122223333:thinggroup/line',
    bucket: 'loupe',
    pollSeconds: 1,
    confirmTimeoutSeconds: 5,
  },
};

describe('typed loop steps', () => {
  it('every step declares its output schema and the earlier outputs it needs, in run order', () => {
    for (const s of LOOP_STEPS) {
      expect(s.output).toBe(STEP_OUTPUTS[s.name]);
      for (const need of s.needs) expect(LOOP_STEPS.findIndex((x) => x.name === need)).toBeLessThan(LOOP_STEPS.indexOf(s));
    }
    // What a handler outside this process parses its event with.
    expect(() => priorSchema(publishStep).parse({ register: { ref: 'metal-tags:2' } })).toThrow(/status/);
  });

  it('outputs the previous release committed (an interrupted run of 53fa33d) read with today’s schemas', () => {
    const dir = fresh();
    cpSync(interrupted, dir, { recursive: true });
    const store = new LoopStore(join(dir, 'loop.db'));
    try {
      const run = store.unfinishedRun()!;
      const doneSteps = store.steps(run.id).filter((s) => s.status === 'done');
      expect(doneSteps.map((s) => s.name)).toEqual(['ingest', 'label', 'verify']);
      for (const s of doneSteps) {
        const def = LOOP_STEPS.find((d) => d.name === s.name)!;
        expect(checkOutput(def, run.id, s.output, 'stored')).toEqual(s.output);
      }
    } finally {
      store.close();
    }
  });

  /**
   * Resume the interrupted fixture after renaming one field of the label step's stored output, as
   * if an older loupe had called it so; returns the error, after checking nothing ran.
   */
  async function resumeWithLabelFieldRenamed(from: string, to: string): Promise<unknown> {
    const dir = fresh();
    cpSync(interrupted, dir, { recursive: true });
    const db = new Database(join(dir, 'loop.db'));
    const had = db.prepare(`SELECT json_type(output, '$.${from}') AS t FROM steps WHERE name = 'label'`).get() as { t: string | null };
    expect(had.t, `the fixture's label output has ${from}`).not.toBeNull();
    db.prepare(
      `UPDATE steps SET output = json_remove(json_set(output, '$.${to}', json_extract(output, '$.${from}')), '$.${from}') WHERE name = 'label'`,
    ).run();
    db.close();
    const home = loopHome(dir);
    const config = parseLoopConfig(baseConfig, 'test');
    const env = await LoopEnv.open(config, home, silentLogger, { evaluate: noEvaluate });
    const store = new LoopStore(home.loopDb);
    try {
      const before = store.steps(1);
      const runBefore = store.getRun(1);
      const err = await runLoop({
        store,
        steps: loopSteps({ ports: env.ports, config }),
        trigger: 'test',
        config: {},
        runsDir: home.runsDir,
      }).catch((e: unknown) => e);
      // Nothing ran: the snapshot step is as the crash left it, the run still resumable.
      expect(store.steps(1)).toEqual(before);
      expect(store.getRun(1)).toEqual(runBefore);
      return err;
    } finally {
      store.close();
      await env.close();
    }
  }

  it('a field renamed in a stored output fails the resume, naming the run, the step and the field, before any step runs', async () => {
    const err = await resumeWithLabelFieldRenamed('job', 'jobName');
    expect(err).toMatchObject({ code: 'LOOP_OUTPUT_INVALID' });
    expect(String((err as Error).message)).toMatch(
      /^run 1, step label: the output stored for it does not match what this loupe expects: job: /,
    );
  });

  it('an OPTIONAL field renamed in a stored output fails the resume too (strict schemas), naming the old name', async () => {
    // Without strict schemas `submitted` (optional) read as undefined and the rename went unnoticed.
    const err = await resumeWithLabelFieldRenamed('submitted', 'submittedCount');
    expect(err).toMatchObject({ code: 'LOOP_OUTPUT_INVALID', input: 'run 1, step label' });
    expect(String((err as Error).message)).toBe(
      'run 1, step label: the output stored for it does not match what this loupe expects: submittedCount: not a field of this output (renamed or removed?)',
    );
  });

  it('unknown fields are refused inside named objects as well, and when a step returns them', () => {
    const gate = {
      passed: true,
      reasons: [],
      fleetPrecision: 'fp32',
      fleetPrecisionReason: 'no int8',
      json: '/g.json',
      html: '/g.html',
      summary: {
        passed: true,
        metric: 'map50',
        challenger: 0.9,
        champion: 0.8,
        championRef: 'g:1',
        threshold: 0.5,
        tolerance: 0.02,
        reasons: [],
      },
    };
    const gateDef = LOOP_STEPS.find((d) => d.name === 'gate')!;
    expect(checkOutput(gateDef, 4, gate, 'stored')).toEqual(gate);
    // `reportPath` (optional) renamed `report`: refused, by its path.
    expect(() => checkOutput(gateDef, 4, { ...gate, summary: { ...gate.summary, report: '/g.json' } }, 'returned')).toThrow(
      /^run 4, step gate: it returned an output that does not match its schema: summary\.report: not a field of this output/,
    );
    // A bag that records another system's state (Ground Truth's job) stays open.
    const verifyDef = LOOP_STEPS.find((d) => d.name === 'verify')!;
    const v = { job: 'j', approved: 1, rejected: 0, verifiedAt: 5, groundTruth: { job: 'j-verify', status: 'Completed', anything: 1 } };
    expect(checkOutput(verifyDef, 4, v, 'stored')).toEqual(v);
  });

  it('a step that returns an output its schema refuses fails there, naming the field; the next run resumes it', async () => {
    const dir = fresh();
    const store = new LoopStore(join(dir, 'loop.db'));
    let good = false;
    const steps: LoopStep[] = [
      { name: 'a', title: 'a', output: z.object({ n: z.number() }), run: async () => done({ n: 1 }) },
      { name: 'b', title: 'b', output: z.object({ ref: z.string() }), run: async () => done(good ? { ref: 'x:1' } : { reference: 'x:1' }) },
    ];
    try {
      await expect(runLoop({ store, steps, trigger: 't', config: {}, runsDir: join(dir, 'runs') })).rejects.toThrow(
        /^run 1, step b: it returned an output that does not match its schema: ref: /,
      );
      expect(store.steps(1).map((s) => `${s.name}:${s.status}`)).toEqual(['a:done', 'b:failed']);
      good = true;
      const r = await runLoop({ store, steps, trigger: 't', config: {}, runsDir: join(dir, 'runs') });
      expect(r).toMatchObject({ run: 1, status: 'succeeded', outputs: { a: { n: 1 }, b: { ref: 'x:1' } } });
    } finally {
      store.close();
    }
  });

  it('a halt committed by an earlier release (`__halt` inside the output) moves to steps.halt; the resumed run ends there', async () => {
    const dir = fresh();
    const path = join(dir, 'loop.db');
    // The loop store at schema version 1, as every release before this one wrote it.
    const db = new Database(path);
    const v1 = LOOP_STORE_SCHEMA.migrations[0]!.up;
    db.exec(typeof v1 === 'string' ? v1 : '');
    db.pragma('user_version = 1');
    db.prepare(
      "INSERT INTO runs (id, trigger, status, created_at, config) VALUES (1, 'manual', 'running', '2026-01-01T00:00:00Z', '{}')",
    ).run();
    db.prepare("INSERT INTO steps (run_id, name, seq, status, attempts, output) VALUES (1, 'a', 0, 'done', 1, '{\"n\":1}')").run();
    db.prepare("INSERT INTO steps (run_id, name, seq, status, attempts, output) VALUES (1, 'b', 1, 'done', 1, ?)").run(
      JSON.stringify({ ref: 'x:2', __halt: 'x:2 awaits approval' }),
    );
    db.close();
    const store = new LoopStore(path);
    const ran: string[] = [];
    const step = (name: string, output: z.ZodType<Record<string, unknown>>): LoopStep => ({
      name,
      title: name,
      output,
      run: async () => (ran.push(name), done({})),
    });
    try {
      expect(store.steps(1).map((s) => [s.name, s.halt, s.output])).toEqual([
        ['a', null, { n: 1 }],
        ['b', 'x:2 awaits approval', { ref: 'x:2' }],
      ]);
      const r = await runLoop({
        store,
        steps: [step('a', z.object({ n: z.number() })), step('b', z.object({ ref: z.string() })), step('c', z.object({}))],
        trigger: 't',
        config: {},
        runsDir: join(dir, 'runs'),
      });
      expect(ran).toEqual([]);
      expect(r).toMatchObject({ status: 'halted', halt: 'x:2 awaits approval' });
      expect(r.steps.map((s) => `${s.name}:${s.status}`)).toEqual(['a:done', 'b:done', 'c:skipped']);
      // A halt made now is kept the same way.
      const r2 = await runLoop({
        store,
        steps: [{ name: 'a', title: 'a', output: z.object({}), run: async () => halted({}, 'enough') }],
        trigger: 't',
        config: {},
        runsDir: join(dir, 'runs'),
      });
      expect(r2).toMatchObject({ run: 2, status: 'halted', halt: 'enough', outputs: { a: {} } });
      expect(store.steps(2)[0]!.halt).toBe('enough');
    } finally {
      store.close();
    }
  });

  it('a new fleet backend is one file: the loop’s publish, deploy and confirm steps run unchanged on an in-memory fleet', async () => {
    const dir = fresh();
    const home = loopHome(dir);
    mkdirSync(home.dir, { recursive: true });
    const config = parseLoopConfig(controlPlaneConfig, 'test');
    const memory = new MemoryFleet();
    const env = await LoopEnv.open(config, home, silentLogger, { evaluate: noEvaluate, overrides: { fleet: memoryFleetPort(memory) } });
    const store = new LoopStore(home.loopDb);
    try {
      // The registry's seeded champion stands in for what the earlier steps registered.
      const v = (await env.registry.champion(config.group))!;
      const registered = registerOutput.parse({
        ref: v.ref,
        status: v.status,
        reason: v.statusReason,
        fleetPrecision: v.fleetPrecision,
        onnxSha256: deployedArtefact(v).ref.sha256,
        fp32Sha256: v.artefacts.onnx.sha256,
      });
      const given: LoopStep = { name: 'register', title: 'given', output: registerStep.output, run: async () => done(registered) };
      const real = ['publish', 'deploy', 'confirm'].map((name) =>
        bindStep(
          LOOP_STEPS.find((s) => s.name === name)!,
          env.ports,
          config,
        ),
      );
      const r = await runLoop({ store, steps: [given, ...real], trigger: 'test', config: {}, runsDir: home.runsDir });
      expect(r.status).toBe('succeeded');
      expect(r.outputs.publish).toMatchObject({ component: 'loupe.Model', version: '1.0.1', created: true });
      const published = memory.components.get('loupe.Model@1.0.1')!;
      expect(published.artefacts.find((a) => a.name === 'model.onnx')?.sha256).toBe(registered.onnxSha256);
      expect(r.outputs.deploy).toMatchObject({
        name: 'loupe-run-1',
        deploymentId: 'mem-1',
        version: '1.0.1',
        previousVersion: '1.0.0',
        state: 'succeeded',
      });
      expect(r.outputs.confirm).toEqual({ devices: [{ device: 'line-1', modelVersion: '1.0.1', state: 'RUNNING' }], via: 'control plane' });
      expect(env.fleetStore.deploymentByName('local', memory.target, 'loupe-run-1')?.state).toBe('confirmed');
    } finally {
      store.close();
      await env.close();
    }
  });
});
