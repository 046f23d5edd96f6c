import { describe, expect, it } from 'vitest';
import { Authorizer, compileResource, MQTTPROXY_SERVICE, PUBSUB_SERVICE } from '../../embedded/nucleus/authorization.js';
import { IpcError } from '../../embedded/nucleus/ipc/errors.js';

describe('authorization', () => {
  it('matches pubsub resources as globs (* spans levels, ${c} escapes)', () => {
    const m = (p: string, r: string) => compileResource(p, false).test(r);
    expect(m('*', 'any/thing/at/all')).toBe(true);
    expect(m('loupe/*', 'loupe/frames')).toBe(true);
    expect(m('loupe/*', 'loupe/a/b')).toBe(true);
    expect(m('loupe/*/raw', 'loupe/cam1/raw')).toBe(true);
    expect(m('loupe/*/raw', 'loupe/cam1/jpeg')).toBe(false);
    expect(m('loupe/frames', 'loupe/frames2')).toBe(false);
    expect(m('a/${*}', 'a/*')).toBe(true);
    expect(m('a/${*}', 'a/b')).toBe(false);
    expect(m('a/+', 'a/b')).toBe(false); // + is not a pubsub wildcard
    expect(m('a.b', 'aXb')).toBe(false); // regex characters are literal
  });

  it('matches mqttproxy resources with MQTT wildcards when used validly', () => {
    const m = (p: string, r: string) => compileResource(p, true).test(r);
    expect(m('factory/+/results', 'factory/line1/results')).toBe(true);
    expect(m('factory/+/results', 'factory/a/b/results')).toBe(false);
    expect(m('factory/#', 'factory')).toBe(true);
    expect(m('factory/#', 'factory/a/b')).toBe(true);
    expect(m('factory/#', 'factoryX/a')).toBe(false);
    expect(m('#', 'x/y')).toBe(true);
    expect(m('a+b', 'a+b')).toBe(true); // invalid use: literal
    expect(m('a+b', 'axb')).toBe(false);
    expect(m('things/{iot:thingName}/x', 'things/{iot:thingName}/x')).toBe(true);
  });

  it('checks service, principal, operation and resource, and denies with the real message', () => {
    const a = new Authorizer();
    a.setComponentPolicies('loupe.Camera', {
      [PUBSUB_SERVICE]: { p1: { operations: ['aws.greengrass#PublishToTopic'], resources: ['loupe/frames'] } },
      [MQTTPROXY_SERVICE]: { p2: { operations: ['*'], resources: ['things/line1/#', 'things/{iot:thingName}/x'] } },
    });
    expect(a.isAuthorized(PUBSUB_SERVICE, 'loupe.Camera', 'aws.greengrass#PublishToTopic', 'loupe/frames')).toBe(true);
    expect(a.isAuthorized(PUBSUB_SERVICE, 'loupe.Camera', 'aws.greengrass#SubscribeToTopic', 'loupe/frames')).toBe(false);
    expect(a.isAuthorized(PUBSUB_SERVICE, 'other.Component', 'aws.greengrass#PublishToTopic', 'loupe/frames')).toBe(false);
    expect(a.isAuthorized(MQTTPROXY_SERVICE, 'loupe.Camera', 'aws.greengrass#PublishToIoTCore', 'things/line1/results')).toBe(true);
    expect(a.isAuthorized(MQTTPROXY_SERVICE, 'loupe.Camera', 'aws.greengrass#PublishToIoTCore', 'things/line2/results')).toBe(false);
    // Values are taken as written: {iot:thingName} is filled in by a deployment with
    // interpolateComponentConfiguration, never by the authorizer.
    expect(a.isAuthorized(MQTTPROXY_SERVICE, 'loupe.Camera', 'aws.greengrass#PublishToIoTCore', 'things/line1/x')).toBe(true);
    expect(a.isAuthorized(MQTTPROXY_SERVICE, 'loupe.Camera', 'aws.greengrass#PublishToIoTCore', 'things/{iot:thingName}/x')).toBe(true);
    let err: unknown;
    try {
      a.check(PUBSUB_SERVICE, 'loupe.Camera', 'aws.greengrass#PublishToTopic', 'secret/topic');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(IpcError);
    expect((err as IpcError).shape).toBe('UnauthorizedError');
    expect((err as IpcError).message).toBe(
      'Principal loupe.Camera is not authorized to perform aws.greengrass.ipc.pubsub:aws.greengrass#PublishToTopic on resource secret/topic',
    );
    a.removeComponent('loupe.Camera');
    expect(a.isAuthorized(PUBSUB_SERVICE, 'loupe.Camera', 'aws.greengrass#PublishToTopic', 'loupe/frames')).toBe(false);
  });

  it('reports malformed policies instead of silently granting', () => {
    const a = new Authorizer();
    const problems = a.setComponentPolicies('c', { [PUBSUB_SERVICE]: { p: { operations: 'PublishToTopic' } } });
    expect(problems[0]).toMatch(/accessControl\.aws\.greengrass\.ipc\.pubsub\.p\.operations must be a list/);
    expect(a.isAuthorized(PUBSUB_SERVICE, 'c', 'PublishToTopic', 'x')).toBe(false);
  });

  it('as the real nucleus: a policy without resources allows nothing, invalid resources are dropped, unknown services ignored', () => {
    const a = new Authorizer();
    const op = 'aws.greengrass#PublishToTopic';
    const problems = a.setComponentPolicies('c', {
      [PUBSUB_SERVICE]: {
        nores: { operations: [op] },
        esc: { operations: [op], resources: ['esc/${*}', 'esc/${?}', 'bad/${x}', 'bad2/${', 'q/?', 'ok/$x'] },
      },
      'my.Own.Service': { p: { operations: ['*'], resources: ['*'] } },
    });
    expect(a.isAuthorized(PUBSUB_SERVICE, 'c', op, 'nores/t')).toBe(false);
    expect(a.isAuthorized(PUBSUB_SERVICE, 'c', op, 'esc/*')).toBe(true);
    expect(a.isAuthorized(PUBSUB_SERVICE, 'c', op, 'esc/?')).toBe(true);
    expect(a.isAuthorized(PUBSUB_SERVICE, 'c', op, 'esc/a')).toBe(false);
    expect(a.isAuthorized(PUBSUB_SERVICE, 'c', op, 'bad/${x}')).toBe(false);
    expect(a.isAuthorized(PUBSUB_SERVICE, 'c', op, 'bad2/${')).toBe(false);
    expect(a.isAuthorized(PUBSUB_SERVICE, 'c', op, 'q/a')).toBe(false);
    expect(a.isAuthorized(PUBSUB_SERVICE, 'c', op, 'q/?')).toBe(false);
    expect(a.isAuthorized(PUBSUB_SERVICE, 'c', op, 'ok/$x')).toBe(true);
    expect(a.isAuthorized('my.Own.Service', 'c', 'x', 'y')).toBe(false);
    expect(problems.join('\n')).toMatch(/"bad\/\$\{x\}" dropped: Resource contains an invalid escape sequence: \$\{x\}/);
    expect(problems.join('\n')).toMatch(/"q\/\?" dropped: Resource contains invalid character: '\?'/);
    expect(problems.join('\n')).toMatch(/my\.Own\.Service: not a service Greengrass authorizes/);
  });
});
