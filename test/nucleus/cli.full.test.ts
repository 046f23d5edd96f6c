import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import { projectRoot } from '../../lib/paths.js';
import { runCli } from '../helpers/cli.js';
import { removeRoot, sharedDir, tempRoot, until, writeRecipe } from '../helpers/nucleus.js';

/**
 * `loupe nucleus start|deploy|status|logs` as a user runs them (the built CLI, real processes):
 * deploy reaches the running nucleus over IPC with the CLI token, as greengrass-cli does.
 */
let dir: string;
let root: string;
let nucleusProc: ChildProcess;
let startLine: Record<string, unknown>;

beforeAll(async () => {
  dir = tempRoot('lnc-');
  root = join(dir, 'gg');
  const rdir = join(dir, 'recipes');
  const adir = join(dir, 'artifacts');
  mkdirSync(join(adir, 'cli.Hello', '1.0.0'), { recursive: true });
  writeFileSync(join(adir, 'cli.Hello', '1.0.0', 'hello.sh'), 'echo "hello $1 from $AWS_IOT_THING_NAME"; exec sleep 600\n');
  writeRecipe(rdir, {
    RecipeFormatVersion: '2020-01-25',
    ComponentName: 'cli.Hello',
    ComponentVersion: '1.0.0',
    ComponentConfiguration: { DefaultConfiguration: { who: 'world' } },
    Manifests: [
      {
        Platform: { os: 'linux' },
        Lifecycle: {
          Run: 'sh {artifacts:path}/hello.sh {configuration:/who}',
          Shutdown: `echo stopped > ${join(sharedDir(dir), 'stopped')}`,
        },
        Artifacts: [{ Uri: 's3://bucket/hello.sh' }],
      },
    ],
  });
  writeRecipe(
    rdir,
    {},
    'yaml',
    `RecipeFormatVersion: '2020-01-25'
ComponentName: cli.Crash
ComponentVersion: 1.0.0
Manifests:
  - Lifecycle:
      Run: exit 1
`,
  );
  nucleusProc = spawn(
    process.execPath,
    [join(projectRoot, 'bin', 'loupe.js'), 'nucleus', 'start', '--root', root, '--thing', 'cli-thing', '--mqtt', 'none'],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, LOUPE_LOG_LEVEL: 'warn' },
    },
  );
  nucleusProc.stderr!.resume();
  startLine = await new Promise((resolve, reject) => {
    const rl = createInterface({ input: nucleusProc.stdout! });
    rl.once('line', (l) => resolve(JSON.parse(l) as Record<string, unknown>));
    nucleusProc.once('exit', (code) => reject(new Error(`nucleus exited early with ${code}`)));
  });
});

/** Poll `loupe nucleus status` until its text matches. */
async function statusMatches(re: RegExp, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    last = (await runCli(['nucleus', 'status', '--root', root])).stdout;
    if (re.test(last)) return;
    await new Promise((r) => setTimeout(r, 300));
  }
  throw new Error(`nucleus status never matched ${re}: ${last}`);
}

afterAll(async () => {
  if (nucleusProc && nucleusProc.exitCode === null) nucleusProc.kill('SIGKILL');
  await removeRoot(dir);
});

describe('loupe nucleus', () => {
  it('starts in the foreground and reports where it listens', () => {
    expect(startLine).toMatchObject({
      started: true,
      root,
      thingName: 'cli-thing',
      socketPath: join(root, 'ipc.socket'),
      mqttUrl: null,
      components: [],
    });
    expect(existsSync(join(root, 'cli_ipc_info'))).toBe(true);
  });

  it('deploys through the IPC CLI route and exits 0 on success, 3 on a rolled-back failure', async () => {
    const ok = await runCli([
      'nucleus',
      'deploy',
      '--root',
      root,
      '--recipe-dir',
      join(dir, 'recipes'),
      '--artifact-dir',
      join(dir, 'artifacts'),
      '--merge',
      'cli.Hello=1.0.0',
      '--update-config',
      '{"cli.Hello":{"MERGE":{"who":"loupe"}}}',
      '--json',
    ]);
    expect(ok.code, ok.stderr).toBe(0);
    const rec = JSON.parse(ok.stdout) as Record<string, unknown>;
    expect(rec).toMatchObject({
      status: 'SUCCEEDED',
      detailedStatus: 'SUCCESSFUL',
      components: [{ name: 'cli.Hello', version: '1.0.0', state: 'RUNNING' }],
    });
    expect(ok.stderr).toMatch(/deployment .* SUCCEEDED/);

    const bad = await runCli([
      'nucleus',
      'deploy',
      '--root',
      root,
      '--recipe-dir',
      join(dir, 'recipes'),
      '--merge',
      'cli.Crash=1.0.0',
      '--json',
    ]);
    expect(bad.code).toBe(3);
    const fr = JSON.parse(bad.stdout) as Record<string, unknown>;
    expect(fr).toMatchObject({ status: 'FAILED', detailedStatus: 'FAILED_ROLLBACK_COMPLETE' });
    expect(String(fr.failureCause)).toMatch(/cli\.Crash is BROKEN/);
    expect(fr.components).toEqual([{ name: 'cli.Hello', version: '1.0.0', state: 'RUNNING' }]);
  });

  it('prints status and logs', async () => {
    const st = await runCli(['nucleus', 'status', '--root', root, '--json']);
    expect(st.code).toBe(0);
    expect(JSON.parse(st.stdout)).toMatchObject({ running: true, components: [{ name: 'cli.Hello', version: '1.0.0', state: 'RUNNING' }] });
    const text = await runCli(['nucleus', 'status', '--root', root]);
    expect(text.stdout).toMatch(/cli\.Hello 1\.0\.0 RUNNING/);
    const logs = await runCli(['nucleus', 'logs', '--root', root, 'cli.Hello']);
    expect(logs.code).toBe(0);
    expect(logs.stdout).toContain('hello loupe from cli-thing');
    const tail = await runCli(['nucleus', 'logs', '--root', root, 'cli.Hello', '--tail', '1']);
    expect(tail.stdout.trim().split('\n')).toHaveLength(1);
    const own = await runCli(['nucleus', 'logs', '--root', root, 'greengrass']);
    expect(own.code).toBe(0);
  });

  it('lists deployments and shows one; restarts and stops a component; follows its log (greengrass-cli deployment/component/logs)', async () => {
    const list = await runCli(['nucleus', 'deployment', 'list', '--root', root, '--json']);
    expect(list.code, list.stderr).toBe(0);
    const deps = JSON.parse(list.stdout) as { deploymentId: string; status: string }[];
    expect(deps.map((d) => d.status)).toEqual(['SUCCEEDED', 'FAILED']);
    const one = await runCli(['nucleus', 'deployment', 'status', '--root', root, deps[1]!.deploymentId]);
    expect(one.code, one.stderr).toBe(0);
    expect(one.stdout).toMatch(new RegExp(`^${deps[1]!.deploymentId} FAILED FAILED_ROLLBACK_COMPLETE .*cli\\.Crash is BROKEN`));
    const missing = await runCli(['nucleus', 'deployment', 'status', '--root', root, 'no-such-id']);
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toMatch(/GetLocalDeploymentStatus failed/);

    // follow the component's log while it restarts: the new run's line arrives
    const follower = spawn(
      process.execPath,
      [
        join(projectRoot, 'bin', 'loupe.js'),
        'nucleus',
        'logs',
        '--root',
        root,
        'cli.Hello',
        '--follow',
        '--tail',
        '0',
        '--filter',
        'hello loupe',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let followed = '';
    follower.stdout!.on('data', (b: Buffer) => (followed += b.toString()));
    try {
      await new Promise((r) => setTimeout(r, 1000));
      const restart = await runCli(['nucleus', 'component', 'restart', '--root', root, 'cli.Hello']);
      expect(restart.code, restart.stderr).toBe(0);
      expect(restart.stdout).toMatch(/^cli\.Hello: restart SUCCEEDED/);
      await until(() => followed.includes('hello loupe from cli-thing'), 30_000, 'the restarted run in the followed log');
      expect(
        followed
          .split('\n')
          .filter(Boolean)
          .every((l) => l.includes('hello loupe')),
      ).toBe(true);
    } finally {
      follower.kill('SIGINT');
    }
    const code = await new Promise<number | null>((r) => follower.once('exit', r));
    expect(code).toBe(0);

    const stop = await runCli(['nucleus', 'component', 'stop', '--root', root, 'cli.Hello', '--json']);
    expect(stop.code, stop.stderr).toBe(0);
    expect(JSON.parse(stop.stdout)).toMatchObject({ component: 'cli.Hello', action: 'stop', status: 'SUCCEEDED' });
    await statusMatches(/cli\.Hello 1\.0\.0 (FINISHED|STOPPING)/);
    const unknown = await runCli(['nucleus', 'component', 'restart', '--root', root, 'no.Such']);
    expect(unknown.code).not.toBe(0);
    expect(unknown.stderr).toMatch(/RestartComponent failed.*no\.Such not found/);
    // back to RUNNING for the tests after this one
    expect((await runCli(['nucleus', 'component', 'restart', '--root', root, 'cli.Hello'])).code).toBe(0);
    await statusMatches(/cli\.Hello 1\.0\.0 RUNNING/);
  });

  it('rejects bad input with a clear message and a non-zero exit', async () => {
    const cases: [string[], RegExp][] = [
      [['nucleus', 'deploy', '--root', root, '--merge', 'no-version'], /--merge: must be NAME=VERSION, got "no-version"/],
      [['nucleus', 'deploy', '--root', root, '--merge', 'a=1.0.0', '--update-config', '{oops'], /--update-config: not valid JSON/],
      [
        ['nucleus', 'deploy', '--root', root, '--merge', 'a=1.0.0', '--recipe-dir', join(dir, 'nope')],
        /--recipe-dir .*nope: does not exist/,
      ],
      [['nucleus', 'deploy', '--root', root], /give at least one --merge, --remove or --update-config/],
      [['nucleus', 'deploy', '--root', join(dir, 'not-a-nucleus'), '--merge', 'a=1.0.0'], /no nucleus is running on this root/],
      [['nucleus', 'logs', '--root', root, 'no.Such'], /no\.Such: has no log/],
      [['nucleus', 'start', '--root', root], /another nucleus \(pid \d+\) is running on this root/],
    ];
    for (const [args, msg] of cases) {
      const r = await runCli(args);
      expect(r.code, args.join(' ')).not.toBe(0);
      expect(r.stderr, args.join(' ')).toMatch(msg);
    }
  });

  it('stops cleanly on SIGTERM (Shutdown steps run) and reports the last good deployment afterwards', async () => {
    nucleusProc.kill('SIGTERM');
    const code = await new Promise<number | null>((r) => nucleusProc.once('exit', (c) => r(c)));
    expect(code).toBe(0);
    await until(() => existsSync(join(sharedDir(dir), 'stopped')), 5000, 'the Shutdown step');
    expect(readFileSync(join(sharedDir(dir), 'stopped'), 'utf8')).toBe('stopped\n');
    expect(existsSync(join(root, 'cli_ipc_info'))).toBe(false);
    const st = await runCli(['nucleus', 'status', '--root', root, '--json']);
    expect(JSON.parse(st.stdout)).toEqual({
      root,
      running: false,
      pid: null,
      components: [{ name: 'cli.Hello', version: '1.0.0', state: null }],
      lastDeployment: null,
    });
  });
});
