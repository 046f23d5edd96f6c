import { describe, expect, it } from 'vitest';
import { interpolate, type VariableContext } from '../../embedded/nucleus/componentmanager/variables.js';
import { ConfigStore, DEFAULT_MODTIME, resolveDeploymentConfig } from '../../embedded/nucleus/config/store.js';
import { IpcError } from '../../embedded/nucleus/ipc/errors.js';

describe('configuration', () => {
  it('resolves a deployment: running config, reset, defaults at timestamp 1, then merge', () => {
    const first = resolveDeploymentConfig(undefined, { fps: 5, roi: { x: 0, y: 0 }, tags: ['a'] }, { merge: { roi: { x: 10 } } }, 1000);
    expect(first.config).toEqual({ fps: 5, roi: { x: 10, y: 0 }, tags: ['a'] });
    expect(first.times['/fps']).toBe(DEFAULT_MODTIME);
    expect(first.times['/roi/x']).toBe(1000);
    // New version: a changed default replaces the old default, but not the value the user merged.
    const second = resolveDeploymentConfig(first, { fps: 10, roi: { x: 0, y: 5 }, tags: ['a'], newKey: true }, undefined, 2000);
    expect(second.config).toEqual({ fps: 10, roi: { x: 10, y: 5 }, tags: ['a'], newKey: true });
    // Reset a pointer: back to the default.
    const third = resolveDeploymentConfig(second, { fps: 10, roi: { x: 0, y: 5 } }, { reset: ['/roi/x'] }, 3000);
    expect(third.config.roi).toEqual({ x: 0, y: 5 });
    // Reset everything, then merge.
    const fourth = resolveDeploymentConfig(third, { fps: 1 }, { reset: [''], merge: { extra: 1 } }, 4000);
    expect(fourth.config).toEqual({ fps: 1, extra: 1 });
  });

  it('updates as the real nucleus does: leaf key paths nest, whole seconds, stale writes fail on the key path node', () => {
    const s = new ConfigStore();
    s.replace('c', { a: { b: 1, c: 2 }, d: 'x' });
    const events: string[] = [];
    s.on('change', (comp: string, path: string[]) => events.push(`${comp}:${path.join('/')}`));
    const now = Date.now() + 5000;
    s.update('c', ['a'], { b: 5, n: { deep: true } }, now);
    expect(s.get('c')).toEqual({ a: { b: 5, c: 2, n: { deep: true } }, d: 'x' });
    // A changed leaf is reported once, a created one twice (created, then set).
    expect(events.sort()).toEqual(['c:a/b', 'c:a/n/deep', 'c:a/n/deep']);
    // A key path naming a leaf merges {leaf: value} into its parent: the leaf becomes a map.
    events.length = 0;
    s.update('c', ['d'], { d: 'y' }, now + 1000);
    expect(s.get('c')?.d).toEqual({ d: 'y' });
    expect(events.sort()).toEqual(['c:d', 'c:d/d', 'c:d/d']);
    // Older than the key path's node: FailedUpdateConditionCheckError (the older leaf write is dropped).
    let err: unknown;
    try {
      s.update('c', ['a'], { b: 6 }, now - 60_000);
    } catch (e) {
      err = e;
    }
    expect((err as IpcError).shape).toBe('FailedUpdateConditionCheckError');
    expect(s.lookup('c', ['a', 'b']).value).toBe(5);
    // Timestamps count in whole seconds: 999 ms later is the same second, not newer.
    const sec = Math.floor(now / 1000) * 1000 + 10_000;
    s.update('c', ['a'], { b: 7 }, sec + 999);
    s.update('c', ['a'], { b: 8 }, sec);
    expect(s.lookup('c', ['a', 'b']).value).toBe(8);
    // A new key path is created now, whatever the timestamp says.
    s.update('c', ['brand', 'new'], { k: 1 }, 1000);
    expect(s.lookup('c', ['brand', 'new', 'k']).value).toBe(1);
    expect(() => s.update('nope', [], { a: 1 }, now)).toThrow(/Component config not found for component nope/);
  });

  it('refuses accessControl writes over IPC whatever the key path (a component cannot grant itself permissions)', () => {
    const s = new ConfigStore();
    const ac = { 'aws.greengrass.ipc.pubsub': { p: { operations: ['*'], resources: ['*'] } } };
    s.replace('c', { x: 1 });
    for (const [keyPath, value] of [
      [[], { accessControl: ac }],
      [['accessControl'], ac],
      [['accessControl', 'aws.greengrass.ipc.pubsub'], ac['aws.greengrass.ipc.pubsub']],
    ] as [string[], Record<string, unknown>][]) {
      let err: unknown;
      try {
        s.update('c', keyPath, value, Date.now());
      } catch (e) {
        err = e;
      }
      expect((err as IpcError).shape, keyPath.join('/')).toBe('InvalidArgumentsError');
      expect((err as IpcError).message).toBe('Config update is not allowed for following fields [accessControl]');
    }
    expect(s.get('c')).toEqual({ x: 1 });
  });
});

describe('recipe variables', () => {
  const ctx: VariableContext = {
    componentName: 'loupe.Inference',
    rootPath: '/gg',
    thingName: 'line1',
    artifactsPath: '/gg/packages/artifacts/loupe.Inference/1.0.0',
    decompressedPath: '/gg/packages/artifacts-unarchived/loupe.Inference/1.0.0',
    workPath: '/gg/work/loupe.Inference',
    configuration: { conf: 0.25, model: { name: 'metal', classes: ['tag'] }, 'a/b': 'slash' },
    dependencies: new Map([
      [
        'loupe.Model',
        {
          artifactsPath: '/gg/packages/artifacts/loupe.Model/2.0.0',
          decompressedPath: '/gg/u/loupe.Model/2.0.0',
          workPath: '/gg/work/loupe.Model',
          configuration: { file: 'model.onnx' },
        },
      ],
    ]),
  };

  it('resolves own, system and direct-dependency variables', () => {
    const unresolved: string[] = [];
    const s = interpolate(
      'node {artifacts:path}/i.js --conf {configuration:/conf} --model {loupe.Model:artifacts:path}/{loupe.Model:configuration:/file} --m {configuration:/model} --s {configuration:/a~1b} --thing {iot:thingName} --root {kernel:rootPath} --w {work:path} --u {artifacts:decompressedPath}',
      ctx,
      (v) => unresolved.push(v),
    );
    expect(s).toBe(
      'node /gg/packages/artifacts/loupe.Inference/1.0.0/i.js --conf 0.25 --model /gg/packages/artifacts/loupe.Model/2.0.0/model.onnx --m {"name":"metal","classes":["tag"]} --s slash --thing line1 --root /gg --w /gg/work/loupe.Inference --u /gg/packages/artifacts-unarchived/loupe.Inference/1.0.0',
    );
    expect(unresolved).toEqual([]);
  });

  it('leaves non-dependencies, missing keys and non-variables as written', () => {
    const unresolved: string[] = [];
    const s = interpolate('{other.Comp:artifacts:path} {configuration:/missing} ${HOME} {a} {x:1}', ctx, (v) => unresolved.push(v));
    expect(s).toBe('{other.Comp:artifacts:path} {configuration:/missing} ${HOME} {a} {x:1}');
    expect(unresolved).toEqual(['{other.Comp:artifacts:path}', '{configuration:/missing}']);
  });
});
