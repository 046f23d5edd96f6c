import { describe, expect, it } from 'vitest';
import { parseInitConfig } from '../../embedded/nucleus/initconfig.js';
import { optionsFromInitConfig } from '../../embedded/nucleus/nucleus.js';

/** The real nucleus's configuration file as loupe reads it (`loupe nucleus start --init-config`). */
const FILE = `
system:
  rootpath: /var/gg
  thingName: line-1
  rootCaPath: /etc/gg/AmazonRootCA1.pem
services:
  aws.greengrass.Nucleus:
    componentType: NUCLEUS
    version: 2.18.0
    configuration:
      awsRegion: eu-west-1
      runWithDefault: { posixUser: "gg:gg" }
      interpolateComponentConfiguration: true
      iotDataEndpoint: mqtt://127.0.0.1:1883
      logging: { fileSizeKB: 512, totalLogsSizeKB: 2048 }
  main:
    dependencies: [my.App, aws.greengrass.TokenExchangeService]
  my.App:
    version: 1.2.3
    dependencies: [my.Lib:SOFT]
    Lifecycle:
      SETENV: { A: "{iot:thingName}" }
      run: { script: "echo hi", RequiresPrivilege: true, skipif: "!onpath sh" }
    configuration: { threshold: 0.5 }
    runWith: { posixUser: app }
  my.Lib:
    lifecycle: { install: "true" }
`;

describe('init-config', () => {
  it("reads the real nucleus's file: system, the Nucleus configuration, main, inline components (keys in any case)", () => {
    const c = parseInitConfig(FILE, 'config.yaml');
    expect(c).toMatchObject({
      rootPath: '/var/gg',
      thingName: 'line-1',
      rootCaPath: '/etc/gg/AmazonRootCA1.pem',
      region: 'eu-west-1',
      posixUser: 'gg:gg',
      interpolateComponentConfiguration: true,
      iotDataEndpoint: 'mqtt://127.0.0.1:1883',
      logging: { fileSizeKB: 512, totalLogsSizeKB: 2048 },
      nucleusVersion: '2.18.0',
      roots: ['my.App', 'aws.greengrass.TokenExchangeService'],
    });
    const app = c.components.find((r) => r.name === 'my.App')!;
    expect(app.version).toBe('1.2.3');
    expect(app.dependencies).toEqual({ 'my.Lib': { versionRequirement: '*', type: 'SOFT' } });
    expect(app.defaultConfiguration).toEqual({ threshold: 0.5 });
    expect(app.inline).toEqual({
      versioned: true,
      posixUser: 'app',
      lifecycle: {
        setenv: { A: '{iot:thingName}' },
        steps: { run: { script: 'echo hi', setenv: {}, requiresPrivilege: true, skipIf: '!onpath sh' } },
      },
    });
    const lib = c.components.find((r) => r.name === 'my.Lib')!;
    expect(lib.version).toBe('0.0.0');
    expect(lib.inline?.versioned).toBe(false);
    const o = optionsFromInitConfig(c);
    expect(o).toMatchObject({
      root: '/var/gg',
      thingName: 'line-1',
      region: 'eu-west-1',
      posixUser: 'gg:gg',
      mqttUrl: 'mqtt://127.0.0.1:1883',
      rootCaPath: '/etc/gg/AmazonRootCA1.pem',
    });
    // Without an endpoint the device is offline, as a real one without cloud settings.
    expect(optionsFromInitConfig(parseInitConfig('services: {}', 'x.yaml'), { root: '/r' }).mqttUrl).toBe(false);
  });

  it('names the key and the problem in bad files', () => {
    const bad = (text: string) => {
      try {
        parseInitConfig(text, 'bad.yaml');
      } catch (e) {
        return (e as Error).message;
      }
      return 'accepted';
    };
    expect(bad('services: [1')).toMatch(/not valid YAML/);
    expect(bad('services:\n  main: { dependencies: [no.Such] }')).toMatch(
      /services\.main\.dependencies: "no\.Such" is not defined under services/,
    );
    expect(bad('services:\n  a.B: { version: one }')).toMatch(/services\.a\.B\.version: must be a semantic version, got "one"/);
    expect(bad('services:\n  "..": {}')).toMatch(/services\.\.\.: is not a valid component name/);
    expect(bad('services:\n  a.B: { dependencies: ["c.D:MAYBE"] }')).toMatch(
      /"c\.D:MAYBE" must be a component name, optionally followed by :HARD or :SOFT/,
    );
    expect(bad('services:\n  a.B: { lifecycle: { run: { timeout: 5 } } }')).toMatch(/services\.a\.B\.lifecycle\.run\.Script: is required/);
    expect(bad('services:\n  aws.greengrass.Nucleus: { configuration: { logging: { fileSizeKB: -1 } } }')).toMatch(
      /logging\.fileSizeKB: must be a whole number of KB/,
    );
  });
});
