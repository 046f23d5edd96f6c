import { existsSync, readdirSync } from 'node:fs';
import { copyFile, mkdir, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import semver from 'semver';
import { LoupeError } from '../../lib/errors.js';
import { writeFileAtomic } from '../../lib/fsutil.js';
import { NucleusCliClient } from '../../embedded/nucleus/cli-client.js';
import { loadSourceRecipe, localRecipe, renderRecipe } from '../../components/build/recipes.js';
import type { DeploymentState, DeviceModel, FleetBackend } from './backend.js';
import type { ArtefactFile, ModelComponent } from './model-component.js';

/**
 * The fleet on one machine: the local nucleus (embedded/nucleus), reached the way the
 * Greengrass CLI reaches a real core device: IPC CreateLocalDeployment / GetLocalDeploymentStatus
 * / ListComponents over the nucleus socket with the CLI token from <root>/cli_ipc_info. So the
 * nucleus may run in another process (`loupe edge up`, `loupe nucleus start`), and killing the
 * cloud loop does not kill the "device".
 *
 * Published component versions live in a local component repository (the stand-in for the
 * Greengrass cloud's component catalogue), laid out as the CLI's --recipeDir/--artifactDir:
 *   <repo>/recipes/loupe.Model-<version>.json
 *   <repo>/artifacts/loupe.Model/<version>/<file>
 * A local deployment names only the root components to move (`rootComponentVersionsToAdd`),
 * so every other component keeps its version and configuration, as on Greengrass.
 *
 * Finding a deployment again after a crash: local deployments carry no name, so a deployment
 * counts as ours when it was created at or after our intent was recorded and moved loupe.Model
 * to our version (loupe is the only deployer of loupe.Model on this nucleus).
 */
export interface LocalFleetOptions {
  /** The nucleus root (holds cli_ipc_info). */
  nucleusRoot: string;
  /** The local component repository. */
  repoDir: string;
  thingName: string;
  /** How long components get to become healthy. */
  healthTimeoutSeconds?: number;
}

export class LocalNucleusFleet implements FleetBackend {
  readonly kind = 'local' as const;
  readonly target: string;
  private client: NucleusCliClient | null = null;
  /** deployment name → id, for deployments made by this object. */
  private readonly made = new Map<string, string>();

  constructor(private readonly o: LocalFleetOptions) {
    this.target = o.thingName;
  }

  private async cli(): Promise<NucleusCliClient> {
    this.client ??= await NucleusCliClient.connect(this.o.nucleusRoot);
    return this.client;
  }

  async close(): Promise<void> {
    // closing on the way out: a connection that is already gone needs no more
    await this.client?.close().catch(() => {});
    this.client = null;
  }

  get recipeDir(): string {
    return join(resolve(this.o.repoDir), 'recipes');
  }

  get artifactDir(): string {
    return join(resolve(this.o.repoDir), 'artifacts');
  }

  uriFor(component: string, version: string, file: ArtefactFile): string {
    // The nucleus takes artefacts from --artifactDir by name; the URI keeps the GDK's shape.
    return `s3://loupe-local-components/${component}/${version}/${file.name}`;
  }

  async componentVersions(component: string): Promise<string[]> {
    const out = new Set<string>();
    if (existsSync(this.recipeDir)) {
      for (const f of readdirSync(this.recipeDir)) {
        const m = new RegExp(`^${component.replace(/\./g, '\\.')}-(.+)\\.json$`).exec(f);
        if (m && semver.valid(m[1]!)) out.add(m[1]!);
      }
    }
    for (const c of await (await this.cli()).listComponents()) if (c.componentName === component) out.add(c.version);
    return [...out];
  }

  /**
   * The loupe.Model recipe as the local nucleus runs it: the project's source recipe made local
   * by the edge build (program run from this checkout, no code ZIP); model files and digests
   * are filled in by buildModelComponent.
   */
  async baseRecipe(component: string): Promise<Record<string, unknown>> {
    if (component !== 'loupe.Model')
      throw new LoupeError('FLEET_NO_COMPONENT', 'only loupe.Model is republished by the loop', { input: component });
    return localRecipe(
      renderRecipe(loadSourceRecipe('loupe.Model'), { version: '0.0.0', model: { name: 'model', sha256: '0'.repeat(64) } }),
    );
  }

  async createComponentVersion(c: ModelComponent): Promise<{ arn: string | null }> {
    const dir = join(this.artifactDir, c.name, c.version);
    await rm(dir, { recursive: true, force: true });
    await mkdir(dir, { recursive: true });
    for (const a of c.artefacts) await copyFile(a.path, join(dir, a.name));
    // The recipe is written last: a version is in the repository once its recipe is.
    await writeFileAtomic(join(this.recipeDir, `${c.name}-${c.version}.json`), JSON.stringify(c.recipe, null, 2) + '\n');
    return { arn: null };
  }

  /**
   * Nothing to wait for: the local repository has no checking step between creating a version
   * and deploying it (the nucleus itself refuses a version it cannot find, with its name).
   */
  async waitDeployable(): Promise<void> {}

  async currentComponents() {
    const comps = await (await this.cli()).listComponents();
    if (comps.length === 0)
      throw new LoupeError('FLEET_NO_DEPLOYMENT', 'the nucleus runs no components: deploy the loupe suite first (loupe edge up)', {
        input: this.o.nucleusRoot,
      });
    const out: Record<string, { componentVersion: string }> = {};
    for (const c of comps) out[c.componentName] = { componentVersion: c.version };
    return out;
  }

  async findDeployment(name: string, intentAt: string): Promise<string | null> {
    const known = this.made.get(name);
    if (known) return known;
    const since = Date.parse(intentAt);
    const list = await (await this.cli()).listDeployments();
    const after = list.filter((d) => d.createdOn && Date.parse(d.createdOn) >= since - 1000);
    return after.length ? after[after.length - 1]!.deploymentId : null;
  }

  async createDeployment(name: string, components: Record<string, { componentVersion: string }>) {
    const cli = await this.cli();
    const running = Object.fromEntries((await cli.listComponents()).map((c) => [c.componentName, c.version]));
    // Only what changes is named; the rest keep their versions (and configuration).
    const toAdd: Record<string, string> = {};
    for (const [n, c] of Object.entries(components)) if (running[n] !== c.componentVersion) toAdd[n] = c.componentVersion;
    if (Object.keys(toAdd).length === 0)
      throw new LoupeError('FLEET_NOTHING_TO_DEPLOY', 'the nucleus already runs these versions', { input: name });
    const deploymentId = await cli.createLocalDeployment({
      recipeDirectoryPath: this.recipeDir,
      artifactsDirectoryPath: this.artifactDir,
      rootComponentVersionsToAdd: toAdd,
      failureHandlingPolicy: 'ROLLBACK',
    });
    this.made.set(name, deploymentId);
    return { deploymentId, detail: { changed: toAdd } };
  }

  async deploymentStatus(deploymentId: string): Promise<DeploymentState> {
    const s = await (await this.cli()).deploymentStatus(deploymentId);
    const state = s.status === 'SUCCEEDED' ? 'succeeded' : s.status === 'FAILED' || s.status === 'CANCELED' ? 'failed' : 'in-progress';
    return { state, detail: { status: s.status, ...(s.deploymentStatusDetails ?? {}) } };
  }

  /** Wait until the nucleus has finished the deployment. */
  async waitForDeployment(deploymentId: string, timeoutMs: number): Promise<DeploymentState> {
    const s = await (await this.cli()).waitForDeployment(deploymentId, { timeoutMs });
    const state = s.status === 'SUCCEEDED' ? 'succeeded' : 'failed';
    return { state, detail: { status: s.status, ...(s.deploymentStatusDetails ?? {}) } };
  }

  async devices(component: string): Promise<DeviceModel[]> {
    const c = (await (await this.cli()).listComponents()).find((x) => x.componentName === component);
    return [{ device: this.o.thingName, modelVersion: c?.version ?? null, state: c?.state ?? null }];
  }
}
