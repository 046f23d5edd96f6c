import {
  ConflictException,
  CreateComponentVersionCommand,
  CreateDeploymentCommand,
  GetComponentCommand,
  GetDeploymentCommand,
  ListComponentVersionsCommand,
  ListComponentsCommand,
  ListCoreDevicesCommand,
  ListDeploymentsCommand,
  ListInstalledComponentsCommand,
  type CreateDeploymentCommandInput,
  type GreengrassV2Client,
} from '@aws-sdk/client-greengrassv2';
import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { readFile } from 'node:fs/promises';
import { LoupeError } from '../../lib/errors.js';
import { sha256 } from '../../lib/fsutil.js';
import type { DeploymentState, DeviceModel, FleetBackend, DeploymentComponent } from './backend.js';
import { waitUntilDeployable } from '../../components/build/publish.js';
import type { ArtefactFile, ModelComponent } from './model-component.js';

/**
 * The fleet on AWS IoT Greengrass v2: artefacts uploaded to S3 in the GDK's layout
 * (`s3://<bucket>/<prefix>/<component>/<version>/<file>`), CreateComponentVersion with the
 * recipe inline, and CreateDeployment to a thing group that keeps every other component's
 * version, configuration and runWith from the group's current deployment; a new component
 * version is deployed only once Greengrass has made it DEPLOYABLE. Rollout: exponential
 * (a few devices first, faster as they succeed), aborted when too many fail; failures roll
 * the device back (failureHandlingPolicy ROLLBACK) and components are told before they are
 * updated (NOTIFY_COMPONENTS: the inference component can finish its frame). A new deployment
 * to the same thing group replaces the previous one, which is how Greengrass rolls forward.
 */
export interface RolloutPolicy {
  baseRatePerMinute: number;
  incrementFactor: number;
  /** Speed up after this many devices succeeded. */
  succeededThings: number;
  maximumPerMinute: number;
  /** Cancel the rollout when this share of devices (after `minExecuted`) failed. */
  abortThresholdPercentage: number;
  abortMinExecuted: number;
  componentUpdateTimeoutSeconds: number;
  /** Per-device timeout for the job to finish. */
  inProgressTimeoutMinutes: number;
}

export const DEFAULT_ROLLOUT: RolloutPolicy = {
  baseRatePerMinute: 2,
  incrementFactor: 2,
  succeededThings: 2,
  maximumPerMinute: 50,
  abortThresholdPercentage: 10,
  abortMinExecuted: 5,
  componentUpdateTimeoutSeconds: 60,
  inProgressTimeoutMinutes: 30,
};

export interface AwsFleetOptions {
  greengrass: GreengrassV2Client;
  s3: S3Client;
  bucket: string;
  prefix?: string;
  thingGroupArn: string;
  rollout?: Partial<RolloutPolicy>;
  /** how long a new component version may take to become DEPLOYABLE (default 5 min), and the first poll pause */
  deployable?: { timeoutMs?: number; pollMs?: number };
}

export function deploymentRequest(
  targetArn: string,
  name: string,
  components: CreateDeploymentCommandInput['components'],
  r: RolloutPolicy,
): CreateDeploymentCommandInput {
  return {
    targetArn,
    deploymentName: name,
    components,
    deploymentPolicies: {
      failureHandlingPolicy: 'ROLLBACK',
      componentUpdatePolicy: { action: 'NOTIFY_COMPONENTS', timeoutInSeconds: r.componentUpdateTimeoutSeconds },
      configurationValidationPolicy: { timeoutInSeconds: 60 },
    },
    iotJobConfiguration: {
      jobExecutionsRolloutConfig: {
        exponentialRate: {
          baseRatePerMinute: r.baseRatePerMinute,
          incrementFactor: r.incrementFactor,
          rateIncreaseCriteria: { numberOfSucceededThings: r.succeededThings },
        },
        maximumPerMinute: r.maximumPerMinute,
      },
      abortConfig: {
        criteriaList: [
          {
            failureType: 'FAILED',
            action: 'CANCEL',
            thresholdPercentage: r.abortThresholdPercentage,
            minNumberOfExecutedThings: r.abortMinExecuted,
          },
          {
            failureType: 'TIMED_OUT',
            action: 'CANCEL',
            thresholdPercentage: r.abortThresholdPercentage,
            minNumberOfExecutedThings: r.abortMinExecuted,
          },
        ],
      },
      timeoutConfig: { inProgressTimeoutInMinutes: r.inProgressTimeoutMinutes },
    },
    tags: { 'loupe:deployment': name },
    // Same name → same token: a retried call inside the idempotency window creates nothing new.
    clientToken: sha256(`${targetArn}\n${name}`).slice(0, 64),
  };
}

export class AwsGreengrassFleet implements FleetBackend {
  readonly kind = 'aws' as const;
  readonly target: string;
  private readonly prefix: string;
  private readonly rollout: RolloutPolicy;

  constructor(private readonly o: AwsFleetOptions) {
    this.target = o.thingGroupArn;
    this.prefix = (o.prefix ?? 'loupe/components').replace(/\/+$/, '');
    this.rollout = { ...DEFAULT_ROLLOUT, ...o.rollout };
    if (!/^arn:aws[\w-]*:iot:[\w-]+:\d{12}:thinggroup\/.+$/.test(o.thingGroupArn)) {
      throw new LoupeError('FLEET_BAD_TARGET', 'expected a thing group ARN (arn:aws:iot:<region>:<account>:thinggroup/<name>)', {
        input: o.thingGroupArn,
      });
    }
  }

  private key(component: string, version: string, name: string): string {
    return `${this.prefix}/${component}/${version}/${name}`;
  }

  uriFor(component: string, version: string, file: ArtefactFile): string {
    return `s3://${this.o.bucket}/${this.key(component, version, file.name)}`;
  }

  private async componentArn(component: string): Promise<string | null> {
    let nextToken: string | undefined;
    do {
      const page = await this.o.greengrass.send(new ListComponentsCommand({ scope: 'PRIVATE', ...(nextToken ? { nextToken } : {}) }));
      const hit = page.components?.find((c) => c.componentName === component);
      if (hit?.arn) return hit.arn;
      nextToken = page.nextToken;
    } while (nextToken);
    return null;
  }

  async componentVersions(component: string): Promise<string[]> {
    const arn = await this.componentArn(component);
    if (!arn) return [];
    const out: string[] = [];
    let nextToken: string | undefined;
    do {
      const page = await this.o.greengrass.send(new ListComponentVersionsCommand({ arn, ...(nextToken ? { nextToken } : {}) }));
      for (const v of page.componentVersions ?? []) if (v.componentVersion) out.push(v.componentVersion);
      nextToken = page.nextToken;
    } while (nextToken);
    return out;
  }

  /** The recipe of the version the thing group runs now (GetComponent), so its code artefact and settings carry over. */
  async baseRecipe(component: string): Promise<Record<string, unknown>> {
    const current = (await this.currentComponents())[component]?.componentVersion;
    if (!current) throw new LoupeError('FLEET_NO_COMPONENT', `the thing group's deployment has no ${component}`, { input: this.target });
    const arn = await this.componentArn(component);
    if (!arn) throw new LoupeError('FLEET_NO_COMPONENT', `${component} is not a component of this account`, { input: component });
    const out = await this.o.greengrass.send(new GetComponentCommand({ arn: `${arn}:versions:${current}`, recipeOutputFormat: 'JSON' }));
    if (!out.recipe)
      throw new LoupeError('FLEET_NO_COMPONENT', `GetComponent returned no recipe for ${component}@${current}`, { input: arn });
    return JSON.parse(new TextDecoder().decode(out.recipe)) as Record<string, unknown>;
  }

  async createComponentVersion(c: ModelComponent): Promise<{ arn: string | null }> {
    for (const a of c.artefacts) {
      await this.o.s3.send(
        new PutObjectCommand({
          Bucket: this.o.bucket,
          Key: this.key(c.name, c.version, a.name),
          Body: await readFile(a.path),
          ChecksumSHA256: a.digest,
        }),
      );
    }
    let arn: string | null;
    let first;
    try {
      const out = await this.o.greengrass.send(
        new CreateComponentVersionCommand({
          inlineRecipe: new TextEncoder().encode(JSON.stringify(c.recipe)),
          tags: { 'loupe:component': c.name },
          clientToken: sha256(`${c.name}@${c.version}\n${JSON.stringify(c.recipe)}`).slice(0, 64),
        }),
      );
      arn = out.arn ?? null;
      first = out.status;
    } catch (e) {
      // The version exists already: an earlier attempt created it before crashing (publish.ts
      // only gets here for a version it recorded as its own intent).
      if (!(e instanceof ConflictException)) throw e;
      arn = null;
    }
    await this.waitDeployable(c.name, c.version, arn, first);
    return { arn };
  }

  async waitDeployable(
    component: string,
    version: string,
    arn?: string | null,
    first?: { componentState?: string; message?: string; errors?: Record<string, string> },
  ): Promise<void> {
    let versionArn = arn;
    if (!versionArn) {
      const base = await this.componentArn(component);
      if (!base)
        throw new LoupeError('FLEET_NO_COMPONENT', `${component} is not a component of this account`, { input: `${component}@${version}` });
      versionArn = `${base}:versions:${version}`;
    }
    await waitUntilDeployable(this.o.greengrass, versionArn, {
      first,
      timeoutMs: this.o.deployable?.timeoutMs,
      pollMs: this.o.deployable?.pollMs,
    });
  }

  private async latestDeployment(): Promise<{ deploymentId: string; deploymentName?: string } | null> {
    const page = await this.o.greengrass.send(new ListDeploymentsCommand({ targetArn: this.target, historyFilter: 'LATEST_ONLY' }));
    const d = page.deployments?.[0];
    return d?.deploymentId ? { deploymentId: d.deploymentId, deploymentName: d.deploymentName } : null;
  }

  async currentComponents(): Promise<Record<string, DeploymentComponent>> {
    const latest = await this.latestDeployment();
    if (!latest)
      throw new LoupeError('FLEET_NO_DEPLOYMENT', 'the thing group has no deployment yet: deploy the loupe suite to it first', {
        input: this.target,
      });
    const d = await this.o.greengrass.send(new GetDeploymentCommand({ deploymentId: latest.deploymentId }));
    const out: Record<string, DeploymentComponent> = {};
    for (const [name, spec] of Object.entries(d.components ?? {})) {
      if (!spec.componentVersion) continue;
      out[name] = {
        componentVersion: spec.componentVersion,
        ...(spec.configurationUpdate ? { configurationUpdate: spec.configurationUpdate } : {}),
        ...(spec.runWith ? { runWith: spec.runWith } : {}),
      };
    }
    return out;
  }

  async findDeployment(name: string): Promise<string | null> {
    const latest = await this.latestDeployment();
    return latest && latest.deploymentName === name ? latest.deploymentId : null;
  }

  async createDeployment(name: string, components: Record<string, DeploymentComponent>) {
    const out = await this.o.greengrass.send(new CreateDeploymentCommand(deploymentRequest(this.target, name, components, this.rollout)));
    if (!out.deploymentId) throw new LoupeError('GREENGRASS_NO_DEPLOYMENT', 'CreateDeployment returned no deploymentId', { input: name });
    return { deploymentId: out.deploymentId, detail: { iotJobId: out.iotJobId, iotJobArn: out.iotJobArn } };
  }

  async deploymentStatus(deploymentId: string): Promise<DeploymentState> {
    const d = await this.o.greengrass.send(new GetDeploymentCommand({ deploymentId }));
    const s = d.deploymentStatus;
    // Thing-group deployments stay ACTIVE while they are the group's current one; devices say
    // whether they took it (see devices()).
    const state = s === 'FAILED' || s === 'CANCELED' ? 'failed' : s === 'COMPLETED' ? 'succeeded' : 'in-progress';
    return { state, detail: { deploymentStatus: s, iotJobId: d.iotJobId } };
  }

  async devices(component: string): Promise<DeviceModel[]> {
    const out: DeviceModel[] = [];
    let nextToken: string | undefined;
    do {
      const page = await this.o.greengrass.send(
        new ListCoreDevicesCommand({ thingGroupArn: this.target, ...(nextToken ? { nextToken } : {}) }),
      );
      for (const dev of page.coreDevices ?? []) {
        if (!dev.coreDeviceThingName) continue;
        const inst = await this.o.greengrass.send(
          new ListInstalledComponentsCommand({ coreDeviceThingName: dev.coreDeviceThingName, topologyFilter: 'ALL' }),
        );
        const m = inst.installedComponents?.find((c) => c.componentName === component);
        out.push({
          device: dev.coreDeviceThingName,
          modelVersion: m?.componentVersion ?? null,
          state: m?.lifecycleState ?? dev.status ?? null,
        });
      }
      nextToken = page.nextToken;
    } while (nextToken);
    return out;
  }
}
