import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { Nucleus } from '../../embedded/nucleus/nucleus.js';
import { removeRoot, stepResult, tempRoot, writeAgentRecipe } from '../helpers/nucleus.js';

/**
 * When a component gets the Token Exchange Service's address (AWS_CONTAINER_CREDENTIALS_FULL_URI):
 * as in the real nucleus, once TES has started, and TES starts only when a deployment needs it.
 * In the deployment that starts it, only components that wait for it (HARD, directly or through
 * their dependencies) get it; the real nucleus races the others against TES's start-up, loupe
 * settles the race as "no" (lifecycle/kernel.ts). The real nucleus's answers for the cases with a
 * fixed answer are checked in test/nucleus-diff.
 */
const TES = 'aws.greengrass.TokenExchangeService';
const URI = 'AWS_CONTAINER_CREDENTIALS_FULL_URI';
let root: string;
let nucleus: Nucleus;
let n = 0;

beforeAll(async () => {
  root = tempRoot('lnt-');
  nucleus = new Nucleus({ root, thingName: 'tes-thing', region: 'eu-west-1', mqttUrl: false });
  await nucleus.start();
});

afterAll(async () => {
  await nucleus?.stop();
  await removeRoot(root);
});

type Deps = Parameters<typeof writeAgentRecipe>[1]['dependencies'];

async function deploy(agents: Record<string, Deps>): Promise<void> {
  const dir = join(root, `recipes-${++n}`);
  for (const [name, dependencies] of Object.entries(agents))
    writeAgentRecipe(dir, { name, steps: [{ op: 'env' }], ...(dependencies ? { dependencies } : {}) });
  const rec = await nucleus.deploy({ recipeDir: dir, merge: Object.fromEntries(Object.keys(agents).map((a) => [a, '1.0.0'])) });
  expect(rec.status, rec.failureCause).toBe('SUCCEEDED');
}

const env = async (name: string) => (await stepResult(root, name, 'env')).result as Record<string, string | undefined>;

describe('the TES address in a component environment', () => {
  it('is not given while no deployment has needed TES; the token is', async () => {
    await deploy({ 'tes.Alone': undefined });
    const e = await env('tes.Alone');
    expect(e[URI]).toBeUndefined();
    expect(e.SVCUID).toMatch(/^[A-Z0-9]{16}$/);
    expect(e.AWS_CONTAINER_AUTHORIZATION_TOKEN).toBe(e.SVCUID);
  });

  it('in the deployment that starts TES: to what waits for TES (HARD, directly or not), not to the rest', async () => {
    await deploy({
      'tes.Direct': { [TES]: { VersionRequirement: '^2.0.0', DependencyType: 'HARD' } },
      'tes.Via': { 'tes.Direct': { DependencyType: 'HARD' } },
      'tes.Soft': { [TES]: { VersionRequirement: '^2.0.0', DependencyType: 'SOFT' } },
      'tes.Loose': undefined,
    });
    expect((await env('tes.Direct'))[URI]).toBe(nucleus.tesUri);
    expect((await env('tes.Via'))[URI]).toBe(nucleus.tesUri);
    // A SOFT dependency does not hold a component back, so it does not wait for TES either.
    expect((await env('tes.Soft'))[URI]).toBeUndefined();
    expect((await env('tes.Loose'))[URI]).toBeUndefined();
    // What already ran, unchanged, is not restarted: still without it.
    expect(nucleus.status().components.find((c) => c.name === 'tes.Alone')?.state).toBe('RUNNING');
  });

  it('to every component started after TES has', async () => {
    await deploy({ 'tes.Later': undefined });
    expect((await env('tes.Later'))[URI]).toBe(nucleus.tesUri);
  });
});
