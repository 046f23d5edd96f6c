import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { crc32 } from 'node:zlib';
import { join } from 'node:path';
import { Nucleus } from '../../embedded/nucleus/nucleus.js';
import { encodeMessage } from '../../embedded/nucleus/ipc/framing.js';
import {
  bodyJson,
  header,
  RawClient,
  removeRoot,
  rpcFrame,
  stepResult,
  tempRoot,
  until,
  waitForRecord,
  writeAgentRecipe,
  agentRecords,
} from '../helpers/nucleus.js';

/**
 * The event-stream RPC server at the byte level, with a hand-driven client: handshake, ping,
 * unary and streaming replies, modelled and unmodelled errors, protocol violations and broken
 * frames. A real component (the agent, subscribed to rob/t) runs through all of it and must not
 * notice: it stays connected and receives every message published in between.
 */
let root: string;
let nucleus: Nucleus;
let token: string;
let published = 0;

const T = 0x2; // TerminateStream

beforeAll(async () => {
  root = tempRoot('lnr-');
  nucleus = new Nucleus({ root, mqttUrl: false });
  await nucleus.start();
  const dir = join(root, 'recipes');
  writeAgentRecipe(dir, { name: 'rob.Sub', steps: [{ op: 'env' }, { op: 'subscribe', topic: 'rob/t' }] });
  const rec = await nucleus.deploy({ recipeDir: dir, merge: { 'rob.Sub': '1.0.0' } });
  expect(rec.status, rec.failureCause).toBe('SUCCEEDED');
  token = (await stepResult(root, 'rob.Sub', 'env')).result.SVCUID;
  await waitForRecord(root, 'rob.Sub', (r) => r.op === 'done');
});

afterAll(async () => {
  await nucleus?.stop();
  await removeRoot(root);
});

async function connected(): Promise<RawClient> {
  const c = await RawClient.open(nucleus.socketPath);
  c.connectMessage(token);
  const ack = await c.next(0);
  expect(header(ack, ':message-type')).toBe(5);
  expect(header(ack, ':message-flags')).toBe(1);
  return c;
}

/** Publish one message to rob/t from a fresh, well-behaved raw client. */
async function publishOk(seq: number): Promise<void> {
  const c = await connected();
  c.request(1, 'aws.greengrass#PublishToTopic', { topic: 'rob/t', publishMessage: { jsonMessage: { message: { seq } } } });
  const r = await c.next(1);
  expect(header(r, 'service-model-type')).toBe('aws.greengrass#PublishToTopicResponse');
  published++;
  c.destroy();
}

describe('IPC protocol and robustness', () => {
  it('handshakes, answers pings, and sends unary and streaming replies as the client expects', async () => {
    const c = await connected();
    c.write(rpcFrame(2, 0, 0, { ':ignored': { type: 'string', value: 'x' }, echo: { type: 'integer', value: 7 } }, 'ping-payload'));
    const pong = await c.next(1);
    expect(header(pong, ':message-type')).toBe(3);
    expect(header(pong, 'echo')).toBe(7);
    expect(pong!.headers[':ignored']).toBeUndefined();
    expect(Buffer.from(pong!.body).toString()).toBe('ping-payload');

    c.request(1, 'aws.greengrass#SubscribeToTopic', { topic: 'rob/raw' });
    const resp = await c.next(2);
    expect(header(resp, ':message-type')).toBe(0);
    expect(header(resp, ':message-flags')).toBe(0); // streaming: the stream stays open
    expect(header(resp, ':stream-id')).toBe(1);
    expect(header(resp, 'service-model-type')).toBe('aws.greengrass#SubscribeToTopicResponse');
    expect(header(resp, ':content-type')).toBe('application/json');
    expect(bodyJson(resp)).toEqual({});

    c.request(2, 'aws.greengrass#PublishToTopic', {
      topic: 'rob/raw',
      publishMessage: { binaryMessage: { message: Buffer.from('hi').toString('base64') } },
    });
    const [a, b] = [await c.next(3), await c.next(4)];
    const byStream = new Map([a, b].map((m) => [header(m, ':stream-id'), m]));
    const unary = byStream.get(2);
    expect(header(unary, ':message-flags')).toBe(T);
    expect(header(unary, 'service-model-type')).toBe('aws.greengrass#PublishToTopicResponse');
    const ev = byStream.get(1);
    expect(header(ev, 'service-model-type')).toBe('aws.greengrass#SubscriptionResponseMessage');
    expect(bodyJson(ev)).toEqual({ binaryMessage: { message: Buffer.from('hi').toString('base64'), context: { topic: 'rob/raw' } } });

    // Client closes the subscription (empty TerminateStream): no more events for it.
    c.write(rpcFrame(0, T, 1));
    c.request(3, 'aws.greengrass#PublishToTopic', { topic: 'rob/raw', publishMessage: { jsonMessage: { message: {} } } });
    const after = await c.next(5);
    expect(header(after, ':stream-id')).toBe(3);
    await new Promise((r) => setTimeout(r, 200));
    expect(c.messages).toHaveLength(6);
    c.destroy();
  });

  it('answers modelled errors, unsupported and unknown operations and bad request bodies on the stream only', async () => {
    const c = await connected();
    c.request(1, 'aws.greengrass#GetConfiguration', { keyPath: ['no', 'such'] });
    const nf = await c.next(1);
    expect(header(nf, ':message-type')).toBe(1);
    expect(header(nf, ':message-flags')).toBe(T);
    expect(header(nf, 'service-model-type')).toBe('aws.greengrass#ResourceNotFoundError');
    expect(bodyJson(nf)).toEqual({
      message: 'Key not found',
      _service: 'aws.greengrass#GreengrassCoreIPC',
      _message: 'Key not found',
      _errorCode: 'ResourceNotFoundError',
    });

    c.request(2, 'aws.greengrass#GetSecretValue', { secretId: 'x' });
    const unsupported = await c.next(2);
    expect(header(unsupported, 'service-model-type')).toBe('aws.greengrass#ServiceError');
    expect(bodyJson(unsupported).message).toBe('Operation aws.greengrass#GetSecretValue is not supported by Greengrass');

    c.request(3, 'aws.greengrass#NoSuchOperation', {});
    const unknown = await c.next(3);
    expect(header(unknown, ':message-type')).toBe(1);
    expect(header(unknown, ':message-flags')).toBe(T);
    expect(header(unknown, 'service-model-type')).toBeUndefined();
    expect(bodyJson(unknown)).toEqual({
      error: 'Unsupported Operation',
      message: 'aws.greengrass#NoSuchOperation is an unsupported operation.',
    });

    c.write(rpcFrame(0, 0, 4, { operation: { type: 'string', value: 'aws.greengrass#PublishToTopic' } }, '{not json'));
    const bad = await c.next(4);
    expect(header(bad, ':message-type')).toBe(1);
    expect(header(bad, ':content-type')).toBe('text/plain');
    expect(Buffer.from(bad!.body).toString()).toBe('InternalServerError');

    // The connection is still good.
    c.request(5, 'aws.greengrass#PublishToTopic', { topic: 'rob/t', publishMessage: { jsonMessage: { message: { seq: -1 } } } });
    published++;
    expect(header(await c.next(5), 'service-model-type')).toBe('aws.greengrass#PublishToTopicResponse');
    expect(c.closed).toBe(false);
    c.destroy();
  });

  it('rejects bad tokens and versions, and closes on protocol violations', async () => {
    const bad = await RawClient.open(nucleus.socketPath);
    bad.connectMessage('wrong-token');
    const ack = await bad.next(0);
    expect(header(ack, ':message-type')).toBe(5);
    expect(header(ack, ':message-flags')).toBe(0);
    await bad.waitClosed();

    const oldVersion = await RawClient.open(nucleus.socketPath);
    oldVersion.connectMessage(token, '0.0.1');
    expect(header(await oldVersion.next(0), ':message-flags')).toBe(0);
    await oldVersion.waitClosed();

    const early = await RawClient.open(nucleus.socketPath);
    early.request(1, 'aws.greengrass#PublishToTopic', {});
    const pe = await early.next(0);
    expect(header(pe, ':message-type')).toBe(6);
    expect(bodyJson(pe).message).toMatch(/before the connect handshake/);
    await early.waitClosed();

    const skip = await connected();
    skip.request(5, 'aws.greengrass#PublishToTopic', {});
    expect(header(await skip.next(1), ':message-type')).toBe(6);
    await skip.waitClosed();

    // a frame without :message-flags
    const missing = await connected();
    missing.write(
      encodeMessage({ ':message-type': { type: 'integer', value: 2 }, ':stream-id': { type: 'integer', value: 0 } }, new Uint8Array(0)),
    );
    const pm = await missing.next(1);
    expect(header(pm, ':message-type')).toBe(6);
    expect(bodyJson(pm).message).toMatch(/:message-flags/);
    await missing.waitClosed();
    await publishOk(1);
  });

  it('survives bad CRCs, truncated and oversize frames and abrupt disconnects without disturbing others', async () => {
    const before = nucleus.ipcConnections;
    // bad message CRC
    const crc = await connected();
    const f = Buffer.from(rpcFrame(2, 0, 0, {}, 'x'));
    f[f.length - 1] ^= 0xff;
    crc.write(f);
    await crc.waitClosed();
    await publishOk(2);

    // bad prelude CRC
    const pre = await connected();
    const g = Buffer.from(rpcFrame(2, 0, 0));
    g[8] ^= 0xff;
    pre.write(g);
    await pre.waitClosed();

    // oversize: a valid prelude announcing 25 MiB; the server must not wait for the body
    const big = await connected();
    const p = Buffer.alloc(12);
    p.writeUInt32BE(25 * 1024 * 1024, 0);
    p.writeUInt32BE(0, 4);
    p.writeUInt32BE(crc32(p.subarray(0, 8)), 8);
    big.write(p);
    await big.waitClosed(5000);
    await publishOk(3);

    // truncated: half a frame, then the client vanishes
    const trunc = await connected();
    const h = rpcFrame(
      0,
      0,
      1,
      { operation: { type: 'string', value: 'aws.greengrass#PublishToTopic' } },
      JSON.stringify({ topic: 'rob/t' }),
    );
    trunc.write(h.subarray(0, Math.floor(h.length / 2)));
    await new Promise((r) => setTimeout(r, 100));
    trunc.destroy();

    // garbage that is not event-stream at all
    const junk = await RawClient.open(nucleus.socketPath);
    junk.write(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
    await junk.waitClosed();

    // abrupt disconnect with a live subscription: the server drops it
    const sub = await connected();
    sub.request(1, 'aws.greengrass#SubscribeToTopic', { topic: 'rob/t' });
    await sub.next(1);
    sub.destroy();
    await publishOk(4);

    // a burst of connections that die mid-handshake
    for (let i = 0; i < 20; i++) {
      const x = await RawClient.open(nucleus.socketPath);
      x.write(rpcFrame(4, 0, 0).subarray(0, 7));
      x.destroy();
    }
    await publishOk(5);
    await until(() => nucleus.ipcConnections === before, 5000, 'dead connections to be dropped');

    // The real component never noticed: one connection, every message delivered.
    await until(
      () => agentRecords(root, 'rob.Sub').filter((r) => r.event === 'message').length >= published,
      10_000,
      'the agent to receive everything',
    );
    const recs = agentRecords(root, 'rob.Sub');
    expect(recs.filter((r) => r.op === 'connect')).toHaveLength(1);
    expect(recs.filter((r) => r.op === 'disconnection')).toHaveLength(0);
    expect(recs.filter((r) => r.event === 'message')).toHaveLength(published);
    expect(nucleus.status().components.find((c) => c.name === 'rob.Sub')?.state).toBe('RUNNING');
  });
});
