import { describe, expect, it } from 'vitest';
import { parseRecipe, resolveForPlatform, type DevicePlatform } from '../../embedded/nucleus/componentmanager/recipe.js';

const linux: DevicePlatform = { os: 'linux', architecture: 'amd64', runtime: 'aws_nucleus_classic' };

describe('recipes', () => {
  it('reads YAML with keys in any case and keeps configuration keys as written', () => {
    const r = parseRecipe(
      `
recipeformatversion: '2020-01-25'
COMPONENTNAME: loupe.Camera
componentVersion: 1.2.3
componentconfiguration:
  DEFAULTCONFIGURATION:
    FramesPerSecond: 5
    roi: { x: 1 }
componentDependencies:
  loupe.Model: { versionrequirement: '>=1.0.0 <2.0.0', dependencytype: soft }
manifests:
  - platform: { OS: linux }
    lifecycle:
      SETENV: { A: '1' }
      install: { script: npm ci, TIMEOUT: 300 }
      RUN: node cam.js
    artifacts:
      - uri: s3://bucket/cam.zip
        unarchive: zip
`,
      'cam.yaml',
    );
    expect(r.name).toBe('loupe.Camera');
    expect(r.version).toBe('1.2.3');
    expect(r.defaultConfiguration).toEqual({ FramesPerSecond: 5, roi: { x: 1 } });
    expect(r.dependencies['loupe.Model']).toEqual({ versionRequirement: '>=1.0.0 <2.0.0', type: 'SOFT' });
    const p = resolveForPlatform(r, linux);
    expect(p.lifecycle.setenv).toEqual({ A: '1' });
    expect(p.lifecycle.steps.install).toMatchObject({ script: 'npm ci', timeout: 300 });
    expect(p.lifecycle.steps.run?.script).toBe('node cam.js');
    expect(p.artifacts).toEqual([{ uri: 's3://bucket/cam.zip', unarchive: 'ZIP' }]);
  });

  it('names the recipe and the key in every validation error', () => {
    const base = { RecipeFormatVersion: '2020-01-25', ComponentName: 'a.B', ComponentVersion: '1.0.0' };
    const bad = (patch: Record<string, unknown>) => () => parseRecipe(JSON.stringify({ ...base, ...patch }), 'dir/r.json');
    expect(bad({ ComponentVersion: '1.0' })).toThrow(/dir\/r\.json: ComponentVersion: must be a semantic version.*"1\.0"/);
    expect(bad({ RecipeFormatVersion: '2021-01-01' })).toThrow(/RecipeFormatVersion: must be "2020-01-25"/);
    expect(bad({ ComponentName: 'a b' })).toThrow(/ComponentName: must be 1-128 characters/);
    expect(bad({ ComponentDependencies: { 'x.Y': { VersionRequirement: 'not a range' } } })).toThrow(
      /ComponentDependencies\.x\.Y\.VersionRequirement: must be a semver range/,
    );
    expect(bad({ ComponentDependencies: { 'x.Y': { DependencyType: 'MAYBE' } } })).toThrow(
      /ComponentDependencies\.x\.Y\.DependencyType: must be HARD or SOFT, got "MAYBE"/,
    );
    expect(bad({ Manifests: [{ Lifecycle: { Run: { Timeout: 5 } } }] })).toThrow(/Manifests\[0\]\.Lifecycle\.Run\.Script: is required/);
    expect(bad({ Manifests: [{ Lifecycle: { Run: 'a', Startup: 'b' } }] })).toThrow(/defines both Startup and Run/);
    expect(bad({ Manifests: [{ Artifacts: [{ Uri: 's3://b/k', Digest: 'abc' }] }] })).toThrow(
      /Artifacts\[0\]\.Digest: must be the base64 SHA-256/,
    );
    expect(bad({ Manifests: [{ Artifacts: [{ Uri: 's3://b/k', Unarchive: 'TAR' }] }] })).toThrow(/Unarchive: must be ZIP or NONE/);
    expect(bad({ componentname: 'x', ComponentName: 'y' })).toThrow(/appears more than once with different case/);
    expect(() => parseRecipe('{ not json', 'r.json')).toThrow(/r\.json: not valid JSON/);
    expect(() => parseRecipe('a: [', 'r.yaml')).toThrow(/r\.yaml: not valid YAML/);
    delete (base as Record<string, unknown>).ComponentName;
    expect(() => parseRecipe(JSON.stringify(base), 'r.json')).toThrow(/r\.json: ComponentName: is required/);
  });

  it('picks the first manifest for this platform, with regex and wildcard values', () => {
    const r = parseRecipe(
      JSON.stringify({
        RecipeFormatVersion: '2020-01-25',
        ComponentName: 'a.B',
        ComponentVersion: '1.0.0',
        Manifests: [
          { Platform: { os: 'windows' }, Lifecycle: { Run: 'win' } },
          { Platform: { os: 'linux', architecture: 'aarch64' }, Lifecycle: { Run: 'arm' } },
          { Platform: { os: '/lin.*/', architecture: '*' }, Lifecycle: { Run: 'any-linux' } },
          { Lifecycle: { Run: 'fallback' } },
        ],
      }),
      'r.json',
    );
    expect(resolveForPlatform(r, linux).lifecycle.steps.run?.script).toBe('any-linux');
    expect(resolveForPlatform(r, { ...linux, architecture: 'aarch64' }).lifecycle.steps.run?.script).toBe('arm');
    expect(resolveForPlatform(r, { ...linux, os: 'darwin' }).lifecycle.steps.run?.script).toBe('fallback');
    const onlyWin = parseRecipe(
      JSON.stringify({
        RecipeFormatVersion: '2020-01-25',
        ComponentName: 'a.B',
        ComponentVersion: '1.0.0',
        Manifests: [{ Platform: { os: 'windows' } }],
      }),
      'w.json',
    );
    expect(() => resolveForPlatform(onlyWin, linux)).toThrow(/no manifest matches this device \(os linux, architecture amd64\)/);
  });

  it('supports the top-level Lifecycle keyed by selections', () => {
    const r = parseRecipe(
      JSON.stringify({
        RecipeFormatVersion: '2020-01-25',
        ComponentName: 'a.B',
        ComponentVersion: '1.0.0',
        Manifests: [{ Platform: { os: 'linux' }, Selections: ['linux'] }],
        Lifecycle: { all: { Run: 'generic' }, linux: { Run: 'on-linux' } },
      }),
      'r.json',
    );
    expect(resolveForPlatform(r, linux).lifecycle.steps.run?.script).toBe('on-linux');
  });
});
