import { afterEach, describe, expect, it } from 'vitest';
import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { startBroker, type EmbeddedBroker } from '../../embedded/broker/broker.js';
import { Nucleus } from '../../embedded/nucleus/nucleus.js';
import { removeRoot, tempRoot, until, waitForRecord, writeAgentRecipe } from '../helpers/nucleus.js';

/**
 * The IoT Core bridge against the embedded broker: messages a component publishes while the
 * broker is away are spooled on disk, survive a nucleus restart, and arrive in order once the
 * broker is back; QoS 0 messages are dropped while offline, as Greengrass's spooler does.
 */
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe('embedded broker', () => {
  it('starts on a free port, carries messages, reports clients and stops cleanly', async () => {
    const b = await startBroker();
    expect(b.url).toMatch(/^mqtt:\/\/127\.0\.0\.1:\d+$/);
    const sub = await mqtt.connectAsync(b.url);
    const pub = await mqtt.connectAsync(b.url);
    const got: string[] = [];
    sub.on('message', (t, p) => got.push(`${t}=${p.toString()}`));
    await sub.subscribeAsync('a/#', { qos: 1 });
    await pub.publishAsync('a/b', 'x', { qos: 1 });
    await until(() => got.length === 1, 5000, 'delivery');
    expect(got).toEqual(['a/b=x']);
    expect(b.connectedClients()).toBe(2);
    await b.stop();
    await b.stop(); // idempotent
    await until(() => !pub.connected, 5000, 'clients to be disconnected');
    await sub.endAsync(true);
    await pub.endAsync(true);
    await expect(startBroker({ port: 70000 })).rejects.toThrow(/broker port: must be an integer 0\.\.65535/);
  });
});

describe('IoT Core bridge spooling', () => {
  it('spools QoS 1 on disk while the broker is away, across a nucleus restart, and flushes in order', async () => {
    let broker: EmbeddedBroker = await startBroker();
    const port = broker.port;
    const url = broker.url;
    const root = tempRoot('lnm-');
    cleanups.push(() => removeRoot(root));
    cleanups.push(() => broker.stop());
    const rdir = join(root, 'in');
    const payload = (s: string) => Buffer.from(s).toString('base64');
    writeAgentRecipe(rdir, {
      name: 'mq.Pub',
      accessControl: { 'aws.greengrass.ipc.mqttproxy': { p: { operations: ['*'], resources: ['line/#'] } } },
      steps: [
        { op: 'publishIot', topic: 'line/1', payload: payload('online'), qos: '1' },
        { op: 'waitFile', name: 'go' },
        { op: 'publishIot', topic: 'line/1', payload: payload('m1'), qos: '1' },
        { op: 'publishIot', topic: 'line/1', payload: payload('dropped'), qos: '0' },
        { op: 'publishIot', topic: 'line/1', payload: payload('m2'), qos: '1' },
        { op: 'publishIot', topic: 'line/1', payload: payload('m3'), qos: '1' },
      ],
    });
    let n = new Nucleus({ root, mqttUrl: url, thingName: 'line-1' });
    await n.start();
    cleanups.push(() => n.stop());
    const first: string[] = [];
    const watcher = await mqtt.connectAsync(url);
    watcher.on('message', (_t, p) => first.push(p.toString()));
    await watcher.subscribeAsync('line/#', { qos: 1 });
    expect((await n.deploy({ recipeDir: rdir, merge: { 'mq.Pub': '1.0.0' } })).status).toBe('SUCCEEDED');
    await until(() => first.includes('online'), 10_000, 'the online message');
    await watcher.endAsync(true);

    // Broker goes away; the component keeps publishing (its calls succeed: they are spooled).
    await broker.stop();
    await until(() => !n.status().mqttConnected, 10_000, 'the bridge to notice');
    writeFileSync(join(root, 'work', 'mq.Pub', 'go'), '');
    await waitForRecord(root, 'mq.Pub', (r) => r.op === 'done');
    expect(n.status().mqttSpooled).toBe(3);
    expect(readdirSync(join(root, 'mqtt-spool')).filter((f) => f.endsWith('.json'))).toHaveLength(3);

    // The nucleus restarts while the broker is still away: the spool is on disk.
    await n.stop();
    n = new Nucleus({ root, mqttUrl: url, thingName: 'line-1', restore: false });
    await n.start();
    expect(n.status().mqttSpooled).toBe(3);

    broker = await startBroker({ port });
    const later: string[] = [];
    const w2 = await mqtt.connectAsync(url, { clientId: 'cloud' });
    w2.on('message', (_t, p) => later.push(p.toString()));
    await w2.subscribeAsync('line/#', { qos: 1 });
    await until(() => later.length >= 3, 15_000, 'the spool to flush');
    expect(later).toEqual(['m1', 'm2', 'm3']);
    await until(() => readdirSync(join(root, 'mqtt-spool')).filter((f) => f.endsWith('.json')).length === 0, 5000, 'spool files to go');
    expect(n.status().mqttSpooled).toBe(0);
    await w2.endAsync(true);
  });
});
