import type { Authorizer } from '../authorization.js';
import { MQTTPROXY_SERVICE } from '../authorization.js';
import { invalidArguments, serviceError } from '../ipc/errors.js';
import type { IpcServer } from '../ipc/server.js';
import type { IotCoreBridge } from './bridge.js';

/**
 * PublishToIoTCore / SubscribeToIoTCore (the real MqttProxyIPCAgent): authorization against the
 * aws.greengrass.ipc.mqttproxy policies with MQTT-style resource matching, then the shared bridge.
 * A nucleus without an IoT Core connection (offline, as a device without cloud settings)
 * answers ServiceError with the real nucleus's offline messages.
 * Events are {message: {topicName, payload}} with the payload base64-encoded.
 */
const PUBLISH = 'aws.greengrass#PublishToIoTCore';
const SUBSCRIBE = 'aws.greengrass#SubscribeToIoTCore';
/** The real MqttProxyIPCAgent's denial message (it does not name the principal or topic). */
const NOT_AUTHORIZED = 'Not Authorized';

function qosOf(v: unknown): 0 | 1 {
  if (v === undefined || v === null || v === '0' || v === 0) return 0;
  if (v === '1' || v === 1) return 1;
  throw invalidArguments(`qos must be "0" or "1", got ${JSON.stringify(v)}`);
}

export function registerMqttProxy(server: IpcServer, authz: Authorizer, bridge: () => IotCoreBridge | undefined): void {
  server.register('PublishToIoTCore', async (req, ctx) => {
    const topic = req.topicName;
    if (typeof topic !== 'string' || topic === '') throw invalidArguments('topicName is required');
    authz.check(MQTTPROXY_SERVICE, ctx.principal, PUBLISH, topic, NOT_AUTHORIZED);
    const b = bridge();
    if (!b) throw serviceError(`Publish to topic ${topic} failed: Cannot publish because device is configured to run offline`);
    const payload = req.payload === undefined || req.payload === null ? Buffer.alloc(0) : Buffer.from(String(req.payload), 'base64');
    await b.publish({ topic, payload, qos: qosOf(req.qos), retain: req.retain === true });
    return {};
  });

  server.register('SubscribeToIoTCore', async (req, ctx) => {
    const topic = req.topicName;
    if (typeof topic !== 'string' || topic === '') throw invalidArguments('topicName is required');
    authz.check(MQTTPROXY_SERVICE, ctx.principal, SUBSCRIBE, topic, NOT_AUTHORIZED);
    const b = bridge();
    if (!b)
      throw serviceError(
        `Subscribe to topic ${topic} failed with error com.aws.greengrass.mqttclient.MqttRequestException: Device is not configured to connect to AWS`,
      );
    const unsubscribe = await b.subscribe(topic, qosOf(req.qos), (topicName, payload, retain) => {
      ctx.emit({ message: { topicName, payload: payload.toString('base64'), ...(retain ? { retain } : {}) } });
    });
    ctx.onClose(unsubscribe);
    return {};
  });
}
