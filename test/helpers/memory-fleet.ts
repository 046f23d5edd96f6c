import type { DeploymentComponent, DeploymentState, DeviceModel, FleetBackend } from '../../cloud/publish/backend.js';
import type { ArtefactFile, ModelComponent } from '../../cloud/publish/model-component.js';
import type { FleetPort } from '../../cloud/loop/ports.js';
import type { PortContext } from '../../cloud/loop/adapters/index.js';

/**
 * A whole fleet backend in one file, kept in memory: what it takes to put a new backend behind
 * the loop's fleet port (the table in cloud/loop/adapters/index.ts, or `overrides.fleet`). Its
 * devices install a deployment at once, so the loop's publish, deploy and confirm steps run on it
 * unchanged.
 */
export class MemoryFleet implements FleetBackend {
  readonly kind = 'local' as const;
  readonly target = 'memory:line-1';
  readonly components = new Map<string, ModelComponent>();
  readonly deployments: { id: string; name: string; components: Record<string, DeploymentComponent> }[] = [];
  private running: Record<string, DeploymentComponent> = { 'loupe.Model': { componentVersion: '1.0.0' } };

  async componentVersions(component: string): Promise<string[]> {
    return [...this.components.values()].filter((c) => c.name === component).map((c) => c.version);
  }
  async baseRecipe(component: string): Promise<Record<string, unknown>> {
    return {
      RecipeFormatVersion: '2020-01-25',
      ComponentName: component,
      ComponentVersion: '1.0.0',
      Manifests: [{ Platform: { os: 'linux' }, Lifecycle: {}, Artifacts: [] }],
    };
  }
  async createComponentVersion(c: ModelComponent): Promise<{ arn: string | null }> {
    this.components.set(`${c.name}@${c.version}`, c);
    return { arn: null };
  }
  async waitDeployable(): Promise<void> {}
  uriFor(component: string, version: string, file: ArtefactFile & { sha256: string }): string {
    return `memory://${component}/${version}/${file.name}`;
  }
  async currentComponents(): Promise<Record<string, DeploymentComponent>> {
    return { ...this.running };
  }
  async findDeployment(name: string): Promise<string | null> {
    return this.deployments.find((d) => d.name === name)?.id ?? null;
  }
  async createDeployment(name: string, components: Record<string, DeploymentComponent>): Promise<{ deploymentId: string }> {
    const id = `mem-${this.deployments.length + 1}`;
    this.deployments.push({ id, name, components });
    this.running = { ...components };
    return { deploymentId: id };
  }
  async deploymentStatus(): Promise<DeploymentState> {
    return { state: 'succeeded', detail: { by: 'memory fleet' } };
  }
  async devices(): Promise<DeviceModel[]> {
    return [{ device: 'line-1', modelVersion: this.running['loupe.Model']?.componentVersion ?? null, state: 'RUNNING' }];
  }
}

/** The port adapter: what `buildPorts` calls for `fleet`. */
export function memoryFleetPort(fleet: MemoryFleet) {
  return (c: PortContext): FleetPort => ({
    backend: 'local',
    fleet,
    store: c.fleetStore,
    baseRecipe: () => fleet.baseRecipe('loupe.Model'),
    deploymentOutcome: () => fleet.deploymentStatus(),
    confirmPollMs: 10,
    close: async () => {},
  });
}
