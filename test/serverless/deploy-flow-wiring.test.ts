import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { executeStateMachine, synthesiseDefinitions, type JSONValue, type Synthesised } from '../helpers/local-sfn.js';

/**
 * The synthesised deploy state machine's branches after Deploy, with its Task states answered by
 * stand-ins that return the replies loupe's handlers give (the real handlers walk the whole flow in
 * aws-flows-moto.full.test.ts). Here: a deployment Greengrass reports failed at once (the deploy
 * step halts) must still be rolled back, not end as "nothing to deploy".
 */
let dir: string;
let syn: Synthesised;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lp-deploy-wiring-'));
  syn = await synthesiseDefinitions(dir);
}, 300_000);
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const refuse = (state: string) => () => {
  throw new Error(`${state} must not run on this path`);
};

describe('deploy state machine: after Deploy', () => {
  it('a deployment failed at once (deploy halted, state failed) → RollbackFailedDeployment → RolledBack', async () => {
    const x = await executeStateMachine(syn.deploy, {
      name: 'failed-at-once',
      machine: 'loupe-deploy',
      input: { detail: { ModelPackageArn: 'arn:aws:sagemaker:eu-west-1:111122223333:model-package/metal-tags/3' } },
      tasks: {
        Publish: () => ({ runId: 3, step: 'publish', status: 'done', output: { version: '1.0.3' } }),
        Deploy: () => ({
          runId: 3,
          step: 'deploy',
          status: 'halted',
          output: { name: 'loupe-run-3', version: '1.0.3', previousVersion: '1.0.2', state: 'failed', detail: {} },
          halt: 'deployment loupe-run-3 failed',
        }),
        RollbackFailedDeployment: (i: JSONValue) => ({
          ...(i as object),
          rolledBackTo: '1.0.2',
          deployment: 'rollback-loupe-run-3-to-1.0.2',
        }),
        RolloutStatus: refuse('RolloutStatus'),
        Confirm: refuse('Confirm'),
        Rollback: refuse('Rollback'),
      },
    });
    expect(x.path).toEqual(['Publish', 'Deploy', 'Deployed', 'RollbackFailedDeployment', 'RolledBack']);
    expect(x.calls.find((c) => c.state === 'RollbackFailedDeployment')!.input).toEqual({ runId: 3, reason: 'deployment failed at once' });
    expect(x.error).toMatchObject({ error: 'DeploymentFailed' });
  }, 120_000);

  it('a deployment under way goes to the rollout wait loop', async () => {
    let polls = 0;
    const x = await executeStateMachine(syn.deploy, {
      name: 'in-progress',
      machine: 'loupe-deploy',
      input: { detail: { ModelPackageArn: 'arn:aws:sagemaker:eu-west-1:111122223333:model-package/metal-tags/4' } },
      tasks: {
        Publish: () => ({ runId: 4, step: 'publish', status: 'done', output: { version: '1.0.4' } }),
        Deploy: () => ({ runId: 4, step: 'deploy', status: 'done', output: { deploymentId: 'd-4', state: 'in-progress' } }),
        RolloutStatus: () => ({ runId: 4, state: ++polls < 2 ? 'in-progress' : 'succeeded', detail: {} }),
        Confirm: () => ({ runId: 4, step: 'confirm', status: 'done', output: {} }),
        RollbackFailedDeployment: refuse('RollbackFailedDeployment'),
        Rollback: refuse('Rollback'),
      },
      waits: { WaitForRollout: 0 },
    });
    expect(x.error).toBeUndefined();
    expect(x.path.at(-1)).toBe('FleetRunsNewModel');
    expect(x.path).not.toContain('RollbackFailedDeployment');
  }, 120_000);
});
