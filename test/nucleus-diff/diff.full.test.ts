import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { projectRoot } from '../../lib/paths.js';
import { realNucleusPrerequisites, startRealNucleus, type RunningNucleus } from '../helpers/real-nucleus.js';
import { startLoupeNucleus } from './loupe-runner.js';
import { compare, observe, prepareRoot, PROBE, waitSettled, writeScenario, type Row, type Scenario } from './scenario.js';

/**
 * The real Greengrass nucleus is the oracle: the same init-config file (18 probe components)
 * starts the real nucleus and loupe's, side by side, and every observable is compared (IPC
 * results and events, configuration after each update, lifecycle state sequences, environment,
 * uid/gid/HOME/PATH, files and modes in work and artefact folders, TES answers). The table goes
 * to test-artifacts/nucleus-diff.md. A second, one-probe file names no TES (when TES starts
 * decides which components get its address). Differences loupe makes on purpose are named here and
 * explained in embedded/nucleus/README.md; every other observable must agree.
 */
const DELIBERATE: Record<string, string> = {
  'ipc diff.Env: #01 tes with the token':
    "loupe's TES hands out the embedded object store's local keys so the stack works offline; the real TES asks AWS IoT for credentials and, offline, answers 500",
};
// Per probe that reports its environment (identity): what every one of them sees differently on purpose.
for (const probe of ['diff.Env', 'diff.TesVia', 'diff.NoTes']) {
  DELIBERATE[`env ${probe}: GGC_VERSION`] =
    'the real nucleus under test is a source build whose jar manifest has no version (0.0.0); loupe reports the aws.greengrass.Nucleus version of the configuration';
  DELIBERATE[`env ${probe}: JAVA_HOME`] = 'the real nucleus is a Java program and passes its JVM home to every component; loupe is not';
}

interface Variant {
  scenario: Scenario;
  real: Map<string, unknown>;
  loupe: Map<string, unknown>;
  rows: Row[];
  pending: { real: string[]; loupe: string[] };
  output: { real: string; loupe: string };
}

let dir: string;
let scenario: Scenario;
let rows: Row[] = [];
let main: Variant | undefined;
let noTes: Variant | undefined;
const running: RunningNucleus[] = [];

/** One init-config on both nuclei side by side (the real one takes 5-40 s to start here), observed once settled, then both stopped. */
async function runVariant(name: string, opts: { tes: boolean }): Promise<Variant> {
  const vdir = join(dir, name);
  const sc = writeScenario(vdir, { name, tes: opts.tes });
  const roots = { real: join(vdir, 'real-root'), loupe: join(vdir, 'loupe-root') };
  prepareRoot(roots.real);
  prepareRoot(roots.loupe);
  const [real, loupe] = await Promise.all([
    startRealNucleus({ initConfig: sc.initConfig, root: roots.real }).then((n) => (running.push(n), n)),
    startLoupeNucleus({ initConfig: sc.initConfig, root: roots.loupe }).then((n) => (running.push(n), n)),
  ]);
  const [pr, pl] = await Promise.all([waitSettled(sc, real, 150_000), waitSettled(sc, loupe, 150_000)]);
  const env = { ...process.env };
  const obs = { real: observe(sc, real, env), loupe: observe(sc, loupe, env) };
  const output = { real: real.output(), loupe: loupe.output() };
  await Promise.all([real.stop(), loupe.stop()]);
  for (const n of [real, loupe]) running.splice(running.indexOf(n), 1);
  return { scenario: sc, ...obs, rows: compare(obs.real, obs.loupe, DELIBERATE), pending: { real: pr, loupe: pl }, output };
}

function readableByComponentUser(path: string): boolean {
  return spawnSync('sudo', ['-n', '-u', 'ggc_user', 'test', '-r', path], { stdio: 'ignore' }).status === 0;
}

beforeAll(async () => {
  const problems = realNucleusPrerequisites();
  if (problems.length) throw new Error(`the differential suite needs the real nucleus: ${problems.join('; ')} (.ci/run installs these)`);
  if (
    !readableByComponentUser(PROBE) ||
    !readableByComponentUser(join(projectRoot, 'node_modules', 'aws-iot-device-sdk-v2', 'package.json'))
  ) {
    throw new Error(
      `ggc_user cannot read ${projectRoot}: both nuclei run the probes as ggc_user, so the project must be readable by others (chmod o+rx on it and the folders above)`,
    );
  }
  dir = mkdtempSync('/tmp/ndiff-');
  chmodSync(dir, 0o755);
  main = await runVariant('main', { tes: true });
  scenario = main.scenario;
  // A second, small start-up: the only way to a fixed answer for a component that does not
  // wait for TES is a deployment in which TES does not start at all.
  noTes = await runVariant('no-tes', { tes: false });
  rows = [...main.rows, ...noTes.rows.map((r) => ({ ...r, observable: `[no TES] ${r.observable}` }))];
  writeReport(rows);
}, 600_000);

afterAll(async () => {
  await Promise.all(running.map((n) => n.stop()));
  if (dir) await rm(dir, { recursive: true, force: true });
});

const cell = (v: unknown) => {
  const s = typeof v === 'string' ? v : JSON.stringify(v);
  return (s.length > 160 ? s.slice(0, 157) + '...' : s).replaceAll('|', '\\|').replaceAll('\n', ' ');
};

function writeReport(rs: Row[]): void {
  const out = join(projectRoot, 'test-artifacts');
  mkdirSync(out, { recursive: true });
  const agree = rs.filter((r) => r.agree).length;
  const deliberate = rs.filter((r) => !r.agree && r.deliberate);
  const lines = [
    '# loupe nucleus vs the real Greengrass nucleus',
    '',
    `${rs.length} observables from one init-config file (${Object.keys(scenario.components).length} probe components) and a second one with no TES ([no TES] rows) run on both: ${agree} agree, ${deliberate.length} differ on purpose, ${rs.length - agree - deliberate.length} differ otherwise.`,
    '',
    '| observable | real | loupe | agree |',
    '|---|---|---|---|',
    ...rs.map(
      (r) =>
        `| ${cell(r.observable)} | ${cell(r.real)} | ${cell(r.loupe)} | ${r.agree ? 'yes' : r.deliberate ? `no, on purpose: ${cell(r.deliberate)}` : '**NO**'} |`,
    ),
    '',
  ];
  writeFileSync(join(out, 'nucleus-diff.md'), lines.join('\n'));
  writeFileSync(join(out, 'nucleus-diff.json'), JSON.stringify(rs, null, 1));
}

describe('loupe nucleus against the real Greengrass nucleus (same init-config, same probes)', () => {
  it('both settle: every probe ran all its steps and every lifecycle reached its end state', () => {
    for (const v of [main!, noTes!]) {
      expect(v.pending.real, `real nucleus (${v.scenario.name}):\n${v.output.real.slice(-2000)}`).toEqual([]);
      expect(v.pending.loupe, `loupe nucleus (${v.scenario.name}):\n${v.output.loupe.slice(-2000)}`).toEqual([]);
    }
  });

  it('observes enough to mean something (IPC results, events, states, environment, files)', () => {
    for (const kind of ['ipc ', 'events ', 'lifecycle ', 'env ', 'identity ', 'files '])
      expect(rows.filter((r) => r.observable.startsWith(kind)).length, kind).toBeGreaterThan(3);
    expect(rows.length).toBeGreaterThan(250);
  });

  it('every observable agrees, except the named deliberate differences', () => {
    const bad = rows.filter((r) => !r.agree && !r.deliberate);
    expect(bad.map((r) => `${r.observable}\n  real:  ${JSON.stringify(r.real)}\n  loupe: ${JSON.stringify(r.loupe)}`).join('\n')).toBe('');
  });

  it('the TES address: a component gets it once TES has started before it, on both nuclei alike', () => {
    // Whatever the environment the tests run in, each env observable is what the nucleus changed.
    const URI = 'AWS_CONTAINER_CREDENTIALS_FULL_URI';
    const token = '<16 upper-case letters and digits>';
    const tesUri = 'http://localhost:<port>/2016-11-01/credentialprovider/';
    for (const side of ['real', 'loupe'] as const) {
      // diff.Env depends on TES; diff.TesVia only on diff.Env: both start after TES has.
      expect(main![side].get(`env diff.Env: ${URI}`), side).toBe(tesUri);
      expect(main![side].get(`env diff.TesVia: ${URI}`), side).toBe(tesUri);
      // Nothing names TES: it never starts, and no component gets its address (the token, yes).
      expect(noTes![side].has(`env diff.NoTes: ${URI}`), `${side}: ${String(noTes![side].get(`env diff.NoTes: ${URI}`))}`).toBe(false);
      expect(noTes![side].get(`env diff.NoTes: AWS_CONTAINER_AUTHORIZATION_TOKEN`), side).toBe(token);
      expect(noTes![side].get(`env diff.NoTes: SVCUID`), side).toBe(token);
    }
  });
});
