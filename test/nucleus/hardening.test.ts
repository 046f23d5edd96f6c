import { afterEach, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { projectRoot } from '../../lib/paths.js';
import { NucleusCliClient } from '../../embedded/nucleus/cli-client.js';
import { Nucleus, type NucleusOptions } from '../../embedded/nucleus/nucleus.js';
import {
  RawClient,
  agentRecords,
  alive,
  header,
  removeRoot,
  rpcFrame,
  tempRoot,
  until,
  waitForRecord,
  writeAgentRecipe,
  writeRecipe,
} from '../helpers/nucleus.js';

/**
 * Issue 14's findings that live in the nucleus, each shown by the attack that broke it:
 * artefact URIs that climb out of the store (3), components left running after the nucleus is
 * killed (4), a subscriber that stops reading (5), unauthenticated connections holding memory and
 * sockets (6), oversized configuration and answers the CLI could not print (9), and the smaller
 * ones from 12 (a 2^31 ms deferral, cli_ipc_info's mode). The accessControl write (1) is refused
 * in test/nucleus/config.test.ts and checked against the real nucleus in test/nucleus-diff.
 */
const roots: string[] = [];
const nuclei: Nucleus[] = [];
const children: ChildProcess[] = [];

afterEach(async () => {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  for (const n of nuclei.splice(0)) await n.stop();
  for (const r of roots.splice(0)) await removeRoot(r);
});

async function setup(opts: Partial<NucleusOptions> = {}): Promise<{ n: Nucleus; root: string }> {
  const root = tempRoot('lnh-');
  roots.push(root);
  const n = new Nucleus({ root, mqttUrl: false, killGraceMs: 1000, ...opts });
  nuclei.push(n);
  await n.start();
  return { n, root };
}

/** The processes in the process group of `pid` (from /proc). */
function groupMembers(pid: number): { pid: number; args: string }[] {
  const pgrp = (p: number) => {
    const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]);
  };
  const target = pgrp(pid);
  const out: { pid: number; args: string }[] = [];
  for (const f of readdirSync('/proc')) {
    if (!/^\d+$/.test(f)) continue;
    try {
      if (pgrp(Number(f)) === target) out.push({ pid: Number(f), args: readFileSync(`/proc/${f}/cmdline`, 'utf8').replaceAll('\0', ' ') });
    } catch {
      /* gone */
    }
  }
  return out;
}

function runCli(args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const c = spawn(process.execPath, [join(projectRoot, 'bin', 'loupe.js'), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(c);
    let stdout = '';
    let stderr = '';
    c.stdout!.on('data', (b: Buffer) => (stdout += b.toString()));
    c.stderr!.on('data', (b: Buffer) => (stderr += b.toString()));
    c.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

/** A component that writes its SVCUID (for a hand-driven client) and its pid, then sleeps. */
function sleeper(name: string, accessControl: Record<string, unknown> = {}) {
  return {
    RecipeFormatVersion: '2020-01-25',
    ComponentName: name,
    ComponentVersion: '1.0.0',
    ComponentConfiguration: { DefaultConfiguration: { accessControl } },
    Manifests: [{ Platform: { os: 'linux' }, Lifecycle: { Run: 'echo "$SVCUID" > token; echo $$ > pid; exec sleep 600' } }],
  };
}

async function tokenOf(root: string, name: string): Promise<string> {
  const f = join(root, 'work', name, 'token');
  await until(() => existsSync(f) && readFileSync(f, 'utf8').trim().length > 0, 20_000, `${name} to write its token`);
  return readFileSync(f, 'utf8').trim();
}

async function connect(socketPath: string, token: string): Promise<RawClient> {
  const c = await RawClient.open(socketPath);
  c.connectMessage(token);
  const ack = await c.next(0);
  expect(header(ack, ':message-flags')).toBe(1);
  return c;
}

describe('nucleus hardening (issue 14)', () => {
  it('3: an artefact URI cannot write outside the component store, and ".." is not a component name', async () => {
    const { n, root } = await setup();
    const rdir = join(root, 'in', 'recipes');
    const adir = join(root, 'in', 'artifacts');
    // The encoded path would climb three folders up from the artefact folder: the bytes wait at
    // both places, so a nucleus that follows the path finds something to copy.
    mkdirSync(join(adir, 'trav.Comp', '1.0.0'), { recursive: true });
    writeFileSync(join(adir, 'trav.Comp', '1.0.0', 'evil.sh'), 'echo inside\n');
    writeFileSync(join(adir, 'evil.sh'), 'echo outside\n');
    writeRecipe(rdir, {
      RecipeFormatVersion: '2020-01-25',
      ComponentName: 'trav.Comp',
      ComponentVersion: '1.0.0',
      Manifests: [
        { Platform: { os: 'linux' }, Lifecycle: { Run: 'exit 0' }, Artifacts: [{ Uri: 's3://bucket/x%2F..%2F..%2F..%2Fevil.sh' }] },
      ],
    });
    const rec = await n.deploy({ recipeDir: rdir, artifactDir: adir, merge: { 'trav.Comp': '1.0.0' } });
    expect(rec.status, rec.failureCause).toBe('SUCCEEDED');
    expect(readFileSync(join(root, 'packages', 'artifacts', 'trav.Comp', '1.0.0', 'evil.sh'), 'utf8')).toBe('echo inside\n');
    const strays = readdirSync(join(root, 'packages', 'artifacts')).filter((f) => f !== 'trav.Comp');
    expect(strays).toEqual([]);
    expect(existsSync(join(root, 'packages', 'evil.sh'))).toBe(false);

    writeRecipe(join(root, 'in', 'dots'), { RecipeFormatVersion: '2020-01-25', ComponentName: '..', ComponentVersion: '1.0.0' });
    const bad = await n.deploy({ recipeDir: join(root, 'in', 'dots'), merge: { '..': '1.0.0' } });
    expect(bad.status).toBe('FAILED');
    expect(bad.failureCause).toMatch(/ComponentName: must be 1-128 characters .* \(not only dots\), got "\.\."/);
  });

  it('4: components die with the nucleus (kill -9), and a new nucleus reaps what survived', async () => {
    const dir = tempRoot('lnh-');
    roots.push(dir);
    const root = join(dir, 'gg');
    const rdir = join(dir, 'recipes');
    writeRecipe(rdir, sleeper('orph.Sleeper'));
    const startNucleus = async () => {
      const c = spawn(process.execPath, [join(projectRoot, 'bin', 'loupe.js'), 'nucleus', 'start', '--root', root, '--mqtt', 'none'], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      children.push(c);
      let out = '';
      c.stdout!.on('data', (b: Buffer) => (out += b.toString()));
      c.stderr!.on('data', (b: Buffer) => (out += b.toString()));
      await until(() => out.includes('"started":true'), 60_000, 'the nucleus to start');
      return c;
    };
    const deploySleeper = async () => {
      const client = await NucleusCliClient.connect(root);
      try {
        const id = await client.createLocalDeployment({
          recipeDirectoryPath: rdir,
          rootComponentVersionsToAdd: { 'orph.Sleeper': '1.0.0' },
        });
        expect((await client.waitForDeployment(id, { timeoutMs: 60_000 })).status).toBe('SUCCEEDED');
      } finally {
        await client.close();
      }
    };
    const pidFile = join(root, 'work', 'orph.Sleeper', 'pid');
    const readPid = async () => {
      await until(() => existsSync(pidFile) && readFileSync(pidFile, 'utf8').trim() !== '', 20_000, 'the component pid');
      return Number(readFileSync(pidFile, 'utf8'));
    };

    // kill -9 of the nucleus: its components go with it.
    let nucleus = await startNucleus();
    await deploySleeper();
    const first = await readPid();
    expect(alive(first)).toBe(true);
    nucleus.kill('SIGKILL');
    await until(() => !alive(first), 10_000, 'the component to die with the nucleus');

    // A survivor (its guard killed too, as by a kill -9 of everything at once) is reaped by the
    // next nucleus on the same root before it starts anything.
    nucleus = await startNucleus(); // restores orph.Sleeper
    await until(() => existsSync(pidFile) && Number(readFileSync(pidFile, 'utf8')) !== first, 20_000, 'the restored component');
    const second = await readPid();
    const members = groupMembers(second);
    const guard = members.find((m) => m.args.includes('read _ <&3'));
    expect(guard, JSON.stringify(members)).toBeDefined();
    process.kill(guard!.pid, 'SIGKILL');
    nucleus.kill('SIGKILL');
    await new Promise((r) => setTimeout(r, 1000));
    expect(alive(second)).toBe(true); // nothing left to stop it
    nucleus = await startNucleus();
    await until(() => !alive(second), 10_000, 'the survivor to be reaped');
    nucleus.kill('SIGTERM');
  });

  it('5: a subscriber that stops reading gets its stream ended at the queue limit; the nucleus stays bounded and publishers carry on', async () => {
    const limit = 2 * 1024 * 1024;
    const { n, root } = await setup({ ipc: { limits: { maxQueuedBytes: limit } } });
    const rdir = join(root, 'in');
    writeRecipe(
      rdir,
      sleeper('bp.Sub', { 'aws.greengrass.ipc.pubsub': { s: { operations: ['aws.greengrass#SubscribeToTopic'], resources: ['flood'] } } }),
    );
    writeRecipe(
      rdir,
      sleeper('bp.Pub', { 'aws.greengrass.ipc.pubsub': { p: { operations: ['aws.greengrass#PublishToTopic'], resources: ['flood'] } } }),
    );
    expect((await n.deploy({ recipeDir: rdir, merge: { 'bp.Sub': '1.0.0', 'bp.Pub': '1.0.0' } })).status).toBe('SUCCEEDED');
    const sub = await connect(n.socketPath, await tokenOf(root, 'bp.Sub'));
    sub.request(1, 'aws.greengrass#SubscribeToTopic', { topic: 'flood' });
    expect(header(await sub.next(1), 'service-model-type')).toBe('aws.greengrass#SubscribeToTopicResponse');
    sub.socket.pause(); // and never reads again (until the end)
    const pub = await connect(n.socketPath, await tokenOf(root, 'bp.Pub'));
    const chunk = Buffer.alloc(64 * 1024, 7).toString('base64');
    const total = 400; // ~34 MiB of events for the stalled subscriber
    for (let i = 0; i < total; i++)
      pub.request(i + 1, 'aws.greengrass#PublishToTopic', { topic: 'flood', publishMessage: { binaryMessage: { message: chunk } } });
    const last = await pub.next(total, 120_000);
    expect(header(last, 'service-model-type')).toBe('aws.greengrass#PublishToTopicResponse');
    expect(pub.messages.slice(1).every((m) => header(m, 'service-model-type') === 'aws.greengrass#PublishToTopicResponse')).toBe(true);
    const stats = n.ipcStats;
    expect(stats.slowStreamsClosed).toBe(1);
    expect(stats.peakQueuedBytes).toBeLessThanOrEqual(limit);
    // Once it reads again, the subscriber sees what was queued, then its stream's end.
    sub.socket.resume();
    await until(
      () => sub.messages.some((m) => header(m, ':stream-id') === 1 && (Number(header(m, ':message-flags')) & 2) === 2),
      30_000,
      'the end of the slow stream',
    );
    const events = sub.messages.filter((m) => header(m, 'service-model-type') === 'aws.greengrass#SubscriptionResponseMessage').length;
    expect(events).toBeGreaterThan(0);
    expect(events).toBeLessThan(total);
    sub.destroy();
    pub.destroy();
  }, 240_000);

  it('6: a Connect deadline, a small pre-Connect message limit, and caps on connections and streams', async () => {
    const { n, root } = await setup({ ipc: { limits: { connectTimeoutMs: 500, maxStreams: 3 }, maxConnections: 6 } });
    // Silent client: closed after the deadline.
    const silent = await RawClient.open(n.socketPath);
    await silent.waitClosed(10_000);
    // 100 KiB before Connect: closed at the prelude, nothing buffered.
    const big = await RawClient.open(n.socketPath);
    big.write(rpcFrame(4, 0, 0, { ':version': { type: 'string', value: '0.1.0' } }, JSON.stringify({ authToken: 'x'.repeat(100 * 1024) })));
    await big.waitClosed(5_000);
    // Connections beyond the cap are closed at once.
    writeRecipe(join(root, 'in'), sleeper('cap.Comp', { 'aws.greengrass.ipc.pubsub': { s: { operations: ['*'], resources: ['*'] } } }));
    expect((await n.deploy({ recipeDir: join(root, 'in'), merge: { 'cap.Comp': '1.0.0' } })).status).toBe('SUCCEEDED');
    const token = await tokenOf(root, 'cap.Comp');
    const open: RawClient[] = [];
    for (let i = 0; i < 6; i++) open.push(await connect(n.socketPath, token));
    const extra = await RawClient.open(n.socketPath);
    await extra.waitClosed(5_000);
    expect(n.ipcStats.connectionsRefused).toBeGreaterThanOrEqual(1);
    // Streams beyond the cap on one connection are refused with a ServiceError; the connection stays.
    const c = open[0]!;
    for (let i = 1; i <= 4; i++) c.request(i, 'aws.greengrass#SubscribeToTopic', { topic: `t/${i}` });
    await c.next(4);
    const refused = c.messages.find((m) => header(m, ':stream-id') === 4)!;
    expect(header(refused, ':message-type')).toBe(1);
    expect(header(refused, 'service-model-type')).toBe('aws.greengrass#ServiceError');
    expect(JSON.parse(Buffer.from(refused.body).toString()).message).toMatch(/too many open streams on this connection \(3\)/);
    c.request(5, 'aws.greengrass#PublishToTopic', { topic: 't/1', publishMessage: { jsonMessage: { message: {} } } });
    await until(() => c.messages.some((m) => header(m, ':stream-id') === 5), 5_000, 'the publish answer');
    expect(c.closed).toBe(false);
    for (const o of open) o.destroy();
  });

  it('9: oversized configuration fails the deployment; an answer too big for one message is an error the CLI prints', async () => {
    const { n, root } = await setup();
    const rdir = join(root, 'in');
    writeRecipe(rdir, sleeper('big.Comp'));
    const huge = await n.deploy({
      recipeDir: rdir,
      merge: { 'big.Comp': '1.0.0' },
      configurationUpdate: { 'big.Comp': { merge: { blob: 'x'.repeat(9 * 1024 * 1024) } } },
    });
    expect(huge.status).toBe('FAILED');
    expect(huge.detailedStatus).toBe('FAILED_NO_STATE_CHANGE');
    expect(huge.failureCause).toMatch(/big\.Comp: its configuration would be \d+ bytes of JSON; at most 8388608/);
    // Four components of 7 MiB each: every one fits, but ListComponents (all of them) does not.
    const names = ['big.A', 'big.B', 'big.C', 'big.D'];
    for (const name of names) writeRecipe(rdir, sleeper(name));
    const blob = 'y'.repeat(7 * 1024 * 1024);
    const rec = await n.deploy({
      recipeDir: rdir,
      merge: Object.fromEntries(names.map((x) => [x, '1.0.0'])),
      configurationUpdate: Object.fromEntries(names.map((x) => [x, { merge: { blob } }])),
    });
    expect(rec.status, rec.failureCause).toBe('SUCCEEDED');
    // (The CLI runs as another process; the nucleus is in this one, so it must not be blocked.)
    const r = await runCli(['nucleus', 'status', '--root', root]);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(
      /ListComponents failed \(ServiceError\): The response to aws\.greengrass#ListComponents would be \d+ bytes, over the 25165824-byte IPC message limit/,
    );
    expect(n.ipcStats.oversizeAnswers).toBeGreaterThanOrEqual(1);
    // And an error the nucleus answers at once reaches the CLI user in the nucleus's words.
    const notADir = join(root, 'in', 'recipe-file.json');
    writeFileSync(notADir, '{}');
    const d = await runCli(['nucleus', 'deploy', '--root', root, '--recipe-dir', notADir, '--merge', 'big.A=1.0.0']);
    expect(d.status).toBe(1);
    expect(d.stderr).toMatch(
      /CreateLocalDeployment failed \(InvalidRecipeDirectoryPathError\): recipeDirectoryPath ".*recipe-file\.json" is not an absolute path to a directory/,
    );
    expect(d.stderr).not.toMatch(/Check serviceError property/);
  }, 240_000);

  it('12: a 2^31 ms deferral waits instead of spinning, and cli_ipc_info is readable by the nucleus user only', async () => {
    const { n, root } = await setup();
    expect(statSync(join(root, 'cli_ipc_info')).mode & 0o777).toBe(0o600);
    expect(statSync(join(root, 'ipc.socket')).mode & 0o777).toBe(0o666);
    const rdir = join(root, 'in');
    writeAgentRecipe(rdir, { name: 'defer.Long', steps: [{ op: 'subscribeUpdates', deferTimes: 1000, recheckAfterMs: 2 ** 31 }] });
    expect((await n.deploy({ recipeDir: rdir, merge: { 'defer.Long': '1.0.0' } })).status).toBe('SUCCEEDED');
    await waitForRecord(root, 'defer.Long', (r) => r.op === 'done');
    writeRecipe(join(root, 'in2'), sleeper('defer.Other'));
    const { done } = n.submitDeployment({ recipeDir: join(root, 'in2'), merge: { 'defer.Other': '1.0.0' } });
    void done.catch(() => {});
    await waitForRecord(root, 'defer.Long', (r) => r.event === 'deferred');
    await new Promise((r) => setTimeout(r, 3000));
    // One pre-update event, one deferral: a timer overflowing to 1 ms would re-ask every millisecond.
    expect(agentRecords(root, 'defer.Long').filter((r) => r.event === 'componentUpdate' && r.preUpdateEvent).length).toBe(1);
    expect(agentRecords(root, 'defer.Long').filter((r) => r.event === 'deferred').length).toBe(1);
  });
});
