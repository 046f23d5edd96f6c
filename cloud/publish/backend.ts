import type { Backend } from './fleet-store.js';
import type { ArtefactFile, ModelComponent } from './model-component.js';

/**
 * What publishing needs from a fleet, the same for the local nucleus and for AWS IoT
 * Greengrass: component versions (list, create), the components a target runs now, and
 * deployments (find by name, create, status). `publish.ts` drives it with the fleet store's
 * intent rows so that every call is safe to repeat after a crash.
 */
export interface DeploymentState {
  state: 'in-progress' | 'succeeded' | 'failed';
  detail: Record<string, unknown>;
}

export interface DeviceModel {
  device: string;
  /** The loupe.Model component version the device runs (installed components or telemetry). */
  modelVersion: string | null;
  state: string | null;
}

/** A component's system user and limits in a deployment (Greengrass's ComponentRunWith). */
export interface RunWith {
  posixUser?: string;
  windowsUser?: string;
  systemResourceLimits?: { cpus?: number; memory?: number };
}

/** One component of a deployment: version, and what the deployment set for it. */
export interface DeploymentComponent {
  componentVersion: string;
  configurationUpdate?: { merge?: string; reset?: string[] };
  runWith?: RunWith;
}

export interface FleetBackend {
  readonly kind: Backend;
  /** The deployment target: a thing group ARN on AWS, the nucleus's thing name locally. */
  readonly target: string;
  componentVersions(component: string): Promise<string[]>;
  /** The recipe new versions of `component` are derived from (what the fleet runs now, or the project's own). */
  baseRecipe(component: string): Promise<Record<string, unknown>>;
  /** Put the files where the recipe's URIs say, then create the component version (and wait until it can be deployed). */
  createComponentVersion(c: ModelComponent): Promise<{ arn: string | null }>;
  /** Resolve once the component version can be deployed (on AWS: DEPLOYABLE); throw if it never will. */
  waitDeployable(component: string, version: string): Promise<void>;
  uriFor(component: string, version: string, file: ArtefactFile & { sha256: string }): string;
  /** Components the target's current deployment names, with their versions, configuration updates and runWith. */
  currentComponents(): Promise<Record<string, DeploymentComponent>>;
  /** The id of a deployment to the target with this name, if one was made (`intentAt`: when loupe decided to make it). */
  findDeployment(name: string, intentAt: string): Promise<string | null>;
  createDeployment(
    name: string,
    components: Record<string, DeploymentComponent>,
  ): Promise<{ deploymentId: string; detail?: Record<string, unknown> }>;
  deploymentStatus(deploymentId: string): Promise<DeploymentState>;
  /** Which model version each device of the target reports running. */
  devices(component: string): Promise<DeviceModel[]>;
}
