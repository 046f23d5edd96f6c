import type { Authorizer } from '../authorization.js';
import { PUBSUB_SERVICE } from '../authorization.js';
import { invalidArguments } from '../ipc/errors.js';
import type { IpcServer, OperationContext } from '../ipc/server.js';
import { isWildcardFilter, SubscriptionIndex } from './topics.js';

/**
 * Local publish/subscribe between components (PublishToTopic / SubscribeToTopic), following
 * the real PubSubIPCEventStreamAgent: authorization on the topic (or filter) first, publish
 * topics must not contain wildcards, subscribe filters may use MQTT `+`/`#`, and the default
 * receive mode is "messages from others only" for wildcard filters and "all messages" otherwise.
 * Each published message is serialised once and the same bytes go to every subscriber; events to
 * one subscriber leave in publish order.
 */
interface Subscriber {
  principal: string;
  receiveMode: 'RECEIVE_ALL_MESSAGES' | 'RECEIVE_MESSAGES_FROM_OTHERS';
  ctx: OperationContext;
}

const PUBLISH = 'aws.greengrass#PublishToTopic';
const SUBSCRIBE = 'aws.greengrass#SubscribeToTopic';

export class LocalPubSub {
  private readonly subs = new SubscriptionIndex<Subscriber>();
  /** Published messages, for the status/benchmark counters. */
  published = 0;

  constructor(private readonly authz: Authorizer) {}

  register(server: IpcServer): void {
    server.register('PublishToTopic', (req, ctx) => this.publish(req, ctx.principal));
    server.register('SubscribeToTopic', (req, ctx) => this.subscribe(req, ctx));
  }

  private publish(req: Record<string, unknown>, principal: string): object {
    const topic = req.topic;
    if (typeof topic !== 'string') throw invalidArguments('Publish topic must not be null');
    this.authz.check(PUBSUB_SERVICE, principal, PUBLISH, topic);
    if (topic.includes('+') || topic.includes('#') || topic.includes('*'))
      throw invalidArguments('Publish topic must not contain a wildcard.');
    const pm = req.publishMessage as { jsonMessage?: { message?: unknown }; binaryMessage?: { message?: unknown } } | undefined;
    if (!pm || typeof pm !== 'object') throw invalidArguments('publishMessage is required');
    let event: object;
    if (pm.jsonMessage !== undefined && pm.binaryMessage === undefined) {
      const m = pm.jsonMessage?.message;
      if (m === null || typeof m !== 'object' || Array.isArray(m)) throw invalidArguments('jsonMessage.message must be a JSON object');
      event = { jsonMessage: { message: m, context: { topic } } };
    } else if (pm.binaryMessage !== undefined && pm.jsonMessage === undefined) {
      const m = pm.binaryMessage?.message;
      if (typeof m !== 'string') throw invalidArguments('binaryMessage.message must be base64 data');
      event = { binaryMessage: { message: m, context: { topic } } };
    } else {
      throw invalidArguments('publishMessage must hold exactly one of jsonMessage and binaryMessage');
    }
    this.published++;
    const targets = this.subs.match(topic);
    if (targets.size === 0) return {};
    const body = Buffer.from(JSON.stringify(event));
    for (const s of targets) {
      if (s.receiveMode === 'RECEIVE_MESSAGES_FROM_OTHERS' && s.principal === principal) continue;
      s.ctx.emitSerialized(body);
    }
    return {};
  }

  private subscribe(req: Record<string, unknown>, ctx: OperationContext): object {
    const topic = req.topic;
    if (typeof topic !== 'string' || topic === '') throw invalidArguments('Subscribe topic must not be empty');
    this.authz.check(PUBSUB_SERVICE, ctx.principal, SUBSCRIBE, topic);
    let mode = req.receiveMode;
    if (mode === undefined || mode === null) mode = isWildcardFilter(topic) ? 'RECEIVE_MESSAGES_FROM_OTHERS' : 'RECEIVE_ALL_MESSAGES';
    if (mode !== 'RECEIVE_ALL_MESSAGES' && mode !== 'RECEIVE_MESSAGES_FROM_OTHERS')
      throw invalidArguments(`receiveMode must be RECEIVE_ALL_MESSAGES or RECEIVE_MESSAGES_FROM_OTHERS, got ${String(mode)}`);
    const sub: Subscriber = { principal: ctx.principal, receiveMode: mode, ctx };
    this.subs.add(topic, sub);
    ctx.onClose(() => this.subs.remove(topic, sub));
    return {};
  }
}
