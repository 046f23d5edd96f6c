import type { Logger } from 'pino';
import { LoupeError } from '../../lib/errors.js';
import { silentLogger } from '../../lib/log.js';
import { deployedArtefact, type ModelVersion } from '../registry/types.js';
import type { DeploymentComponent, FleetBackend, RunWith } from './backend.js';
import type { DeploymentRow, FleetStore } from './fleet-store.js';
import { buildModelComponent, MODEL_COMPONENT, nextVersion, type ArtefactFile } from './model-component.js';

/**
 * Republishing a registered model to a fleet, in two idempotent halves:
 *
 *   publishModel({ backend, store, model, files, baseRecipe })  → the loupe.Model component version
 *   deployModel({ backend, store, modelRef, version, name })    → the deployment (other components kept,
 *                                                                  with their configuration and runWith;
 *                                                                  made once the version is deployable)
 *   rollback({ backend, store, to? })                            → redeploy the version that ran before
 *
 * Each writes an intent row to the fleet store before calling the control plane and marks it
 * after; on a retry an intent is finished with exactly what it named (same version, same
 * deployment name) after checking whether the earlier call got through, so crashes cannot
 * multiply versions or deployments. The component version is the next patch above every
 * version the backend and the store know.
 */
export interface PublishInput {
  backend: FleetBackend;
  store: FleetStore;
  model: ModelVersion;
  files: ArtefactFile[];
  /** The recipe to derive from (default: what the backend says the fleet's loupe.Model is built from). */
  baseRecipe?: Record<string, unknown>;
  /** Lowest version to use (default: one patch above the base recipe's version). */
  floor?: string;
  log?: Logger;
}

export interface Published {
  component: string;
  version: string;
  created: boolean;
  arn: string | null;
  recipe: Record<string, unknown>;
}

export async function publishModel(i: PublishInput): Promise<Published> {
  const log = i.log ?? silentLogger;
  // The file the fleet runs: the fp32 export or, when the gate chose it, its int8 quantization.
  const sha = deployedArtefact(i.model).ref.sha256;
  const kind = i.backend.kind;
  const prior = i.store.componentFor(kind, MODEL_COMPONENT, i.model.ref, sha);
  if (prior?.state === 'created') {
    log.info({ version: prior.version, model: i.model.ref }, 'model already published as this component version');
    return { component: MODEL_COMPONENT, version: prior.version, created: false, arn: prior.arn, recipe: prior.recipe };
  }
  const onBackend = await i.backend.componentVersions(MODEL_COMPONENT);
  let version = prior?.version ?? '';
  if (prior) {
    if (onBackend.includes(version)) {
      i.store.markComponentCreated(kind, MODEL_COMPONENT, version, null);
      log.info({ version }, 'component version was created before a crash; recorded it');
      return { component: MODEL_COMPONENT, version, created: false, arn: null, recipe: prior.recipe };
    }
  }
  const baseRecipe = i.baseRecipe ?? (await i.backend.baseRecipe(MODEL_COMPONENT));
  if (!prior) {
    const baseVersion = String(Object.entries(baseRecipe).find(([k]) => k.toLowerCase() === 'componentversion')?.[1] ?? '1.0.0');
    const known = [...onBackend, ...i.store.componentVersions(kind, MODEL_COMPONENT).map((r) => r.version), baseVersion];
    version = nextVersion(known, i.floor ?? '1.0.0');
  }
  const built = buildModelComponent({
    baseRecipe,
    version,
    files: i.files,
    uriFor: (f) => i.backend.uriFor(MODEL_COMPONENT, version, f),
    configuration: { name: i.model.group, modelRef: i.model.ref },
    description: `loupe model ${i.model.ref} (${i.model.fleetPrecision === 'int8' ? 'int8 ' : ''}onnx sha256 ${sha.slice(0, 12)}), published by loupe`,
  });
  if (built.artefacts.find((a) => a.name.endsWith('.onnx'))?.sha256 !== sha) {
    throw new LoupeError('PUBLISH_DIGEST', `the ONNX file given does not match registry version ${i.model.ref} (${sha})`, {
      input: i.files.map((f) => f.path).join(', '),
    });
  }
  i.store.recordComponentIntent({
    backend: kind,
    component: MODEL_COMPONENT,
    version,
    modelRef: i.model.ref,
    onnxSha256: sha,
    recipe: built.recipe,
  });
  const { arn } = await i.backend.createComponentVersion(built);
  i.store.markComponentCreated(kind, MODEL_COMPONENT, version, arn);
  log.info({ component: MODEL_COMPONENT, version, model: i.model.ref, arn }, 'published the model as a new component version');
  return { component: MODEL_COMPONENT, version, created: true, arn, recipe: built.recipe };
}

export interface DeployInput {
  backend: FleetBackend;
  store: FleetStore;
  modelRef: string;
  version: string;
  /** Deployment name: unique per intent (e.g. `loupe-run-7`); a retry with the same name reuses it. */
  name: string;
  kind?: DeploymentRow['kind'];
  log?: Logger;
}

export async function deployModel(i: DeployInput): Promise<DeploymentRow> {
  const log = i.log ?? silentLogger;
  const kind = i.backend.kind;
  const target = i.backend.target;
  let row = i.store.deploymentByName(kind, target, i.name);
  if (row && row.state !== 'intent') return row;
  if (row) {
    const id = await i.backend.findDeployment(i.name, row.createdAt);
    if (id) {
      i.store.updateDeployment(row.id, { state: 'created', deploymentId: id });
      log.info({ deployment: i.name, id }, 'deployment was created before a crash; recorded it');
      return i.store.deploymentByName(kind, target, i.name)!;
    }
  } else {
    const current = await i.backend.currentComponents();
    const previous = current[MODEL_COMPONENT]?.componentVersion ?? null;
    const components: Record<string, string> = {};
    for (const [n, c] of Object.entries(current)) components[n] = c.componentVersion;
    components[MODEL_COMPONENT] = i.version;
    row = i.store.recordDeploymentIntent({
      backend: kind,
      target,
      name: i.name,
      kind: i.kind ?? 'deploy',
      modelRef: i.modelRef,
      component: MODEL_COMPONENT,
      version: i.version,
      previousVersion: previous,
      components,
    });
    i.store.updateDeployment(row.id, {
      detail: {
        configurationUpdates: Object.fromEntries(
          Object.entries(current)
            .filter(([, c]) => c.configurationUpdate)
            .map(([n, c]) => [n, c.configurationUpdate]),
        ),
        runWith: Object.fromEntries(
          Object.entries(current)
            .filter(([, c]) => c.runWith)
            .map(([n, c]) => [n, c.runWith]),
        ),
      },
    });
    row = i.store.deploymentByName(kind, target, i.name)!;
  }
  const updates = (row.detail?.configurationUpdates ?? {}) as Record<string, { merge?: string; reset?: string[] }>;
  const runWith = (row.detail?.runWith ?? {}) as Record<string, RunWith>;
  const spec: Record<string, DeploymentComponent> = {};
  for (const [n, v] of Object.entries(row.components)) {
    // Other components keep their configuration updates; loupe.Model's model keys come from its
    // new recipe. Every component keeps the system user and limits the group gave it.
    spec[n] = {
      componentVersion: v,
      ...(updates[n] && n !== MODEL_COMPONENT ? { configurationUpdate: updates[n] } : {}),
      ...(runWith[n] ? { runWith: runWith[n] } : {}),
    };
  }
  // Greengrass fails a deployment naming a version it has not finished checking.
  await i.backend.waitDeployable(MODEL_COMPONENT, i.version);
  const out = await i.backend.createDeployment(i.name, spec);
  i.store.updateDeployment(row.id, { state: 'created', deploymentId: out.deploymentId, detail: out.detail ?? {} });
  log.info(
    { deployment: i.name, id: out.deploymentId, model: i.modelRef, version: i.version, previous: row.previousVersion },
    'deployment created',
  );
  return i.store.deploymentByName(kind, target, i.name)!;
}

/** Redeploy the loupe.Model version that ran before the current one (or `to`). */
export async function rollback(i: {
  backend: FleetBackend;
  store: FleetStore;
  to?: string;
  /** The deployment to roll back from (default: the target's current one). A deployment already
   * marked failed is no longer current, yet on a thing group the devices it reached may still run
   * it: the deploy state machine names it to redeploy the version before. */
  from?: DeploymentRow;
  log?: Logger;
}): Promise<DeploymentRow> {
  const current = i.from ?? i.store.current(i.backend.kind, i.backend.target);
  if (!current)
    throw new LoupeError('FLEET_NOTHING_TO_ROLL_BACK', 'loupe has made no deployment to this target', { input: i.backend.target });
  const to = i.to ?? current.previousVersion;
  if (!to)
    throw new LoupeError('FLEET_NOTHING_TO_ROLL_BACK', `deployment ${current.name} replaced no earlier ${MODEL_COMPONENT} version`, {
      input: current.name,
    });
  if (to === current.version)
    throw new LoupeError('FLEET_NOTHING_TO_ROLL_BACK', `the fleet already runs ${MODEL_COMPONENT} ${to}`, { input: to });
  // A version a device ran before one of loupe's deployments existed there (its own report at
  // deploy time); anything else must be a version the backend knows.
  const ranBefore = i.store
    .deployments({ backend: i.backend.kind, target: i.backend.target })
    .some((d) => d.previousVersion === to || d.version === to);
  if (!ranBefore) {
    const known = await i.backend.componentVersions(MODEL_COMPONENT);
    if (!known.includes(to))
      throw new LoupeError('FLEET_UNKNOWN_VERSION', `${MODEL_COMPONENT} ${to} does not exist on this fleet (known: ${known.join(', ')})`, {
        input: to,
      });
  }
  const modelRef = i.store.componentVersion(i.backend.kind, MODEL_COMPONENT, to)?.modelRef ?? `component:${to}`;
  return deployModel({
    backend: i.backend,
    store: i.store,
    modelRef,
    version: to,
    name: `rollback-${current.name}-to-${to}`,
    kind: 'rollback',
    log: i.log,
  });
}
