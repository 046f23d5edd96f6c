import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { errorMessage, LoupeError } from '../../../lib/errors.js';
import { writeFileAtomic } from '../../../lib/fsutil.js';
import { Progress } from '../../../lib/progress.js';
import { resolveForPlatform, type Recipe } from '../componentmanager/recipe.js';
import { interpolateSystemValues } from '../componentmanager/variables.js';
import type { ComponentStore } from '../componentmanager/store.js';
import { resolveDeploymentConfig } from '../config/store.js';
import type { Kernel, Target } from '../lifecycle/kernel.js';
import type { LifecycleIpc } from '../lifecycle/ipc.js';
import type { ConfigValidator } from '../config/ipc.js';
import { isDeepStrictEqual } from 'node:util';
import { resolveComponents } from './resolve.js';

/**
 * Local deployments, one at a time, as the real DeploymentService runs them:
 *
 *  1. import the recipes, resolve root components + dependencies (semver), resolve configuration
 *     (running config, reset, defaults, merge) and put the artefacts in the store (digests
 *     checked). Any failure here changes nothing: FAILED / FAILED_NO_STATE_CHANGE.
 *  2. NOTIFY_COMPONENTS: pre-update event to subscribed components, honouring deferrals, up to
 *     the policy timeout (SKIP_NOTIFY_COMPONENTS skips this).
 *  3. stop what is removed or changed, update configuration, install and start what is new or
 *     changed; then wait until every component is RUNNING or FINISHED.
 *  4. success: post-update event, the target is saved as the last good deployment (a restarted
 *     nucleus comes back with it). Failure (a component BROKEN, or not healthy in time): with
 *     ROLLBACK the previous versions and configuration are put back (FAILED_ROLLBACK_COMPLETE),
 *     with DO_NOTHING things stay as they are (FAILED_ROLLBACK_NOT_REQUESTED).
 *
 * Every deployment's record is persisted under <root>/deployments/.
 */
export interface ConfigurationUpdate {
  /** Deep-merged into the component's configuration. */
  merge?: Record<string, unknown>;
  /** JSON pointers reset to the recipe default (or removed); "" resets everything. */
  reset?: string[];
}

export interface DeploymentRequest {
  /** Recipes to add to the store first (the Greengrass CLI's --recipeDir). */
  recipeDir?: string;
  /** Artefacts, laid out <dir>/<component>/<version>/<file> (the CLI's --artifactDir). */
  artifactDir?: string;
  /** Root components to add or move to a version: {name: version}. */
  merge?: Record<string, string>;
  /** Root components to remove. */
  remove?: string[];
  configurationUpdate?: Record<string, ConfigurationUpdate>;
  failureHandlingPolicy?: 'ROLLBACK' | 'DO_NOTHING';
  componentUpdatePolicy?: { action?: 'NOTIFY_COMPONENTS' | 'SKIP_NOTIFY_COMPONENTS'; timeoutSeconds?: number };
  /** How long components that validate their configuration get to answer (default 30 s). */
  configurationValidationPolicy?: { timeoutSeconds?: number };
  /** How long components get to become RUNNING/FINISHED (default 120 s). */
  healthTimeoutSeconds?: number;
  /** How long they must then stay up before the deployment counts as a success (default 1 s). */
  healthStableSeconds?: number;
  groupName?: string;
}

export type DeploymentStatus = 'QUEUED' | 'IN_PROGRESS' | 'SUCCEEDED' | 'FAILED' | 'CANCELED';
export type DetailedStatus =
  'SUCCESSFUL' | 'FAILED_NO_STATE_CHANGE' | 'FAILED_ROLLBACK_NOT_REQUESTED' | 'FAILED_ROLLBACK_COMPLETE' | 'REJECTED';

export interface DeploymentRecord {
  deploymentId: string;
  status: DeploymentStatus;
  detailedStatus?: DetailedStatus;
  createdOn: string;
  finishedOn?: string;
  /** Why it failed. */
  failureCause?: string;
  errorTypes?: string[];
  /** Components and versions after the deployment (what runs now). */
  components?: { name: string; version: string; state: string }[];
  deferrals?: { component: string; message: string; recheckAfterMs: number }[];
  rollbackError?: string;
  request: DeploymentRequest;
}

const HISTORY_LIMIT = 100;

interface LastGood {
  savedAt: string;
  deploymentId: string;
  /** `inline`: the definition of a component that came from the nucleus configuration (no recipe in the store). */
  components: Record<
    string,
    { version: string; config: Record<string, unknown>; times: Record<string, number>; root: boolean; inline?: Recipe }
  >;
}

export class DeploymentManager {
  private readonly records: DeploymentRecord[] = [];
  private queue: Promise<unknown> = Promise.resolve();
  private closing = false;

  /**
   * The nucleus is stopping: a deployment still waiting (on deferrals, say) changes nothing
   * more, and queued ones do not start. Resolves when the one in progress has settled.
   */
  async close(timeoutMs = 30_000): Promise<void> {
    this.closing = true;
    // each deployment reported its own failure; closing only waits for the queue to settle
    await Promise.race([this.queue.catch(() => {}), new Promise((r) => setTimeout(r, timeoutMs).unref())]);
  }
  private readonly dir: string;
  private readonly lastGoodFile: string;

  constructor(
    private readonly opts: {
      root: string;
      kernel: Kernel;
      store: ComponentStore;
      lifecycle: LifecycleIpc;
      validator: ConfigValidator;
      logger: Logger;
      interpolateConfiguration?: boolean;
      maxConfigurationBytes: number;
    },
  ) {
    this.dir = join(opts.root, 'deployments');
    this.lastGoodFile = join(opts.root, 'config', 'last-good.json');
    const histFile = join(this.dir, 'history.json');
    if (existsSync(histFile)) {
      try {
        const recs = JSON.parse(readFileSync(histFile, 'utf8')) as DeploymentRecord[];
        for (const r of recs) {
          // A deployment cut off by a crash or stop never finished.
          if (r.status === 'QUEUED' || r.status === 'IN_PROGRESS') {
            r.status = 'FAILED';
            r.failureCause = 'the nucleus stopped before the deployment finished';
          }
          this.records.push(r);
        }
      } catch (e) {
        opts.logger.error({ file: histFile, err: errorMessage(e) }, 'unreadable deployment history; starting a new one');
      }
    }
  }

  list(): DeploymentRecord[] {
    return this.records.map((r) => structuredClone(r));
  }

  get(id: string): DeploymentRecord | undefined {
    const r = this.records.find((x) => x.deploymentId === id);
    return r ? structuredClone(r) : undefined;
  }

  /** Queue a deployment; returns its record at once and a promise of the final record. */
  submit(request: DeploymentRequest): { record: DeploymentRecord; done: Promise<DeploymentRecord> } {
    const record: DeploymentRecord = {
      deploymentId: randomUUID(),
      status: 'QUEUED',
      createdOn: new Date().toISOString(),
      request: structuredClone(request),
    };
    this.records.push(record);
    if (this.records.length > HISTORY_LIMIT) this.records.splice(0, this.records.length - HISTORY_LIMIT);
    const done = (this.queue = this.queue
      .then(() => this.run(record, request))
      .catch(async (e: unknown) => {
        // A bug, not a component's failure: still leave a finished, truthful record.
        this.opts.logger.error({ deploymentId: record.deploymentId, err: errorMessage(e) }, 'deployment crashed');
        record.status = 'FAILED';
        record.failureCause = `internal error: ${errorMessage(e)}`;
        record.finishedOn = new Date().toISOString();
        await this.persist();
        return record;
      })) as Promise<DeploymentRecord>;
    void this.persist();
    return { record: structuredClone(record), done: done.then((r) => structuredClone(r)) };
  }

  /** The last good deployment's target, if one was saved (for restart). */
  async lastGoodTarget(): Promise<Target | undefined> {
    if (!existsSync(this.lastGoodFile)) return undefined;
    const lg = JSON.parse(readFileSync(this.lastGoodFile, 'utf8')) as LastGood;
    const t: Target = new Map();
    for (const [name, c] of Object.entries(lg.components)) {
      const recipe = c.inline ?? (await this.opts.store.loadRecipe(name, c.version));
      t.set(name, { name, version: c.version, recipe, config: c.config, times: c.times, root: c.root });
    }
    return t;
  }

  private async persist(): Promise<void> {
    await writeFileAtomic(join(this.dir, 'history.json'), JSON.stringify(this.records, null, 2)).catch((e) =>
      this.opts.logger.error({ err: errorMessage(e) }, 'cannot persist deployment history'),
    );
  }

  async saveLastGood(deploymentId: string): Promise<void> {
    const t = this.opts.kernel.currentTarget();
    const lg: LastGood = { savedAt: new Date().toISOString(), deploymentId, components: {} };
    for (const [name, c] of t)
      lg.components[name] = {
        version: c.version,
        config: c.config,
        times: c.times ?? {},
        root: c.root,
        ...(c.recipe.inline ? { inline: c.recipe } : {}),
      };
    await writeFileAtomic(this.lastGoodFile, JSON.stringify(lg, null, 2));
  }

  private componentsNow(): DeploymentRecord['components'] {
    return [...this.opts.kernel.components.values()]
      .map((c) => ({ name: c.name, version: c.version, state: c.service.state }))
      .sort((a, b) => a.name.localeCompare(b.name));
  }

  private async run(record: DeploymentRecord, req: DeploymentRequest): Promise<DeploymentRecord> {
    const { kernel, store, lifecycle } = this.opts;
    const log = this.opts.logger.child({ deploymentId: record.deploymentId });
    const progress = new Progress(`deployment ${record.deploymentId.slice(0, 8)}`, 4, log, { logEveryMs: 0 });
    if (this.closing) {
      record.status = 'FAILED';
      record.failureCause = 'the nucleus stopped before the deployment started';
      record.finishedOn = new Date().toISOString();
      await this.persist();
      return record;
    }
    record.status = 'IN_PROGRESS';
    await this.persist();
    const finish = async (status: DeploymentStatus, detailed: DetailedStatus, cause?: string, errorTypes?: string[]) => {
      record.status = status;
      record.detailedStatus = detailed;
      record.finishedOn = new Date().toISOString();
      if (cause) record.failureCause = cause;
      if (errorTypes) record.errorTypes = errorTypes;
      record.components = this.componentsNow();
      await this.persist();
      log.info({ status, detailed, cause }, 'deployment finished');
      return record;
    };

    // 1. resolve everything before touching what runs
    const prev = kernel.currentTarget();
    let target: Target;
    try {
      if (req.artifactDir && (!existsSync(req.artifactDir) || !statSync(req.artifactDir).isDirectory())) {
        throw new LoupeError('ARTIFACT_DIR', 'is not a directory', { input: req.artifactDir });
      }
      if (req.recipeDir) await store.importRecipeDir(req.recipeDir);
      const roots = new Map<string, string>();
      for (const c of prev.values()) if (c.root) roots.set(c.name, c.version);
      for (const r of req.remove ?? []) roots.delete(r);
      for (const [name, version] of Object.entries(req.merge ?? {})) roots.set(name, version);
      const inline = new Map([...prev.values()].filter((c) => c.recipe.inline).map((c) => [c.name, c.recipe]));
      const active = new Map([...prev.values()].map((c) => [c.name, c.version]));
      const resolved = await resolveComponents(roots, store, inline, active);
      for (const name of Object.keys(req.configurationUpdate ?? {})) {
        if (!resolved.has(name))
          throw new LoupeError('DEPLOYMENT_INVALID', 'has a configuration update but is not part of the deployment', { input: name });
      }
      const ts = Date.now();
      target = new Map();
      for (const [name, r] of resolved) {
        const cur = prev.get(name);
        const resolvedConfig = resolveDeploymentConfig(
          cur ? { config: cur.config, times: cur.times ?? {} } : undefined,
          r.recipe.defaultConfiguration,
          req.configurationUpdate?.[name],
          ts,
        );
        const { times } = resolvedConfig;
        // interpolateComponentConfiguration: system variables ({iot:thingName} and the like) in
        // configuration values, accessControl included, are filled in now, as the real
        // KernelConfigResolver does; otherwise values stay as written.
        const config =
          this.opts.interpolateConfiguration && !r.recipe.inline
            ? (interpolateSystemValues(resolvedConfig.config, kernel.variableContext(name, r.version)) as Record<string, unknown>)
            : resolvedConfig.config;
        const bytes = Buffer.byteLength(JSON.stringify(config));
        if (bytes > this.opts.maxConfigurationBytes) {
          throw new LoupeError(
            'CONFIG_TOO_LARGE',
            `its configuration would be ${bytes} bytes of JSON; at most ${this.opts.maxConfigurationBytes} (components read it whole over IPC)`,
            { input: name },
          );
        }
        target.set(name, { name, version: r.version, recipe: r.recipe, config, times, root: roots.has(name) });
      }
      for (const t of target.values()) {
        const fresh = prev.get(t.name)?.version !== t.version || (req.artifactDir !== undefined && req.merge?.[t.name] !== undefined);
        if (fresh) await store.prepareArtifacts(resolveForPlatform(t.recipe), req.artifactDir);
      }
      // Components that validate configuration changes get to veto them now.
      const changed = new Map<string, Record<string, unknown>>();
      for (const t of target.values()) {
        const cur = prev.get(t.name);
        if (cur && !isDeepStrictEqual(cur.config, t.config)) changed.set(t.name, t.config);
      }
      const veto = await this.opts.validator.validate(
        record.deploymentId,
        changed,
        (req.configurationValidationPolicy?.timeoutSeconds ?? 30) * 1000,
      );
      if (veto) throw new LoupeError('CONFIG_REJECTED', veto, { input: 'configuration validation' });
      progress.update(1, { stage: 'resolved' });
    } catch (e) {
      return finish('FAILED', 'FAILED_NO_STATE_CHANGE', errorMessage(e), [(e as LoupeError).code ?? 'DEPLOYMENT_FAILURE']);
    }

    // 2. tell the components and honour deferrals
    const action = req.componentUpdatePolicy?.action ?? 'NOTIFY_COMPONENTS';
    if (action === 'NOTIFY_COMPONENTS') {
      record.deferrals = await lifecycle.preUpdate(record.deploymentId, (req.componentUpdatePolicy?.timeoutSeconds ?? 60) * 1000, (m) =>
        log.info(m),
      );
      await this.persist();
    }
    progress.update(2, { stage: 'notified' });
    if (this.closing)
      return finish('FAILED', 'FAILED_NO_STATE_CHANGE', 'the nucleus stopped before the deployment was applied', ['NUCLEUS_STOPPING']);

    // 3. apply and wait for health
    const healthMs = (req.healthTimeoutSeconds ?? 120) * 1000;
    const stableMs = (req.healthStableSeconds ?? 1) * 1000;
    try {
      await kernel.apply(target);
      progress.update(3, { stage: 'applied' });
      await kernel.waitHealthy([...target.keys()], healthMs, stableMs);
    } catch (e) {
      const cause = errorMessage(e);
      log.warn({ cause }, 'deployment failed');
      if ((req.failureHandlingPolicy ?? 'ROLLBACK') === 'DO_NOTHING')
        return finish('FAILED', 'FAILED_ROLLBACK_NOT_REQUESTED', cause, ['COMPONENT_UNHEALTHY']);
      try {
        await kernel.apply(prev);
        await kernel.waitHealthy([...prev.keys()], healthMs, stableMs);
      } catch (re) {
        record.rollbackError = errorMessage(re);
        log.error({ err: record.rollbackError }, 'rollback did not bring the previous components back to health');
      }
      return finish('FAILED', 'FAILED_ROLLBACK_COMPLETE', cause, ['COMPONENT_UNHEALTHY']);
    }

    // 4. done
    await this.saveLastGood(record.deploymentId);
    if (action === 'NOTIFY_COMPONENTS') lifecycle.postUpdate(record.deploymentId);
    progress.finish({ stage: 'succeeded' });
    return finish('SUCCEEDED', 'SUCCESSFUL');
  }
}
