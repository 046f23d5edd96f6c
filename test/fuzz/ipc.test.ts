import fc from 'fast-check';
import { existsSync, readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FrameReader, FramingError, type Message, type MessageHeaders } from '../../embedded/nucleus/ipc/framing.js';
import { SERVICE_MODEL } from '../../embedded/nucleus/ipc/operations.js';
import { MessageFlags, MessageType } from '../../embedded/nucleus/ipc/rpc.js';
import { Nucleus } from '../../embedded/nucleus/nucleus.js';
import { PUBSUB_ALL, removeRoot, rpcFrame, tempRoot, until, writeRecipe } from '../helpers/nucleus.js';
import { FUZZ_SECONDS, FuzzStats, fuzz, fuzzAsync, mutated } from './harness.js';

/**
 * Fuzz targets: the nucleus's IPC frame reader (embedded/nucleus/ipc/framing.ts) and its RPC
 * state machine (rpc.ts) behind the real IPC server of a running nucleus, on its Unix socket.
 *
 * Frame reader: byte streams made of valid event-stream messages, mutated, cut into random
 * chunks. Each feed returns whole messages or throws a FramingError (the connection's clear
 * error); unmutated streams decode to exactly the messages sent, wherever they are cut; what the
 * reader buffers never exceeds its message limit.
 *
 * RPC: sessions of messages (Connect with the right or a wrong token and version, operations of
 * the GreengrassCoreIPC model with plausible and hostile bodies, pings, terminations, stream ids
 * in and out of order), often byte-mutated, written to a fresh connection which is then
 * half-closed. Properties: the nucleus answers with well-formed frames and closes the connection
 * in bounded time; nothing but ConnectAck/ProtocolError is ever sent before an accepted
 * ConnectAck, and a ConnectAck is accepted only for a session whose first message is a Connect
 * carrying the component's token; a well-behaved client is still served; connections do not
 * accumulate; heap stays bounded.
 */
const str = (value: string) => ({ type: 'string' as const, value });
const int = (value: number) => ({ type: 'integer' as const, value });

const OPERATIONS = [...SERVICE_MODEL.keys()];
const PLAUSIBLE_OPS = [
  'PublishToTopic',
  'SubscribeToTopic',
  'GetConfiguration',
  'UpdateConfiguration',
  'UpdateState',
  'DeferComponentUpdate',
  'SubscribeToConfigurationUpdate',
  'ListComponents',
  'StopComponent',
].map((o) => `aws.greengrass#${o}`);

// --- frame reader ------------------------------------------------------------------------------

const headerValue = fc.oneof(
  fc.string({ maxLength: 40 }).map(str),
  fc.integer().map(int),
  fc.boolean().map((value) => ({ type: 'boolean' as const, value })),
  fc.integer({ min: -128, max: 127 }).map((value) => ({ type: 'byte' as const, value })),
  fc.integer({ min: -32768, max: 32767 }).map((value) => ({ type: 'short' as const, value })),
  fc.uint8Array({ maxLength: 40 }).map((value) => ({ type: 'binary' as const, value })),
);
const headerName = fc.oneof(
  fc.constantFrom(':message-type', ':message-flags', ':stream-id', 'operation', ':content-type', 'service-model-type', ':version'),
  fc.string({ minLength: 1, maxLength: 20 }),
);
const anyMessage = fc.record({
  headers: fc.dictionary(headerName, headerValue, { maxKeys: 6 }),
  body: fc.uint8Array({ maxLength: 300 }),
});
/** Random message sequences, encoded: what a reader sees on a socket. */
const messageStreams = fc.array(anyMessage, { minLength: 1, maxLength: 5 });

function encodeAll(msgs: { headers: MessageHeaders; body: Uint8Array }[]): Buffer {
  // rpcFrame adds the three RPC headers; the reader does not care, and a fixed encoder keeps
  // the property about byte-exact round trips simple.
  return Buffer.concat(msgs.map((m) => rpcFrame(0, 0, 0, m.headers, m.body)));
}

/** Seeds for byte mutation: real client traffic. */
function sessionSeeds(token: string): Uint8Array[] {
  const connectMsg = rpcFrame(MessageType.Connect, 0, 0, { ':version': str('0.1.0') }, JSON.stringify({ authToken: token }));
  return [
    Buffer.concat([
      connectMsg,
      rpcFrame(
        0,
        0,
        1,
        { operation: str('aws.greengrass#PublishToTopic') },
        JSON.stringify({ topic: 'fz/a', publishMessage: { jsonMessage: { message: { n: 1 } } } }),
      ),
    ]),
    Buffer.concat([
      connectMsg,
      rpcFrame(0, 0, 1, { operation: str('aws.greengrass#SubscribeToTopic') }, JSON.stringify({ topic: 'fz/#' })),
      rpcFrame(0, MessageFlags.TerminateStream, 1),
    ]),
    Buffer.concat([
      connectMsg,
      rpcFrame(MessageType.Ping, 0, 0, { note: str('p') }, 'ping'),
      rpcFrame(0, 0, 1, { operation: str('aws.greengrass#GetConfiguration') }, JSON.stringify({ keyPath: ['a'] })),
    ]),
    Buffer.concat([
      connectMsg,
      rpcFrame(
        0,
        0,
        1,
        { operation: str('aws.greengrass#UpdateConfiguration') },
        JSON.stringify({ keyPath: ['fz'], valueToMerge: { x: 1 }, timestamp: 1 }),
      ),
      rpcFrame(0, 0, 2, { operation: str('aws.greengrass#UpdateState') }, JSON.stringify({ state: 'RUNNING' })),
    ]),
  ];
}

describe('fuzz: IPC frame reader', () => {
  it(
    'whole messages or a FramingError, wherever the stream is cut; unmutated streams round-trip; buffering stays under the limit',
    () => {
      const seeds = sessionSeeds('ABCDEFGHIJKLMNOP').concat([encodeAll([{ headers: { a: str('b') }, body: new Uint8Array(64) }])]);
      const input = fc.record({
        stream: fc.oneof(
          { weight: 2, arbitrary: messageStreams.map((m) => ({ bytes: new Uint8Array(encodeAll(m)), intact: m.length })) },
          { weight: 3, arbitrary: mutated(seeds).map((bytes) => ({ bytes, intact: -1 })) },
          { weight: 1, arbitrary: fc.uint8Array({ maxLength: 200 }).map((bytes) => ({ bytes, intact: -1 })) },
        ),
        cuts: fc.array(fc.nat(), { maxLength: 8 }),
        limit: fc.constantFrom(16 * 1024, 512, 24 * 1024 * 1024),
      });
      const r = fuzz('ipc-frame-reader', input, ({ stream, cuts, limit }, stats) => {
        const bytes = Buffer.from(stream.bytes);
        const at = [...new Set(cuts.map((c) => (bytes.length ? c % bytes.length : 0)))].sort((a, b) => a - b);
        const reader = new FrameReader();
        reader.maxMessageSize = limit;
        const got: Message[] = [];
        let prev = 0;
        stats.iterations++;
        const t0 = performance.now();
        try {
          for (const cut of [...at, bytes.length]) {
            got.push(...reader.feed(bytes.subarray(prev, cut)));
            prev = cut;
            // The reader holds at most one incomplete message, and never more than its limit.
            const buffered = (reader as unknown as { buffered: number }).buffered;
            if (buffered > Math.max(limit, 12)) throw new Error(`reader buffers ${buffered} bytes over its ${limit}-byte limit`);
          }
          stats.note('messages', true);
        } catch (e) {
          if (!(e instanceof FramingError))
            throw new Error(`frame reader crashed with ${(e as Error).name}: ${(e as Error).message}`, { cause: e });
          if (stream.intact > 0 && limit >= bytes.length) throw new Error(`a valid stream was refused: ${e.message}`, { cause: e });
          stats.note('FramingError', false);
        }
        stats.maxCallMs = Math.max(stats.maxCallMs, performance.now() - t0);
        if (stream.intact > 0 && limit >= bytes.length && got.length !== stream.intact)
          throw new Error(`${stream.intact} messages sent, ${got.length} read`);
        if (stream.intact > 0 && limit >= bytes.length) {
          // byte-exact: re-encoding what was read gives the stream back
          const again = Buffer.concat(got.map((m) => rpcFrame(0, 0, 0, m.headers, m.body)));
          if (!again.equals(bytes)) throw new Error('decoded messages differ from the ones sent');
        }
      });
      expect(r.iterations).toBeGreaterThanOrEqual(20); // the budget is time: a loaded machine runs fewer
      expect(r.refused).toBeGreaterThan(0);
      expect(r.accepted).toBeGreaterThan(0);
    },
    FUZZ_SECONDS * 1000 + 60_000,
  );
});

// --- RPC state machine behind a running nucleus -------------------------------------------------

let root: string;
let nucleus: Nucleus;
let token: string;

beforeAll(async () => {
  root = tempRoot('lnfz-');
  // A short Connect deadline: a mutated session that never completes a Connect is closed by the
  // nucleus itself, not by the test.
  nucleus = new Nucleus({ root, mqttUrl: false, killGraceMs: 1000, ipc: { limits: { connectTimeoutMs: 3000 } } });
  await nucleus.start();
  writeRecipe(join(root, 'in'), {
    RecipeFormatVersion: '2020-01-25',
    ComponentName: 'fz.Comp',
    ComponentVersion: '1.0.0',
    ComponentConfiguration: { DefaultConfiguration: { accessControl: PUBSUB_ALL, a: { b: 1 } } },
    Manifests: [{ Platform: { os: 'linux' }, Lifecycle: { Run: 'echo "$SVCUID" > token; exec sleep 600' } }],
  });
  const rec = await nucleus.deploy({ recipeDir: join(root, 'in'), merge: { 'fz.Comp': '1.0.0' } });
  if (rec.status !== 'SUCCEEDED') throw new Error(`fuzz component deployment: ${rec.status} ${rec.failureCause}`);
  const f = join(root, 'work', 'fz.Comp', 'token');
  await until(() => existsSync(f) && readFileSync(f, 'utf8').trim().length > 0, 30_000, 'the component token');
  token = readFileSync(f, 'utf8').trim();
}, 120_000);

afterAll(async () => {
  await nucleus?.stop();
  if (root) await removeRoot(root);
});

interface Reply {
  frames: Message[];
  /** The reply bytes did not parse as event-stream frames. */
  framingError?: string;
  closed: boolean;
}

/** Write `bytes` in `chunks` pieces on a new connection, half-close it, collect what comes back until the nucleus closes. */
function session(bytes: Buffer, cuts: number[], timeoutMs: number): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const s = connect(nucleus.socketPath);
    const reader = new FrameReader();
    const reply: Reply = { frames: [], closed: false };
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`the nucleus did not close a half-closed connection within ${timeoutMs} ms (${reply.frames.length} frames back)`));
    }, timeoutMs);
    s.on('data', (c: Buffer) => {
      if (reply.framingError) return;
      try {
        reply.frames.push(...reader.feed(c));
      } catch (e) {
        reply.framingError = (e as Error).message;
      }
    });
    s.on('error', () => {}); // EPIPE/ECONNRESET after the nucleus closed on a violation
    s.on('close', () => {
      clearTimeout(timer);
      reply.closed = true;
      resolve(reply);
    });
    s.on('connect', () => {
      let prev = 0;
      for (const cut of [...cuts, bytes.length]) {
        if (cut > prev) s.write(bytes.subarray(prev, cut));
        prev = Math.max(prev, cut);
      }
      s.end();
    });
  });
}

/** Whether a session's first message is a Connect the nucleus should accept. */
function acceptableConnect(bytes: Buffer): boolean {
  try {
    const first = new FrameReader().feed(bytes.subarray(0, Math.min(bytes.length, 16 * 1024)))[0];
    if (!first) return false;
    const h = first.headers;
    if (h[':message-type']?.type !== 'integer' || h[':message-type'].value !== MessageType.Connect) return false;
    if (h[':stream-id']?.type !== 'integer' || h[':stream-id'].value !== 0) return false;
    if (h[':message-flags']?.type !== 'integer') return false;
    if (h[':version']?.type !== 'string' || h[':version'].value !== '0.1.0') return false;
    return (JSON.parse(Buffer.from(first.body).toString('utf8')) as { authToken?: unknown })?.authToken === token;
  } catch {
    return false;
  }
}

const jsonBody = fc
  .oneof(
    {
      weight: 4,
      arbitrary: fc.record(
        {
          topic: fc.oneof(fc.constantFrom('fz/a', 'fz/#', '#', '+/+', '', '$aws/x'), fc.string({ maxLength: 20 })),
          publishMessage: fc.oneof(
            fc.record({ jsonMessage: fc.record({ message: fc.jsonValue({ maxDepth: 3 }) }) }),
            fc.record({ binaryMessage: fc.record({ message: fc.oneof(fc.base64String({ maxLength: 40 }), fc.anything()) }) }),
            fc.anything(),
          ),
        },
        { requiredKeys: [] },
      ),
    },
    {
      weight: 3,
      arbitrary: fc.record(
        {
          keyPath: fc.oneof(
            fc.array(fc.oneof(fc.constantFrom('a', 'b', 'accessControl', '__proto__', ''), fc.string({ maxLength: 8 })), { maxLength: 4 }),
            fc.anything(),
          ),
          valueToMerge: fc.oneof(fc.jsonValue({ maxDepth: 3 }), fc.constant({ accessControl: PUBSUB_ALL })),
          timestamp: fc.oneof(fc.integer(), fc.double(), fc.anything()),
          componentName: fc.oneof(fc.constantFrom('fz.Comp', 'aws.greengrass.Nucleus', 'main'), fc.string({ maxLength: 8 })),
          state: fc.constantFrom('RUNNING', 'ERRORED', 'BROKEN', ''),
          recheckAfterMs: fc.oneof(fc.integer(), fc.constantFrom(2 ** 31, 2 ** 53, -1)),
          deploymentId: fc.string({ maxLength: 8 }),
        },
        { requiredKeys: [] },
      ),
    },
    { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
  )
  .map((v) => JSON.stringify(v) ?? '');
const rawBody = fc.oneof(
  { weight: 6, arbitrary: jsonBody },
  fc.string({ unit: 'binary', maxLength: 60 }),
  fc.constantFrom('', '{', 'null', '[]', '{"__proto__":{"x":1}}', '['.repeat(3000) + ']'.repeat(3000)),
);

interface Spec {
  type: number;
  flags: number;
  stream: number;
  operation: string | null;
  extra: Record<string, ReturnType<typeof str>>;
  body: string;
}
const spec: fc.Arbitrary<Spec> = fc.record({
  type: fc.oneof({ weight: 8, arbitrary: fc.constant(0) }, fc.integer({ min: 0, max: 9 }), fc.constantFrom(-1, 2 ** 31 - 1)),
  flags: fc.oneof({ weight: 6, arbitrary: fc.constant(0) }, fc.constantFrom(1, 2, 3), fc.integer()),
  // stream: 0 = the next stream id, negative = reuse an earlier one, else a literal id
  stream: fc.oneof({ weight: 6, arbitrary: fc.constant(0) }, fc.integer({ min: -3, max: -1 }), fc.constantFrom(1, 2, 7, 2 ** 31 - 1)),
  operation: fc.oneof(
    { weight: 6, arbitrary: fc.constantFrom(...PLAUSIBLE_OPS) },
    { weight: 2, arbitrary: fc.constantFrom(...OPERATIONS) },
    fc.constant(null),
    fc.string({ maxLength: 30 }),
  ),
  extra: fc.dictionary(fc.constantFrom('service-model-type', ':content-type', 'x'), fc.string({ maxLength: 20 }).map(str), { maxKeys: 2 }),
  body: rawBody,
});
const connectSpec = fc.oneof(
  { weight: 8, arbitrary: fc.constant({ version: '0.1.0', auth: 'good' as const }) },
  fc.record({
    version: fc.constantFrom('0.1.0', '0.2.0', '', '0.1.0\0'),
    auth: fc.constantFrom('good' as const, 'bad' as const, 'none' as const, 'garbage' as const),
  }),
);
const sessionArb = fc.record({
  connect: fc.option(connectSpec, { freq: 8 }),
  preConnect: fc.oneof({ weight: 6, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: spec }),
  msgs: fc.array(spec, { maxLength: 6 }),
  ping: fc.boolean(),
});

function buildSession(s: {
  connect: { version: string; auth: 'good' | 'bad' | 'none' | 'garbage' } | null;
  preConnect: Spec | null;
  msgs: Spec[];
  ping: boolean;
}): Buffer {
  const out: Buffer[] = [];
  if (s.preConnect) out.push(specFrame(s.preConnect, 1));
  if (s.connect) {
    const body =
      s.connect.auth === 'good'
        ? JSON.stringify({ authToken: token })
        : s.connect.auth === 'bad'
          ? JSON.stringify({ authToken: 'ZZZZZZZZZZZZZZZZ' })
          : s.connect.auth === 'none'
            ? '{}'
            : '{authToken:';
    out.push(rpcFrame(MessageType.Connect, 0, 0, { ':version': str(s.connect.version) }, body));
  }
  let next = 1;
  for (const m of s.msgs) {
    const id = m.stream === 0 ? next++ : m.stream < 0 ? Math.max(1, next + m.stream) : m.stream;
    out.push(specFrame(m, id));
  }
  if (s.ping) out.push(rpcFrame(MessageType.Ping, 0, 0, { note: str('still there?') }, 'ping'));
  return Buffer.concat(out);
}

function specFrame(m: Spec, id: number): Buffer {
  const headers: MessageHeaders = { ...m.extra };
  if (m.operation !== null) headers.operation = str(m.operation);
  return rpcFrame(m.type, m.flags, m.type === MessageType.Ping || m.type === MessageType.Connect ? 0 : id, headers, m.body);
}

const headerInt = (m: Message, name: string): number | undefined => {
  const v = m.headers[name];
  return v && v.type === 'integer' ? v.value : undefined;
};

/** A well-behaved client after the fuzzing: Connect, PublishToTopic, an answer. */
async function wellBehaved(): Promise<void> {
  const bytes = Buffer.concat([
    rpcFrame(MessageType.Connect, 0, 0, { ':version': str('0.1.0') }, JSON.stringify({ authToken: token })),
    rpcFrame(
      0,
      0,
      1,
      { operation: str('aws.greengrass#PublishToTopic') },
      JSON.stringify({ topic: 'fz/ok', publishMessage: { jsonMessage: { message: { ok: true } } } }),
    ),
  ]);
  const r = await session(bytes, [], 20_000);
  const ack = r.frames[0];
  if (
    !ack ||
    headerInt(ack, ':message-type') !== MessageType.ConnectAck ||
    headerInt(ack, ':message-flags') !== MessageFlags.ConnectionAccepted
  )
    throw new Error('a well-behaved client was not accepted after fuzzing');
  const resp = r.frames[1];
  if (!resp || resp.headers['service-model-type']?.value !== 'aws.greengrass#PublishToTopicResponse')
    throw new Error(`a well-behaved PublishToTopic got ${JSON.stringify(resp?.headers ?? null)}`);
}

describe('fuzz: IPC RPC state machine (a running nucleus, its real socket)', () => {
  it('finding: UpdateConfiguration of ["__proto__", k] wrote into Object.prototype, and the next frame the nucleus encoded crashed it', async () => {
    const update = JSON.stringify({ keyPath: ['__proto__', 'fzPolluted'], valueToMerge: { v: 1 }, timestamp: Date.now() / 1000 });
    const r = await session(
      Buffer.concat([
        rpcFrame(MessageType.Connect, 0, 0, { ':version': str('0.1.0') }, JSON.stringify({ authToken: token })),
        rpcFrame(0, 0, 1, { operation: str('aws.greengrass#UpdateConfiguration') }, update),
        rpcFrame(0, 0, 2, { operation: str('aws.greengrass#GetConfiguration') }, JSON.stringify({ keyPath: ['__proto__'] })),
      ]),
      [],
      20_000,
    );
    // Before the fix: Object.prototype.fzPolluted = {} in the nucleus's process (this one), then
    // an uncaught TypeError encoding the next frame (every header object "had" that key).
    expect(({} as Record<string, unknown>).fzPolluted).toBeUndefined();
    expect(r.frames.map((f) => f.headers['service-model-type']?.value)).toEqual([
      undefined,
      'aws.greengrass#UpdateConfigurationResponse',
      'aws.greengrass#GetConfigurationResponse',
    ]);
    // "__proto__" is an ordinary key, as in the real nucleus's config store
    expect(JSON.parse(Buffer.from(r.frames[2]!.body).toString())).toMatchObject({
      componentName: 'fz.Comp',
      value: { fzPolluted: { v: 1 } },
    });
    await wellBehaved();
  });

  it(
    'well-formed answers, a closed connection in bounded time, nothing served before an accepted Connect; the nucleus keeps serving',
    async () => {
      await wellBehaved();
      const input = fc.oneof(
        { weight: 3, arbitrary: fc.record({ bytes: sessionArb.map(buildSession), cuts: fc.array(fc.nat(), { maxLength: 4 }) }) },
        {
          weight: 2,
          arbitrary: fc.record({
            bytes: sessionArb.map(buildSession).chain((b) => mutated([b, ...sessionSeeds(token)]).map((m) => Buffer.from(m))),
            cuts: fc.array(fc.nat(), { maxLength: 4 }),
          }),
        },
        {
          weight: 1,
          arbitrary: fc.record({ bytes: fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b)), cuts: fc.constant([] as number[]) }),
        },
      );
      let accepted = 0;
      let answered = 0; // application answers (operations that ran and replied)
      const r = await fuzzAsync(
        'ipc-rpc',
        input,
        async ({ bytes, cuts }, stats: FuzzStats) => {
          const t0 = performance.now();
          const at = [...new Set(cuts.map((c) => (bytes.length ? c % bytes.length : 0)))].sort((a, b) => a - b);
          const reply = await session(bytes, at, 15_000);
          stats.iterations++;
          stats.maxCallMs = Math.max(stats.maxCallMs, performance.now() - t0);
          if (reply.framingError) throw new Error(`the nucleus sent bytes that are not event-stream frames: ${reply.framingError}`);
          const firstAck = reply.frames.findIndex((f) => headerInt(f, ':message-type') === MessageType.ConnectAck);
          const acceptedAck = firstAck >= 0 && headerInt(reply.frames[firstAck]!, ':message-flags') === MessageFlags.ConnectionAccepted;
          for (const [i, f] of reply.frames.entries()) {
            const type = headerInt(f, ':message-type');
            if (type === undefined || headerInt(f, ':stream-id') === undefined || headerInt(f, ':message-flags') === undefined)
              throw new Error(`answer #${i} lacks the RPC headers`);
            if (!acceptedAck || i < firstAck) {
              if (type !== MessageType.ConnectAck && type !== MessageType.ProtocolError)
                throw new Error(`answer #${i} (type ${type}) sent on a connection that was never accepted`);
            }
          }
          if (acceptedAck) {
            if (!acceptableConnect(bytes))
              throw new Error('a connection was accepted although its first message is not a Connect with the token');
            accepted++;
            answered += reply.frames.filter((f) => (headerInt(f, ':stream-id') ?? 0) > 0).length;
          }
          stats.note(
            acceptedAck
              ? 'accepted'
              : reply.frames.some((f) => headerInt(f, ':message-type') === MessageType.ProtocolError)
                ? 'ProtocolError'
                : 'closed',
            acceptedAck,
          );
          if (stats.iterations % 40 === 0) await wellBehaved();
          if (stats.iterations % 64 === 0) {
            const grown = process.memoryUsage().heapUsed / 2 ** 20;
            if (grown > 1024) throw new Error(`heap at ${grown.toFixed(0)} MiB`);
          }
        },
        { maxCallMs: 15_000 },
      );
      expect(r.iterations).toBeGreaterThanOrEqual(10); // the budget is time: a loaded machine runs fewer
      console.log(`fuzz ipc-rpc: ${accepted} sessions accepted, ${answered} operation answers`);
      expect(accepted).toBeGreaterThan(0);
      expect(answered).toBeGreaterThan(0);
      expect(r.refused).toBeGreaterThan(0);
      await wellBehaved();
      // every fuzzed connection is gone from the nucleus (the last well-behaved one included)
      await until(() => nucleus.ipcConnections === 0, 10_000, 'the fuzzed connections to be released');
    },
    FUZZ_SECONDS * 1000 + 120_000,
  );
});
