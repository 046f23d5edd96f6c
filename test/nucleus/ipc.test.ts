import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { Nucleus } from '../../embedded/nucleus/nucleus.js';
import {
  agentRecords,
  removeRoot,
  stepResult,
  tempRoot,
  until,
  waitForRecord,
  writeAgentRecipe,
  type AgentRecord,
} from '../helpers/nucleus.js';

/**
 * Real components (test/fixtures/nucleus/agent.mjs, using aws-iot-device-sdk-v2's
 * greengrasscoreipc client unchanged) under a real nucleus, exercising every IPC operation the
 * issue lists. Each test deploys its own components and removes them afterwards.
 */
const TES_CREDENTIALS = {
  accessKeyId: 'LOUPETESTTESKEY00000',
  secretAccessKey: 'tes-test-secret-0000000000',
  sessionToken: 'tes-test-session-token',
};
let root: string;
let nucleus: Nucleus;

beforeAll(async () => {
  root = tempRoot('lni-');
  // What the TES hands out is what the nucleus is given (on one machine: the object store's key pair).
  nucleus = new Nucleus({ root, thingName: 'ipc-thing', region: 'eu-west-1', credentials: TES_CREDENTIALS });
  await nucleus.start();
});

afterAll(async () => {
  await nucleus?.stop();
  await removeRoot(root);
});

async function deployAgents(...agents: Parameters<typeof writeAgentRecipe>[1][]): Promise<void> {
  const dir = join(root, `recipes-${Date.now()}`);
  for (const a of agents) writeAgentRecipe(dir, a);
  const rec = await nucleus.deploy({ recipeDir: dir, merge: Object.fromEntries(agents.map((a) => [a.name, a.version ?? '1.0.0'])) });
  expect(rec.status, rec.failureCause).toBe('SUCCEEDED');
}

async function removeAgents(...names: string[]): Promise<void> {
  const rec = await nucleus.deploy({ remove: names });
  expect(rec.status, rec.failureCause).toBe('SUCCEEDED');
}

const go = (name: string) => writeFileSync(join(root, 'work', name, 'go'), '');
const events = (name: string, pred: (r: AgentRecord) => boolean) => agentRecords(root, name).filter(pred);

describe('IPC with real components', () => {
  it('gives components the environment of a core device and vends TES credentials to the default chain', async () => {
    await deployAgents({
      name: 'ipc.Env',
      steps: [{ op: 'env' }, { op: 'tes' }],
      // The TES address is given only to components that wait for TES (test/nucleus/tes-address.test.ts).
      dependencies: { 'aws.greengrass.TokenExchangeService': { VersionRequirement: '^2.0.0', DependencyType: 'HARD' } },
      setenv: { MY_SETENV: '{iot:thingName}@{kernel:rootPath}' },
    });
    const env = (await stepResult(root, 'ipc.Env', 'env')).result;
    expect(env.SVCUID).toMatch(/^[A-Z0-9]{16}$/); // as Greengrass makes them
    expect(env.AWS_CONTAINER_AUTHORIZATION_TOKEN).toBe(env.SVCUID);
    expect(env.AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH_FOR_COMPONENT).toBe(nucleus.socketPath);
    expect(env.AWS_IOT_THING_NAME).toBe('ipc-thing');
    expect(env.AWS_REGION).toBe('eu-west-1');
    expect(env.AWS_DEFAULT_REGION).toBe('eu-west-1');
    expect(env.AWS_CONTAINER_CREDENTIALS_FULL_URI).toBe(nucleus.tesUri);
    expect(env.AWS_CONTAINER_CREDENTIALS_FULL_URI).toMatch(/^http:\/\/localhost:\d+\/2016-11-01\/credentialprovider\/$/);
    expect(env.GG_ROOT_CA_PATH).toBe(''); // no CA configured, as the real nucleus says
    expect(env.MY_SETENV).toBe(`ipc-thing@${root}`);
    expect(env.cwd).toBe(join(root, 'work', 'ipc.Env'));
    const tes = await stepResult(root, 'ipc.Env', 'tes');
    expect(tes.ok, JSON.stringify(tes.error)).toBe(true);
    expect(tes.result).toMatchObject({
      accessKeyId: TES_CREDENTIALS.accessKeyId,
      hasSecret: true,
      sessionToken: TES_CREDENTIALS.sessionToken,
    });
    expect(Date.parse(tes.result.expiration)).toBeGreaterThan(Date.now());
    // TES itself: exact path, token check, method check.
    const uri = nucleus.tesUri;
    expect((await fetch(uri, { headers: { authorization: env.SVCUID } })).status).toBe(200);
    expect((await fetch(uri)).status).toBe(403);
    expect((await fetch(uri, { headers: { authorization: 'not-a-token' } })).status).toBe(403);
    expect((await fetch(uri.replace('credentialprovider/', 'other'), { headers: { authorization: env.SVCUID } })).status).toBe(404);
    expect((await fetch(uri + 'more', { headers: { authorization: env.SVCUID } })).status).toBe(400);
    expect((await fetch(uri, { method: 'POST', headers: { authorization: env.SVCUID } })).status).toBe(405);
    await removeAgents('ipc.Env');
  });

  it('publishes and subscribes between components: JSON and binary, + and # filters, receive modes', async () => {
    await deployAgents(
      {
        name: 'ipc.Sub',
        steps: [
          { op: 'subscribe', topic: 'loupe/frames', as: 'frames' },
          { op: 'subscribe', topic: 'loupe/+/results', as: 'plus' },
          { op: 'subscribe', topic: 'loupe/#', as: 'hash' }, // wildcard: default mode is "from others"
          { op: 'subscribe', topic: 'loupe/self', as: 'self' }, // exact: default mode is "all"
          { op: 'subscribe', topic: 'loupe/self2', as: 'self2', receiveMode: 'RECEIVE_MESSAGES_FROM_OTHERS' },
          { op: 'publish', topic: 'loupe/self', json: { from: 'sub' } },
          { op: 'publish', topic: 'loupe/self2', json: { from: 'sub' } },
        ],
      },
      {
        name: 'ipc.Pub',
        steps: [
          { op: 'waitFile', name: 'go' },
          { op: 'publish', topic: 'loupe/frames', json: { seq: 1, nested: { a: [1, 2] } } },
          { op: 'publish', topic: 'loupe/frames', binary: Buffer.from('raw bytes \u0000\u00ff').toString('base64') },
          { op: 'publish', topic: 'loupe/cam1/results', json: { seq: 2 } },
          { op: 'publish', topic: 'loupe/cam1/deep/results', json: { seq: 3 } },
          { op: 'publish', topic: 'loupe/self', json: { from: 'pub' } },
        ],
      },
    );
    await waitForRecord(root, 'ipc.Sub', (r) => r.op === 'done');
    go('ipc.Pub');
    await waitForRecord(root, 'ipc.Pub', (r) => r.op === 'done');
    await waitForRecord(root, 'ipc.Sub', (r) => r.event === 'message' && r.sub === 'self' && (r.json as { from?: string })?.from === 'pub');
    const msgs = events('ipc.Sub', (r) => r.event === 'message');
    const by = (sub: string) => msgs.filter((m) => m.sub === sub).map((m) => m.json ?? m.binary);
    expect(by('frames')).toEqual([{ seq: 1, nested: { a: [1, 2] } }, 'raw bytes \u0000\u00ff']);
    expect(msgs.find((m) => m.sub === 'frames')!.topic).toBe('loupe/frames');
    expect(by('plus')).toEqual([{ seq: 2 }]);
    expect(by('hash')).toEqual([{ seq: 1, nested: { a: [1, 2] } }, 'raw bytes \u0000\u00ff', { seq: 2 }, { seq: 3 }, { from: 'pub' }]);
    expect(by('self')).toEqual([{ from: 'sub' }, { from: 'pub' }]);
    expect(by('self2')).toEqual([]);
    await removeAgents('ipc.Sub', 'ipc.Pub');
  });

  it('denies topics outside the policy with UnauthorizedError and the real message', async () => {
    await deployAgents({
      name: 'ipc.Narrow',
      accessControl: {
        'aws.greengrass.ipc.pubsub': { 'narrow:1': { operations: ['aws.greengrass#PublishToTopic'], resources: ['allowed/*'] } },
        'aws.greengrass.ipc.mqttproxy': { 'narrow:2': { operations: ['aws.greengrass#PublishToIoTCore'], resources: ['up/+/data'] } },
      },
      steps: [
        { op: 'publish', topic: 'allowed/x', json: {} },
        { op: 'publish', topic: 'forbidden/x', json: {} },
        { op: 'subscribe', topic: 'allowed/x' },
        { op: 'publishIot', topic: 'up/ipc-thing/data', payload: 'ok' },
        { op: 'publishIot', topic: 'down/ipc-thing/data', payload: 'no' },
        { op: 'publish', topic: 'allowed/#', json: {} },
      ],
    });
    await waitForRecord(root, 'ipc.Narrow', (r) => r.op === 'done');
    const recs = agentRecords(root, 'ipc.Narrow').filter((r) => r.step !== undefined);
    expect(recs.map((r) => r.ok)).toEqual([true, false, false, true, false, false]);
    expect(recs[1]!.error.serviceError).toMatchObject({
      _errorCode: 'UnauthorizedError',
      message:
        'Principal ipc.Narrow is not authorized to perform aws.greengrass.ipc.pubsub:aws.greengrass#PublishToTopic on resource forbidden/x',
    });
    expect(recs[2]!.error.serviceError.message).toBe(
      'Principal ipc.Narrow is not authorized to perform aws.greengrass.ipc.pubsub:aws.greengrass#SubscribeToTopic on resource allowed/x',
    );
    // The MQTT proxy's denial names nothing, as the real MqttProxyIPCAgent's.
    expect(recs[4]!.error.serviceError.message).toBe('Not Authorized');
    // A wildcard publish topic passes the glob policy but is invalid: InvalidArgumentsError, which
    // PublishToTopic does not model, so the client reports the unexpected shape (as with Greengrass).
    expect(recs[5]!.error.description).toMatch(/Unexpected response shape received: 'aws.greengrass#InvalidArgumentsError'/);
    await removeAgents('ipc.Narrow');
  });

  it('rejects a connection with a bad SVCUID', async () => {
    await deployAgents({
      name: 'ipc.BadToken',
      steps: [],
      setenv: { SVCUID: 'definitely-not-a-token' },
      lifecycle: { Run: `node ${join(process.cwd(), 'test/fixtures/nucleus/agent.mjs')}; sleep 600` },
    });
    const r = await waitForRecord(root, 'ipc.BadToken', (x) => x.op === 'connect');
    expect(r.ok).toBe(false);
    expect(r.error.description).toMatch(/invalid connack/);
    await removeAgents('ipc.BadToken');
  });

  it('reads, updates and watches configuration', async () => {
    await deployAgents(
      { name: 'ipc.Peer', steps: [], config: { shared: { url: 'http://peer' } } },
      {
        name: 'ipc.Config',
        config: { fps: 5, roi: { x: 1, y: 2 } },
        steps: [
          { op: 'subscribeConfig', keyPath: ['roi'] },
          { op: 'getConfig', keyPath: ['fps'] },
          { op: 'getConfig', keyPath: ['roi'] },
          { op: 'getConfig', keyPath: [] },
          { op: 'getConfig', keyPath: ['shared', 'url'], componentName: 'ipc.Peer' },
          { op: 'getConfig', keyPath: ['nope'] },
          // IPC timestamps count in whole seconds and the deployment stamped roi in milliseconds:
          // an update in the deployment's own second would be older than roi (as on the real nucleus)
          { op: 'sleep', ms: 1100 },
          { op: 'updateConfig', keyPath: ['roi'], value: { x: 42 } },
          { op: 'getConfig', keyPath: ['roi'] },
          { op: 'updateConfig', keyPath: ['roi'], value: { x: 7 }, timestamp: 1000 },
          { op: 'updateConfig', keyPath: [], value: { fps: 6 } },
        ],
      },
    );
    await waitForRecord(root, 'ipc.Config', (r) => r.op === 'done');
    const recs = agentRecords(root, 'ipc.Config').filter((r) => r.step !== undefined);
    expect(recs[1]!.result).toEqual({ componentName: 'ipc.Config', value: { fps: 5 } });
    expect(recs[2]!.result.value).toEqual({ x: 1, y: 2 });
    expect(recs[3]!.result.value).toMatchObject({ fps: 5, roi: { x: 1, y: 2 }, accessControl: expect.any(Object) });
    expect(recs[4]!.result).toEqual({ componentName: 'ipc.Peer', value: { url: 'http://peer' } });
    expect(recs[5]!.ok).toBe(false);
    expect(recs[5]!.error.serviceError).toMatchObject({ _errorCode: 'ResourceNotFoundError', message: 'Key not found' });
    expect(recs[7]!.ok).toBe(true);
    expect(recs[8]!.result.value).toEqual({ x: 42, y: 2 });
    expect(recs[9]!.ok).toBe(false);
    expect(recs[9]!.error.serviceError).toMatchObject({ _errorCode: 'FailedUpdateConditionCheckError' });
    expect(recs[10]!.ok).toBe(true);
    await waitForRecord(root, 'ipc.Config', (r) => r.event === 'configUpdate');
    // Only the roi subscription's changes arrive (not fps).
    expect(events('ipc.Config', (r) => r.event === 'configUpdate').map((r) => r.keyPath)).toEqual([['roi', 'x']]);
    expect(nucleus.configuration('ipc.Config')).toMatchObject({ fps: 6, roi: { x: 42, y: 2 } });
    // A deployment's configuration merge reaches the running component as events, without a restart.
    const before = agentRecords(root, 'ipc.Config').filter((r) => r.op === 'connect').length;
    const rec = await nucleus.deploy({ configurationUpdate: { 'ipc.Config': { merge: { roi: { y: 9 } } } } });
    expect(rec.status).toBe('SUCCEEDED');
    await waitForRecord(root, 'ipc.Config', (r) => r.event === 'configUpdate' && JSON.stringify(r.keyPath) === '["roi","y"]');
    expect(agentRecords(root, 'ipc.Config').filter((r) => r.op === 'connect')).toHaveLength(before);
    await removeAgents('ipc.Config', 'ipc.Peer');
  });

  it('reports state, restarts an errored component, and answers component details with CLI policy only', async () => {
    await deployAgents(
      {
        name: 'ipc.State',
        steps: [
          { op: 'updateState', state: 'RUNNING' },
          { op: 'waitFile', name: 'go' },
          { op: 'updateState', state: 'ERRORED' },
        ],
      },
      {
        name: 'ipc.Inspector',
        // The CLI operations exist for components only with the aws.greengrass.Cli component.
        dependencies: { 'aws.greengrass.Cli': { DependencyType: 'SOFT' } },
        accessControl: {
          'aws.greengrass.Cli': {
            'insp:1': { operations: ['aws.greengrass#GetComponentDetails', 'aws.greengrass#ListComponents'], resources: ['*'] },
          },
        },
        steps: [{ op: 'getDetails', name: 'ipc.State' }, { op: 'getDetails', name: 'no.Such' }, { op: 'listComponents' }],
      },
      { name: 'ipc.Nosy', steps: [{ op: 'getDetails', name: 'ipc.State' }] },
    );
    const details = await stepResult(root, 'ipc.Inspector', 'getDetails');
    expect(details.result.componentDetails).toMatchObject({ componentName: 'ipc.State', version: '1.0.0', state: 'RUNNING' });
    const recs = agentRecords(root, 'ipc.Inspector').filter((r) => r.step !== undefined);
    await waitForRecord(root, 'ipc.Inspector', (r) => r.op === 'done');
    expect(agentRecords(root, 'ipc.Inspector').find((r) => r.step === 1)!.error.serviceError).toMatchObject({
      _errorCode: 'ResourceNotFoundError',
    });
    const list = agentRecords(root, 'ipc.Inspector').find((r) => r.step === 2)!.result.components as { componentName: string }[];
    expect(list.map((c) => c.componentName)).toEqual(expect.arrayContaining(['ipc.State', 'ipc.Inspector', 'ipc.Nosy']));
    void recs;
    const nosy = await stepResult(root, 'ipc.Nosy', 'getDetails');
    expect(nosy.ok).toBe(false);
    // UnauthorizedError is not in GetComponentDetails' error list: the client reports the shape.
    expect(nosy.error.description).toMatch(/Unexpected response shape received: 'aws.greengrass#UnauthorizedError'/);

    // UpdateState RUNNING while RUNNING is not a valid report (ignored); ERRORED restarts the component.
    // The restarted agent runs its steps again: take the go file away so it waits this time.
    const seen: string[] = [];
    const onState = (name: string, s: string) => {
      if (name !== 'ipc.State') return;
      seen.push(s);
      if (s === 'ERRORED') rmSync(join(root, 'work', 'ipc.State', 'go'), { force: true });
    };
    nucleus.on('state', onState);
    go('ipc.State');
    await until(() => seen.includes('ERRORED'), 30_000, 'ipc.State to report ERRORED');
    await nucleus.waitForState('ipc.State', 'RUNNING', 30_000);
    await waitForRecord(
      root,
      'ipc.State',
      (r) => r.op === 'connect' && agentRecords(root, 'ipc.State').filter((x) => x.op === 'connect').length === 2,
    );
    nucleus.off('state', onState);
    expect(seen.slice(0, 5)).toEqual(['ERRORED', 'STOPPING', 'INSTALLED', 'STARTING', 'RUNNING']);
    await removeAgents('ipc.State', 'ipc.Inspector', 'ipc.Nosy');
  });

  it('bridges PublishToIoTCore / SubscribeToIoTCore to the MQTT broker', async () => {
    const ext = await mqtt.connectAsync(nucleus.mqttUrl!, { clientId: 'cloud-side' });
    const fromDevice: { topic: string; payload: string }[] = [];
    ext.on('message', (topic, payload) => fromDevice.push({ topic, payload: payload.toString() }));
    await ext.subscribeAsync('factory/#', { qos: 1 });
    await deployAgents({
      name: 'ipc.Iot',
      accessControl: { 'aws.greengrass.ipc.mqttproxy': { 'iot:1': { operations: ['*'], resources: ['factory/#', 'commands/ipc-thing'] } } },
      steps: [
        { op: 'subscribeIot', topic: 'commands/ipc-thing', qos: '1' },
        { op: 'publishIot', topic: 'factory/ipc-thing/results', payload: Buffer.from('{"defects":2}').toString('base64'), qos: '1' },
        { op: 'publishIot', topic: 'factory/ipc-thing/heartbeat', payload: Buffer.from('hb').toString('base64'), qos: '0' },
      ],
    });
    await waitForRecord(root, 'ipc.Iot', (r) => r.op === 'done');
    const ok = agentRecords(root, 'ipc.Iot').filter((r) => r.step !== undefined);
    expect(
      ok.every((r) => r.ok),
      JSON.stringify(ok),
    ).toBe(true);
    const deadline = Date.now() + 10_000;
    while (fromDevice.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(fromDevice).toEqual(
      expect.arrayContaining([
        { topic: 'factory/ipc-thing/results', payload: '{"defects":2}' },
        { topic: 'factory/ipc-thing/heartbeat', payload: 'hb' },
      ]),
    );
    await ext.publishAsync('commands/ipc-thing', 'reload', { qos: 1 });
    const got = await waitForRecord(root, 'ipc.Iot', (r) => r.event === 'iotMessage');
    expect(got).toMatchObject({ topic: 'commands/ipc-thing', payload: 'reload' });
    await ext.endAsync();
    await removeAgents('ipc.Iot');
  });
});
