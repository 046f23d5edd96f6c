import { randomInt } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { isDeepStrictEqual } from 'node:util';
import type { Authorizer } from '../authorization.js';
import { resolveForPlatform, type Lifecycle, type PlatformRecipe, type Recipe } from '../componentmanager/recipe.js';
import type { ComponentStore } from '../componentmanager/store.js';
import { interpolate, type ComponentPaths, type VariableContext } from '../componentmanager/variables.js';
import type { ConfigStore } from '../config/store.js';
import { BUILTIN_COMPONENTS, topoOrder } from '../deployment/resolve.js';
import { ComponentService, type ServiceHost, type State } from './service.js';
import type { LogRotation } from './rotating-log.js';
import { resolveRunAs, type ResolvedRunAs } from './runwith.js';

/**
 * The set of running components (the real nucleus's Kernel + KernelConfigResolver): turns a
 * target — components at versions with their configuration — into running services. It builds
 * each component's environment and lifecycle (recipe variables resolved), diffs the target
 * against what runs, stops what goes away or changes (dependents first), updates configuration
 * (which notifies subscribers of running components without restarting them) and starts what is
 * new or changed (dependencies first, each waiting for its dependencies to be RUNNING/FINISHED).
 */
export interface TargetComponent {
  name: string;
  version: string;
  recipe: Recipe;
  config: Record<string, unknown>;
  /** Per-leaf modification times of `config` (see ConfigStore). */
  times?: Record<string, number>;
  /** Asked for by a deployment (rather than pulled in as a dependency). */
  root: boolean;
}

export type Target = Map<string, TargetComponent>;

export interface DeployedComponent extends TargetComponent {
  platformRecipe: PlatformRecipe;
  service: ComponentService;
  fingerprint: string;
}

export interface KernelOptions {
  root: string;
  thingName: string;
  region: string;
  logger: Logger;
  store: ComponentStore;
  config: ConfigStore;
  authz: Authorizer;
  socketPath: () => string;
  tesUri: () => string;
  errorResetTimeMs: number;
  killGraceMs: number;
  /** Component log rotation (default 1 MiB per file, 10 MiB per component, as Greengrass). */
  logRotation?: LogRotation;
  /** Extra environment for every component (after the nucleus's own). */
  env?: Record<string, string>;
  /** Called when a component is removed (drop its IPC connections). */
  onRemoved?(name: string): void;
  /** runWithDefault.posixUser: who components run as when the nucleus is root. */
  posixUser: string;
  /** GG_ROOT_CA_PATH ("" when the device has no CA configured, as the real nucleus). */
  rootCaPath?: string;
  /** GGC_VERSION: the nucleus version this one stands in for. */
  nucleusVersion: string;
  /** A script's process group started or ended (recorded under the root to reap after a crash). */
  onProcessGroup?(pgid: number, startTime: string | undefined, alive: boolean): void;
}

const TOKEN_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';
const TES = 'aws.greengrass.TokenExchangeService';

export const CLI_PRINCIPAL = 'greengrass-cli';

export class Kernel implements ServiceHost {
  readonly events = new EventEmitter();
  readonly components = new Map<string, DeployedComponent>();
  readonly logger: Logger;
  errorResetTimeMs: number;
  killGraceMs: number;
  readonly onProcessGroup: KernelOptions['onProcessGroup'];
  private readonly tokens = new Map<string, string>(); // token -> principal
  private readonly runAsCache = new Map<string, ResolvedRunAs | undefined>();
  private readonly tokenOf = new Map<string, string>(); // principal -> token
  /**
   * Whether TES has started. The real TES writes its address into the nucleus-wide `setenv`
   * when it starts, and it starts only when the running set needs it (a component depends on
   * it, or `main` lists it); every process started after that gets AWS_CONTAINER_CREDENTIALS_FULL_URI.
   * The address stays after TES is removed again, as it does in the real nucleus's configuration.
   */
  private tesStarted = false;

  constructor(private readonly opts: KernelOptions) {
    this.logger = opts.logger;
    this.errorResetTimeMs = opts.errorResetTimeMs;
    this.killGraceMs = opts.killGraceMs;
    this.onProcessGroup = opts.onProcessGroup;
    this.events.setMaxListeners(0);
  }

  /** Who a component's scripts run as (undefined: as the nucleus's own user). Throws for an unknown user. */
  runAsFor(posixUser: string | undefined, name: string): ResolvedRunAs | undefined {
    const spec = posixUser ?? this.opts.posixUser;
    if (!this.runAsCache.has(spec)) this.runAsCache.set(spec, resolveRunAs(spec, `runWith of ${name}`));
    return this.runAsCache.get(spec);
  }

  /** The SVCUID of a principal: random, stable for this nucleus run (16 upper-case letters and digits, as Greengrass). */
  tokenFor(principal: string): string {
    let t = this.tokenOf.get(principal);
    if (!t) {
      t = Array.from({ length: 16 }, () => TOKEN_ALPHABET[randomInt(TOKEN_ALPHABET.length)]).join('');
      this.tokenOf.set(principal, t);
      this.tokens.set(t, principal);
    }
    return t;
  }

  principalOf(token: string): string | undefined {
    return this.tokens.get(token);
  }

  /** Whether a deployed component depends on a built-in one (aws.greengrass.Cli, say). */
  usesBuiltin(name: string): boolean {
    for (const c of this.components.values()) if (c.recipe.dependencies[name]) return true;
    return false;
  }

  /** A component's state; built-in components are always RUNNING. */
  stateOf(name: string): State | undefined {
    if (BUILTIN_COMPONENTS[name]) return 'RUNNING';
    return this.components.get(name)?.service.state;
  }

  paths(name: string, version: string, config: Record<string, unknown>): ComponentPaths {
    return {
      artifactsPath: this.opts.store.artifactsPath(name, version),
      decompressedPath: this.opts.store.unarchivedPath(name, version),
      workPath: join(this.opts.root, 'work', name),
      configuration: config,
    };
  }

  /** Recipe-variable context of a component (system variables and its own folders). */
  variableContext(name: string, version: string): VariableContext {
    return {
      componentName: name,
      rootPath: this.opts.root,
      thingName: this.opts.thingName,
      ...this.paths(name, version, {}),
      dependencies: new Map(),
    };
  }

  logFile(name: string): string {
    return join(this.opts.root, 'logs', `${name}.log`);
  }

  /** What runs now, as a target (for rollback and persistence). */
  currentTarget(): Target {
    const t: Target = new Map();
    for (const c of this.components.values()) {
      t.set(c.name, {
        name: c.name,
        version: c.version,
        recipe: c.recipe,
        config: this.opts.config.get(c.name) ?? c.config,
        times: this.opts.config.times(c.name),
        root: c.root,
      });
    }
    return t;
  }

  /** Resolve lifecycle and environment for one component of a target. */
  private build(
    t: TargetComponent,
    target: Target,
  ): { platformRecipe: PlatformRecipe; lifecycle: Lifecycle; env: Record<string, string>; fingerprint: string } {
    const platformRecipe = resolveForPlatform(t.recipe);
    const deps = new Map<string, ComponentPaths>();
    for (const dep of Object.keys(t.recipe.dependencies)) {
      const d = target.get(dep);
      if (d) deps.set(dep, this.paths(d.name, d.version, d.config));
    }
    const ctx: VariableContext = {
      componentName: t.name,
      rootPath: this.opts.root,
      thingName: this.opts.thingName,
      ...this.paths(t.name, t.version, t.config),
      dependencies: deps,
    };
    const unresolved = new Set<string>();
    // Inline (init-config) components run as written: Greengrass interpolates only deployed recipes.
    const ip = t.recipe.inline ? (s: string) => s : (s: string) => interpolate(s, ctx, (v) => unresolved.add(v));
    const lc = platformRecipe.lifecycle;
    const lifecycle: Lifecycle = {
      setenv: Object.fromEntries(Object.entries(lc.setenv).map(([k, v]) => [k, ip(v)])),
      steps: Object.fromEntries(
        Object.entries(lc.steps).map(([k, s]) => [
          k,
          { ...s, script: ip(s.script), setenv: Object.fromEntries(Object.entries(s.setenv).map(([ek, ev]) => [ek, ip(ev)])) },
        ]),
      ),
    };
    if (unresolved.size) this.logger.warn({ component: t.name, variables: [...unresolved] }, 'recipe variables left unresolved');
    const env: Record<string, string> = { ...lifecycle.setenv };
    const fingerprint = JSON.stringify({ version: t.version, lifecycle, env });
    return { platformRecipe, lifecycle, env, fingerprint };
  }

  /**
   * A component's environment, as the real nucleus builds it: the nucleus's own environment,
   * HOME of the nucleus's user (sudo -H then sets the component user's), the nucleus `setenv`
   * values (region, thing name, socket, FIPS flags, GGC_VERSION, and the TES address once TES
   * has started: see `tesFor`), the component's token, GG_ROOT_CA_PATH, then the lifecycle's Setenv.
   */
  private environment(name: string, extra: Record<string, string>, tes: boolean): NodeJS.ProcessEnv {
    const token = this.tokenFor(name);
    const socket = this.opts.socketPath();
    let home = process.env.HOME;
    try {
      home = userInfo().homedir;
    } catch {
      /* no passwd entry: keep $HOME */
    }
    return {
      ...process.env,
      ...(home ? { HOME: home } : {}),
      AWS_REGION: this.opts.region,
      AWS_DEFAULT_REGION: this.opts.region,
      AWS_IOT_THING_NAME: this.opts.thingName,
      AWS_GG_FIPS_MODE: 'false',
      AWS_USE_FIPS_ENDPOINT: 'false',
      GGC_VERSION: this.opts.nucleusVersion,
      AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH: socket,
      AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH_FOR_COMPONENT: socket,
      ...(tes ? { AWS_CONTAINER_CREDENTIALS_FULL_URI: this.opts.tesUri() } : {}),
      // The token is always set (ShellRunner does it for every script), TES or not.
      SVCUID: token,
      AWS_CONTAINER_AUTHORIZATION_TOKEN: token,
      GG_ROOT_CA_PATH: this.opts.rootCaPath ?? '',
      ...(this.opts.env ?? {}),
      ...extra,
    };
  }

  /** Whether TES runs with `target`: some component depends on it (HARD or SOFT), or `main` names it. */
  private needsTes(target: Target, builtinRoots: readonly string[]): boolean {
    return builtinRoots.includes(TES) || [...target.values()].some((t) => t.recipe.dependencies[TES] !== undefined);
  }

  /**
   * Which components of `target`, started now, get the TES address. Once TES has started, all of
   * them. When this target is what starts TES, the real nucleus starts TES side by side with
   * everything that does not wait for it, so only components that wait for it (a HARD dependency
   * on TES, directly or through other HARD dependencies) are sure to get the address; the
   * others race TES's start-up and often lose. loupe settles that race one way: they never get
   * it (until a later deployment restarts them), so a component missing its TES dependency
   * fails here rather than now and then on a device.
   */
  private tesFor(target: Target, builtinRoots: readonly string[]): (name: string) => boolean {
    if (this.tesStarted) return () => true;
    if (!this.needsTes(target, builtinRoots)) return () => false;
    const waits = new Map<string, boolean>();
    const waitsForTes = (name: string): boolean => {
      const known = waits.get(name);
      if (known !== undefined) return known;
      waits.set(name, false); // a cycle waits for nothing (topoOrder refuses cycles anyway)
      const hard = Object.entries(target.get(name)?.recipe.dependencies ?? {}).filter(([, d]) => d.type === 'HARD');
      const r = hard.some(([dep]) => dep === TES || waitsForTes(dep));
      waits.set(name, r);
      return r;
    };
    return waitsForTes;
  }

  /**
   * Make `target` what runs. Returns the names that were (re)started. Artefacts must already be
   * in the store. Throws on recipe problems before anything is stopped. `builtinRoots`: built-in
   * components `main` lists (an init config's `main` may name TES itself).
   */
  async apply(target: Target, builtinRoots: readonly string[] = []): Promise<{ started: string[]; stopped: string[]; removed: string[] }> {
    const order = topoOrder(target);
    const built = new Map<string, ReturnType<Kernel['build']>>();
    for (const name of order) built.set(name, this.build(target.get(name)!, target));

    const removed = [...this.components.keys()].filter((n) => !target.has(n));
    const restart = new Set<string>();
    for (const name of order) {
      const cur = this.components.get(name);
      if (cur && cur.fingerprint !== built.get(name)!.fingerprint) restart.add(name);
    }
    // A component restarts when a HARD dependency of it is restarted or replaced.
    let grew = true;
    while (grew) {
      grew = false;
      for (const name of order) {
        if (restart.has(name) || !this.components.has(name)) continue;
        const hard = Object.entries(target.get(name)!.recipe.dependencies)
          .filter(([, d]) => d.type === 'HARD')
          .map(([n]) => n);
        if (hard.some((d) => restart.has(d) || (!this.components.has(d) && target.has(d)))) {
          restart.add(name);
          grew = true;
        }
      }
    }

    // Stop dependents before their dependencies.
    const currentOrder = topoOrder(new Map([...this.components].map(([k, v]) => [k, { recipe: v.recipe }])));
    const toStop = currentOrder.filter((n) => removed.includes(n) || restart.has(n)).reverse();
    for (const name of toStop) {
      const c = this.components.get(name)!;
      await c.service.close();
      this.components.delete(name);
      if (removed.includes(name)) {
        this.opts.authz.removeComponent(name);
        this.opts.config.remove(name);
        this.opts.onRemoved?.(name);
      }
    }

    // Configuration first, so that running components see their updates and new ones start with it.
    for (const name of order) {
      const t = target.get(name)!;
      const cur = this.opts.config.get(name);
      if (!cur || !isDeepStrictEqual(cur, t.config)) this.opts.config.replace(name, t.config, t.times);
      const problems = this.opts.authz.setComponentPolicies(name, t.config.accessControl);
      for (const p of problems) this.logger.warn({ component: name }, p);
    }

    const started: string[] = [];
    const tes = this.tesFor(target, builtinRoots);
    for (const name of order) {
      const t = target.get(name)!;
      const b = built.get(name)!;
      const existing = this.components.get(name);
      if (existing) {
        // Unchanged lifecycle: keep running; record the new recipe object and config. A BROKEN
        // component gets another chance with every deployment that keeps it, as in Greengrass.
        existing.recipe = t.recipe;
        existing.config = t.config;
        existing.root = t.root;
        if (existing.service.state === 'BROKEN') existing.service.restart();
        continue;
      }
      const runAs = this.runAsFor(t.recipe.inline?.posixUser, name);
      const versioned = !t.recipe.inline || t.recipe.inline.versioned;
      const service = new ComponentService(
        {
          name,
          version: t.version,
          lifecycle: b.lifecycle,
          env: this.environment(name, b.env, tes(name)),
          workDir: join(this.opts.root, 'work', name),
          logFile: this.logFile(name),
          ...(this.opts.logRotation ? { logRotation: this.opts.logRotation } : {}),
          dependencies: Object.entries(t.recipe.dependencies).map(([n, d]) => ({ name: n, type: d.type })),
          ...(runAs ? { runAs } : {}),
          ...(versioned
            ? { artifactDirs: [this.opts.store.artifactsPath(name, t.version), this.opts.store.unarchivedPath(name, t.version)] }
            : {}),
        },
        this,
      );
      this.components.set(name, { ...t, platformRecipe: b.platformRecipe, service, fingerprint: b.fingerprint });
      started.push(name);
    }
    if (this.needsTes(target, builtinRoots)) this.tesStarted = true;
    for (const name of started) this.components.get(name)!.service.start();
    return { started, stopped: toStop, removed };
  }

  /**
   * Wait until every named component has been RUNNING or FINISHED for `stableMs` without a
   * break; reject as soon as one turns BROKEN, or when `timeoutMs` runs out. The stability window
   * stands in for the real deployment's one-second polling, which is what lets it notice a Run
   * script that crashes right after starting.
   */
  async waitHealthy(names: string[], timeoutMs: number, stableMs = 1000): Promise<void> {
    const services = names.map((n) => this.components.get(n)?.service).filter((s): s is ComponentService => !!s);
    const healthy = () => services.every((s) => s.state === 'RUNNING' || s.state === 'FINISHED');
    const broken = () => services.find((s) => s.state === 'BROKEN');
    await new Promise<void>((resolve, reject) => {
      let stableTimer: NodeJS.Timeout | undefined;
      const check = () => {
        const b = broken();
        if (b) {
          done();
          reject(new Error(`${b.name} is BROKEN: ${b.statusReason}`));
        } else if (healthy()) {
          stableTimer ??= setTimeout(() => {
            done();
            resolve();
          }, stableMs);
        } else if (stableTimer) {
          clearTimeout(stableTimer);
          stableTimer = undefined;
        }
      };
      const timer = setTimeout(() => {
        done();
        const notYet = services.filter((s) => s.state !== 'RUNNING' && s.state !== 'FINISHED').map((s) => `${s.name} is ${s.state}`);
        reject(new Error(`components not RUNNING within ${timeoutMs / 1000} s: ${notYet.join(', ') || 'none stayed up'}`));
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        if (stableTimer) clearTimeout(stableTimer);
        this.events.off('state', check);
      };
      this.events.on('state', check);
      check();
    });
  }

  /** Stop every component (dependents first). */
  async stopAll(): Promise<void> {
    const order = topoOrder(new Map([...this.components].map(([k, v]) => [k, { recipe: v.recipe }]))).reverse();
    for (const name of order) await this.components.get(name)?.service.close();
    this.components.clear();
  }
}
