import { LocalNucleusFleet } from '../../publish/local-nucleus.js';
import type { FleetStore } from '../../publish/fleet-store.js';
import { readRecipeFile } from '../../publish/model-component.js';
import type { LoopConfig, LoopHome } from '../config.js';
import type { FleetPort } from '../ports.js';

type LocalFleetConfig = Extract<NonNullable<LoopConfig['fleet']>, { backend: 'local' }>;

/**
 * The fleet on a local Greengrass nucleus (`fleet.backend: "local"`): component versions go into
 * the loop home's component repository, deployments through the nucleus's CLI IPC. The deploy
 * step waits until the nucleus settles the deployment (it rolls back a failed one).
 */
export function localFleet(f: LocalFleetConfig, home: LoopHome, store: FleetStore): FleetPort {
  const fleet = new LocalNucleusFleet({ nucleusRoot: f.nucleusRoot, repoDir: home.componentRepo, thingName: f.thingName });
  return {
    backend: 'local',
    fleet,
    store,
    baseRecipe: async () => (f.baseRecipe ? readRecipeFile(f.baseRecipe) : fleet.baseRecipe('loupe.Model')),
    deploymentOutcome: (id, timeoutMs) => fleet.waitForDeployment(id, timeoutMs),
    confirmPollMs: 2000,
    close: () => fleet.close(),
  };
}
