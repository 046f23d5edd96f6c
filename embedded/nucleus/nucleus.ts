/**
 * loupe's local Greengrass nucleus: runs Greengrass v2 components on one machine and speaks the
 * real IPC wire protocol, so components use aws-iot-device-sdk-v2's `greengrasscoreipc` client
 * unchanged.
 *
 * ## API summary (for `loupe edge up`, the cloud loop's republish, the demo)
 *
 *   import { Nucleus } from './embedded/nucleus/nucleus.js';
 *   const nucleus = new Nucleus({ root: '/tmp/gg', thingName: 'line-1-cam' });  // more options below
 *   await nucleus.start();            // IPC socket, TES, IoT Core bridge; restores the last good deployment
 *   const rec = await nucleus.deploy({
 *     recipeDir: 'greengrass-build/recipes',           // *.json/*.yaml recipes (copied into the store)
 *     artifactDir: 'greengrass-build/artifacts',       // <dir>/<name>/<version>/<file>
 *     merge: { 'loupe.Camera': '1.0.0' },              // root components to add / move to a version
 *     remove: ['old.Component'],
 *     configurationUpdate: { 'loupe.Camera': { merge: { fps: 5 }, reset: ['/roi'] } },
 *     failureHandlingPolicy: 'ROLLBACK',               // default; or DO_NOTHING
 *     componentUpdatePolicy: { action: 'NOTIFY_COMPONENTS', timeoutSeconds: 60 },
 *     healthTimeoutSeconds: 120,                      // components must be RUNNING/FINISHED by then...
 *     healthStableSeconds: 1,                          // ...and stay so this long (early crashes fail)
 *     configurationValidationPolicy: { timeoutSeconds: 30 },
 *   });
 *   rec.status            // 'SUCCEEDED' | 'FAILED'; rec.detailedStatus, rec.failureCause, rec.components
 *   nucleus.status()      // { components: [{name, version, state, root}], socketPath, tesUri, mqttUrl, ... }
 *   nucleus.logFile('loupe.Camera') / await nucleus.readLog('loupe.Camera')
 *   await nucleus.waitForState('loupe.Camera', 'RUNNING', 30_000)
 *   nucleus.on('state', (name, state, prev) => ...)
 *   await nucleus.stop();             // stops components (Shutdown steps), servers, bridge
 *
 * Deployments are queued and run one at a time; `deploy()` resolves when it has succeeded or
 * rolled back (it never throws for a component's failure: read rec.status). A failure before
 * anything changed (bad recipe, unresolvable versions, digest mismatch, rejected configuration)
 * is FAILED_NO_STATE_CHANGE; a component that goes BROKEN or is not up in time makes it
 * FAILED_ROLLBACK_COMPLETE (previous versions and configuration restored). `submitDeployment()` returns the id at once (what CreateLocalDeployment does).
 * Another process reaches a running nucleus through the Greengrass CLI's own route:
 * `embedded/nucleus/cli-client.ts` (IPC CreateLocalDeployment / GetLocalDeploymentStatus /
 * ListComponents with the token in <root>/cli_ipc_info), used by `loupe nucleus deploy|status`.
 *
 * ## What a component gets (as on a real core device)
 *  - env: SVCUID and AWS_CONTAINER_AUTHORIZATION_TOKEN (same random token),
 *    AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH_FOR_COMPONENT (the IPC socket),
 *    AWS_CONTAINER_CREDENTIALS_FULL_URI (TES; http://localhost:<port>/2016-11-01/credentialprovider/)
 *    once TES has started: only for components that depend on it in the deployment that starts it,
 *    for all started later (lifecycle/kernel.ts `tesFor`),
 *    AWS_IOT_THING_NAME, AWS_REGION, AWS_DEFAULT_REGION, GG_ROOT_CA_PATH, plus Lifecycle Setenv.
 *  - cwd <root>/work/<name>; stdout+stderr appended to <root>/logs/<name>.log.
 *  - artefacts in <root>/packages/artifacts/<name>/<version>/, ZIPs unpacked under
 *    <root>/packages/artifacts-unarchived/<name>/<version>/<zip name>/.
 *  - IPC: PublishToTopic/SubscribeToTopic, PublishToIoTCore/SubscribeToIoTCore,
 *    GetConfiguration/UpdateConfiguration/SubscribeToConfigurationUpdate,
 *    SubscribeToValidateConfigurationUpdates/SendConfigurationValidityReport, UpdateState,
 *    SubscribeToComponentUpdates/DeferComponentUpdate, GetComponentDetails/ListComponents/
 *    RestartComponent/StopComponent and the local-deployment operations. pubsub and mqttproxy
 *    calls need accessControl policies in the recipe's DefaultConfiguration; the CLI operations
 *    need an aws.greengrass.Cli policy.
 *
 * Layout of the nucleus: ipc/ (framing, RPC, server), authorization.ts, componentmanager/
 * (recipes, store, variables), config/, lifecycle/ (services, kernel, lifecycle IPC),
 * deployment/, pubsub/, mqttproxy/ (IoT Core bridge with an on-disk spool), tes.ts.
 */
import { EventEmitter } from 'node:events';
import { existsSync, readFileSync } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import { hostname, userInfo } from 'node:os';
import { join, resolve } from 'node:path';
import { pino, type Logger } from 'pino';
import { errorMessage, LoupeError } from '../../lib/errors.js';
import { writeFileAtomic } from '../../lib/fsutil.js';
import type { EmbeddedBroker } from '../broker/broker.js';
import { Authorizer } from './authorization.js';
import { ComponentStore } from './componentmanager/store.js';
import { ConfigValidator, registerConfigIpc } from './config/ipc.js';
import { ConfigStore } from './config/store.js';
import { registerCliIpc } from './deployment/cli-ipc.js';
import { DeploymentManager, type DeploymentRecord, type DeploymentRequest } from './deployment/deployment.js';
import { IpcServer, type IpcStats } from './ipc/server.js';
import type { ConnectionLimits } from './ipc/rpc.js';
import { DEFAULT_MAX_CONFIGURATION_BYTES } from './config/store.js';
import { LifecycleIpc } from './lifecycle/ipc.js';
import { CLI_PRINCIPAL, Kernel } from './lifecycle/kernel.js';
import type { State } from './lifecycle/service.js';
import type { IotCoreBridge } from './mqttproxy/bridge.js';
import { registerMqttProxy } from './mqttproxy/mqttproxy.js';
import { LocalPubSub } from './pubsub/pubsub.js';
import { NO_CREDENTIALS, TokenExchangeService, type Credentials, type CredentialsProvider } from './tes.js';
import { DEFAULT_LOG_ROTATION, type LogRotation } from './lifecycle/rotating-log.js';
import { registerAuthorizationIpc } from './authorization-ipc.js';
import type { Recipe } from './componentmanager/recipe.js';
import { BUILTIN_COMPONENTS } from './deployment/resolve.js';
import type { InitConfig } from './initconfig.js';
import type { Target } from './lifecycle/kernel.js';
import { ensureReachable, prepareRootLayout, ProcessGroupRecord } from './lifecycle/root.js';
import { DEFAULT_POSIX_USER, isRoot } from './lifecycle/runwith.js';
import { registerComponentMetricIpc } from './telemetry/metric-ipc.js';

function userName(): string {
  try {
    return userInfo().username;
  } catch {
    return String(process.getuid?.() ?? '?');
  }
}

export type { DeploymentRecord, DeploymentRequest } from './deployment/deployment.js';
export type { State } from './lifecycle/service.js';
export type { Credentials, CredentialsProvider } from './tes.js';

export interface NucleusOptions {
  /** The nucleus root (packages/, work/, logs/, config/, deployments/, ipc.socket). */
  root: string;
  /** AWS_IOT_THING_NAME and the MQTT client id; default "loupe-<hostname>". */
  thingName?: string;
  /** AWS_REGION for components; default $AWS_REGION or us-east-1. */
  region?: string;
  /**
   * IoT Core stand-in: a broker URL (mqtt://host:port), `false` for none, or undefined to start
   * an embedded aedes broker on a free port (see `mqttUrl`).
   */
  mqttUrl?: string | false;
  /** Spool QoS 0 IoT Core messages while offline too (Greengrass drops them by default). */
  keepQos0WhenOffline?: boolean;
  /** What TES vends; default: the local stack's fixed key pair. */
  credentials?: Credentials | CredentialsProvider;
  /** Where the nucleus logs; default pino JSON to <root>/logs/greengrass.log. */
  logger?: Logger;
  /** Errors are counted toward BROKEN within this window (default 3600 s, as Greengrass). */
  errorResetTimeSeconds?: number;
  /** SIGTERM -> SIGKILL grace when stopping a component's processes (default 5000 ms). */
  killGraceMs?: number;
  /** Extra environment for every component. */
  env?: Record<string, string>;
  /** Start the last good deployment's components on start (default true). */
  restore?: boolean;
  /** Port for TES (default: a free one). */
  tesPort?: number;
  /** Component log rotation, Greengrass's `logging` keys (default 1024 KB per file, 10240 KB in all per component). */
  logging?: Partial<LogRotation>;
  /**
   * runWithDefault.posixUser ("user" or "user:group", default ggc_user:ggc_group): who components
   * run as when the nucleus runs as root (through sudo, as Greengrass). Not root: as the
   * nucleus's own user, said once in the log.
   */
  posixUser?: string;
  /** interpolateComponentConfiguration: fill in system variables in deployed configuration (accessControl too). */
  interpolateComponentConfiguration?: boolean;
  /** GG_ROOT_CA_PATH for components ("" when unset, as a device without a CA). */
  rootCaPath?: string;
  /** GGC_VERSION for components: the nucleus version this one stands in for. */
  nucleusVersion?: string;
  /**
   * Components defined in the nucleus configuration (`--init-config`): started at start-up in
   * place of the last deployment, as the real nucleus starts the services of its config file.
   */
  initialComponents?: { recipes: Recipe[]; roots: string[] };
  /** IPC limits: Connect deadline, pre-Connect message size, streams and queued output per connection, connections. */
  ipc?: { limits?: Partial<ConnectionLimits>; maxConnections?: number };
  /** Largest configuration a component may have, as JSON (default 8 MiB): bigger deployments fail before anything changes. */
  maxConfigurationBytes?: number;
}

export interface ComponentStatus {
  name: string;
  version: string;
  state: State;
  root: boolean;
}

export interface NucleusStatus {
  root: string;
  thingName: string;
  pid: number;
  socketPath: string;
  tesUri: string;
  mqttUrl: string | null;
  mqttConnected: boolean;
  mqttSpooled: number;
  components: ComponentStatus[];
  lastDeployment?: DeploymentRecord;
}

/** <root>/cli_ipc_info: how the CLI (another process) reaches this nucleus. */
export interface CliIpcInfo {
  cli_auth_token: string;
  domain_socket_path: string;
  pid: number;
}

/** Nucleus options from the real nucleus's configuration file (see initconfig.ts); `overrides` win. */
export function optionsFromInitConfig(cfg: InitConfig, overrides: Partial<NucleusOptions> = {}): NucleusOptions {
  const root = overrides.root ?? cfg.rootPath;
  if (!root)
    throw new LoupeError('NUCLEUS_ROOT', 'no root: give --root or system.rootpath in the configuration file', { input: cfg.source });
  return {
    ...(cfg.thingName ? { thingName: cfg.thingName } : {}),
    ...(cfg.region ? { region: cfg.region } : {}),
    ...(cfg.posixUser ? { posixUser: cfg.posixUser } : {}),
    interpolateComponentConfiguration: cfg.interpolateComponentConfiguration,
    ...(cfg.rootCaPath ? { rootCaPath: cfg.rootCaPath } : {}),
    ...(cfg.nucleusVersion ? { nucleusVersion: cfg.nucleusVersion } : {}),
    ...(cfg.logging ? { logging: cfg.logging } : {}),
    // A device without cloud settings is offline; iotDataEndpoint points the bridge at a broker.
    mqttUrl: cfg.iotDataEndpoint ?? false,
    initialComponents: { recipes: cfg.components, roots: cfg.roots },
    ...overrides,
    ...{ root },
  };
}

export class Nucleus extends EventEmitter {
  readonly root: string;
  readonly thingName: string;
  readonly region: string;
  readonly logger: Logger;
  private readonly ownLogger: boolean;
  private readonly store: ComponentStore;
  private readonly config = new ConfigStore();
  private readonly authz = new Authorizer();
  private readonly kernel: Kernel;
  private readonly ipc: IpcServer;
  private readonly tes: TokenExchangeService;
  private readonly lifecycleIpc: LifecycleIpc;
  private readonly pubsub: LocalPubSub;
  private readonly validator = new ConfigValidator();
  private deployments!: DeploymentManager;
  private bridge: IotCoreBridge | undefined;
  private broker: EmbeddedBroker | undefined;
  private started = false;
  private stopping: Promise<void> | undefined;
  private saveTimer: NodeJS.Timeout | undefined;
  private mqttUrlResolved: string | null = null;
  private readonly groups: ProcessGroupRecord;

  constructor(private readonly opts: NucleusOptions) {
    super();
    if (!opts.root) throw new LoupeError('NUCLEUS_ROOT', 'a root directory is required', { input: 'root' });
    this.root = resolve(opts.root);
    this.thingName = opts.thingName ?? `loupe-${hostname().replace(/[^A-Za-z0-9_-]/g, '-')}`;
    if (!/^[A-Za-z0-9:_-]{1,128}$/.test(this.thingName)) {
      throw new LoupeError('NUCLEUS_THING', `must be 1-128 of letters, digits, ":", "_" and "-", got "${this.thingName}"`, {
        input: 'thing name',
      });
    }
    this.region = opts.region ?? process.env.AWS_REGION ?? 'us-east-1';
    this.ownLogger = !opts.logger;
    this.logger =
      opts.logger ??
      pino(
        { name: 'nucleus', level: process.env.LOUPE_LOG_LEVEL ?? 'info', timestamp: pino.stdTimeFunctions.isoTime },
        pino.destination({ dest: join(this.root, 'logs', 'greengrass.log'), mkdir: true, sync: false }),
      );
    this.store = new ComponentStore(this.root);
    this.ipc = new IpcServer({
      socketPath: join(this.root, 'ipc.socket'),
      authenticate: (t) => this.kernel.principalOf(t),
      logger: this.logger.child({ module: 'ipc' }),
      ...(opts.ipc?.limits ? { limits: opts.ipc.limits } : {}),
      ...(opts.ipc?.maxConnections !== undefined ? { maxConnections: opts.ipc.maxConnections } : {}),
    });
    const creds = opts.credentials ?? NO_CREDENTIALS;
    this.tes = new TokenExchangeService({
      isValidToken: (t) => {
        const p = this.kernel.principalOf(t);
        return p !== undefined && p !== CLI_PRINCIPAL;
      },
      credentials: typeof creds === 'function' ? creds : () => creds,
      logger: this.logger.child({ module: 'tes' }),
      ...(opts.tesPort !== undefined ? { port: opts.tesPort } : {}),
    });
    this.kernel = new Kernel({
      root: this.root,
      thingName: this.thingName,
      region: this.region,
      logger: this.logger.child({ module: 'lifecycle' }),
      store: this.store,
      config: this.config,
      authz: this.authz,
      socketPath: () => this.ipc.connectPath,
      tesUri: () => this.tes.uri,
      errorResetTimeMs: (opts.errorResetTimeSeconds ?? 3600) * 1000,
      killGraceMs: opts.killGraceMs ?? 5000,
      logRotation: { ...DEFAULT_LOG_ROTATION, ...opts.logging },
      ...(opts.env ? { env: opts.env } : {}),
      onRemoved: (name) => this.ipc.disconnect(name),
      posixUser: opts.posixUser ?? DEFAULT_POSIX_USER,
      ...(opts.rootCaPath ? { rootCaPath: opts.rootCaPath } : {}),
      nucleusVersion: opts.nucleusVersion ?? BUILTIN_COMPONENTS['aws.greengrass.Nucleus']!,
      onProcessGroup: (pgid, startTime, alive) => this.groups.record(pgid, startTime, alive),
    });
    this.groups = new ProcessGroupRecord(join(this.root, 'config', 'process-groups.json'), this.logger.child({ module: 'lifecycle' }));
    this.kernel.events.on('state', (name: string, state: State, prev: State) => this.emit('state', name, state, prev));
    this.lifecycleIpc = new LifecycleIpc(this.kernel, this.authz, this.logger.child({ module: 'lifecycle-ipc' }));
    this.pubsub = new LocalPubSub(this.authz);
    this.pubsub.register(this.ipc);
    registerConfigIpc(this.ipc, this.config, opts.maxConfigurationBytes ?? DEFAULT_MAX_CONFIGURATION_BYTES);
    this.validator.register(this.ipc);
    this.lifecycleIpc.register(this.ipc);
    registerMqttProxy(this.ipc, this.authz, () => this.bridge);
    registerComponentMetricIpc(this.ipc, this.authz, this.logger.child({ module: 'metrics' }));
    registerAuthorizationIpc(this.ipc, (t) => this.kernel.principalOf(t) !== undefined && this.kernel.principalOf(t) !== CLI_PRINCIPAL);
    this.config.on('change', () => this.scheduleConfigSave());
  }

  get socketPath(): string {
    return this.ipc.connectPath;
  }

  get tesUri(): string {
    return this.tes.uri;
  }

  /** The IoT Core broker URL in use (the embedded one when none was given), or null. */
  get mqttUrl(): string | null {
    return this.mqttUrlResolved;
  }

  async start(): Promise<void> {
    if (this.started) return;
    await prepareRootLayout(this.root);
    await this.lockRoot();
    try {
      // Components a previous nucleus on this root left behind (it was killed) go first.
      this.groups.reap();
      const runAs = this.kernel.runAsFor(undefined, 'the nucleus');
      if (runAs) ensureReachable(this.root, runAs, this.logger);
      else if (!isRoot())
        this.logger.info(
          { user: userName(), posixUser: this.opts.posixUser ?? DEFAULT_POSIX_USER },
          'not running as root: components run as this user (runWithDefault.posixUser needs root)',
        );
      this.deployments = new DeploymentManager({
        root: this.root,
        kernel: this.kernel,
        store: this.store,
        lifecycle: this.lifecycleIpc,
        validator: this.validator,
        logger: this.logger.child({ module: 'deployment' }),
        interpolateConfiguration: this.opts.interpolateComponentConfiguration === true,
        maxConfigurationBytes: this.maxConfigurationBytes,
      });
      registerCliIpc(this.ipc, { kernel: this.kernel, deployments: this.deployments, authz: this.authz, config: this.config });
      await this.ipc.listen();
      await this.tes.start();
      if (this.opts.mqttUrl !== false) {
        if (this.opts.mqttUrl === undefined) {
          // Loaded only when used: an offline nucleus need not carry the MQTT stacks (~20 MiB).
          const { startBroker } = await import('../broker/broker.js');
          this.broker = await startBroker({ logger: this.logger.child({ module: 'broker' }) });
          this.mqttUrlResolved = this.broker.url;
        } else this.mqttUrlResolved = this.opts.mqttUrl;
        const { IotCoreBridge } = await import('./mqttproxy/bridge.js');
        this.bridge = new IotCoreBridge({
          url: this.mqttUrlResolved,
          clientId: this.thingName,
          spoolDir: join(this.root, 'mqtt-spool'),
          logger: this.logger.child({ module: 'mqttproxy' }),
          ...(this.opts.keepQos0WhenOffline ? { keepQos0WhenOffline: true } : {}),
        });
        await this.bridge.start();
      }
      const info: CliIpcInfo = {
        cli_auth_token: this.kernel.tokenFor(CLI_PRINCIPAL),
        domain_socket_path: this.ipc.connectPath,
        pid: process.pid,
      };
      // The CLI token lets its holder deploy anything: readable by the nucleus's user only.
      await writeFileAtomic(join(this.root, 'cli_ipc_info'), JSON.stringify(info), { mode: 0o600 });
      this.started = true;
      if (this.opts.initialComponents) await this.startInitialComponents(this.opts.initialComponents);
      else if (this.opts.restore !== false) await this.restore();
      this.logger.info(
        { root: this.root, thingName: this.thingName, socket: this.ipc.connectPath, tes: this.tes.uri, mqtt: this.mqttUrlResolved },
        'nucleus started',
      );
    } catch (e) {
      await this.shutdownServers();
      throw e;
    }
  }

  /** Deploy and wait for the outcome (SUCCEEDED, or FAILED after rollback). */
  async deploy(request: DeploymentRequest): Promise<DeploymentRecord> {
    const { done } = this.submitDeployment(request);
    return done;
  }

  /** Queue a deployment; the record comes back at once, `done` when it has finished. */
  submitDeployment(request: DeploymentRequest): { record: DeploymentRecord; done: Promise<DeploymentRecord> } {
    this.assertStarted();
    const r = this.deployments.submit(request);
    return { record: r.record, done: r.done.then((rec) => (this.emit('deployment', rec), rec)) };
  }

  deployment(id: string): DeploymentRecord | undefined {
    return this.deployments?.get(id);
  }

  listDeployments(): DeploymentRecord[] {
    return this.deployments?.list() ?? [];
  }

  status(): NucleusStatus {
    const last = this.deployments?.list().at(-1);
    return {
      root: this.root,
      thingName: this.thingName,
      pid: process.pid,
      socketPath: this.ipc.connectPath,
      tesUri: this.started ? this.tes.uri : '',
      mqttUrl: this.mqttUrlResolved,
      mqttConnected: this.bridge?.connected ?? false,
      mqttSpooled: this.bridge?.spoolLength ?? 0,
      components: [...this.kernel.components.values()]
        .map((c) => ({ name: c.name, version: c.version, state: c.service.state, root: c.root }))
        .sort((a, b) => a.name.localeCompare(b.name)),
      ...(last ? { lastDeployment: last } : {}),
    };
  }

  /** The component's current configuration (undefined if not deployed). */
  configuration(name: string): Record<string, unknown> | undefined {
    return this.config.get(name);
  }

  logFile(name: string): string {
    return this.kernel.logFile(name);
  }

  async readLog(name: string): Promise<string> {
    const f = this.logFile(name);
    return existsSync(f) ? readFile(f, 'utf8') : '';
  }

  /** Resolve when `name` is in `state` (rejects after timeoutMs). */
  async waitForState(name: string, state: State | State[], timeoutMs = 60_000): Promise<State> {
    const want = Array.isArray(state) ? state : [state];
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const c = this.kernel.components.get(name);
      if (c) return c.service.waitFor((s) => want.includes(s), Math.max(1, deadline - Date.now()));
      if (Date.now() > deadline) throw new Error(`${name} is not deployed`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Restart one component (a BROKEN one is reinstalled). */
  restartComponent(name: string): void {
    const c = this.kernel.components.get(name);
    if (!c) throw new LoupeError('COMPONENT_NOT_FOUND', 'is not deployed', { input: name });
    c.service.restart();
  }

  /** IPC connections open right now (tests, status). */
  get ipcConnections(): number {
    return this.ipc.connectionCount;
  }

  /** What the IPC limits did (refused connections and streams, slow streams ended, peak queued output). */
  get ipcStats(): IpcStats {
    return { ...this.ipc.stats };
  }

  get maxConfigurationBytes(): number {
    return this.opts.maxConfigurationBytes ?? DEFAULT_MAX_CONFIGURATION_BYTES;
  }

  async stop(): Promise<void> {
    this.stopping ??= (async () => {
      this.logger.info('nucleus stopping');
      // Save while the components are still registered (stopAll forgets them).
      if (this.saveTimer) clearTimeout(this.saveTimer);
      await this.saveConfig();
      this.started = false; // no more saves: stopAll() below empties the component table
      // A deployment waiting on deferrals gives up; one being applied finishes first.
      this.lifecycleIpc.close();
      await this.deployments?.close();
      await this.kernel.stopAll().catch((e) => this.logger.error({ err: errorMessage(e) }, 'stopping components failed'));
      await this.shutdownServers();
      this.logger.info('nucleus stopped');
      if (this.ownLogger) await new Promise<void>((r) => this.logger.flush(() => r()));
    })();
    return this.stopping;
  }

  // --- internals ------------------------------------------------------------------------------

  private assertStarted(): void {
    if (!this.started) throw new LoupeError('NUCLEUS_NOT_STARTED', 'call start() first', { input: this.root });
    if (this.stopping) throw new LoupeError('NUCLEUS_STOPPING', 'the nucleus is stopping', { input: this.root });
  }

  private async shutdownServers(): Promise<void> {
    if (this.saveTimer) clearTimeout(this.saveTimer);
    this.lifecycleIpc.close();
    await this.ipc.close().catch((e) => this.logger.warn({ err: errorMessage(e) }, 'IPC server did not close cleanly'));
    await this.tes.stop().catch((e) => this.logger.warn({ err: errorMessage(e) }, 'token exchange service did not stop cleanly'));
    await this.bridge?.stop().catch((e) => this.logger.warn({ err: errorMessage(e) }, 'IoT Core bridge did not stop cleanly'));
    await this.broker?.stop().catch((e) => this.logger.warn({ err: errorMessage(e) }, 'MQTT broker did not stop cleanly'));
    await rm(join(this.root, 'cli_ipc_info'), { force: true });
    await rm(join(this.root, 'nucleus.pid'), { force: true });
  }

  /** One nucleus per root: a second one would fight over the socket and the store. */
  private async lockRoot(): Promise<void> {
    const pidFile = join(this.root, 'nucleus.pid');
    if (existsSync(pidFile)) {
      const pid = Number(readFileSync(pidFile, 'utf8').trim());
      let alive = false;
      if (Number.isInteger(pid) && pid > 0 && pid !== process.pid) {
        try {
          process.kill(pid, 0);
          alive = true;
        } catch {
          alive = false;
        }
      }
      if (alive) throw new LoupeError('NUCLEUS_RUNNING', `another nucleus (pid ${pid}) is running on this root`, { input: this.root });
    }
    await writeFileAtomic(pidFile, String(process.pid));
  }

  /** The components of the configuration file, as the real nucleus starts its services. */
  private async startInitialComponents(init: { recipes: Recipe[]; roots: string[] }): Promise<void> {
    const byName = new Map(init.recipes.map((r) => [r.name, r]));
    const target: Target = new Map();
    const add = (name: string, root: boolean) => {
      const r = byName.get(name);
      if (!r || target.has(name)) return;
      target.set(name, { name, version: r.version, recipe: r, config: structuredClone(r.defaultConfiguration), root });
      for (const dep of Object.keys(r.dependencies)) add(dep, false);
    };
    for (const name of init.roots) add(name, true);
    this.logger.info(
      { components: [...target.values()].map((t) => `${t.name}@${t.version}`) },
      'starting the components of the configuration file',
    );
    // `main` may also name built-in components (TES: started even when nothing depends on it).
    await this.kernel.apply(
      target,
      init.roots.filter((n) => BUILTIN_COMPONENTS[n]),
    );
    await this.deployments.saveLastGood('init-config');
  }

  private async restore(): Promise<void> {
    let target;
    try {
      target = await this.deployments.lastGoodTarget();
    } catch (e) {
      this.logger.error({ err: errorMessage(e) }, 'cannot read the last good deployment; starting empty');
      return;
    }
    if (!target || target.size === 0) return;
    // Values components wrote over IPC since then are kept (same versions only).
    const eff = join(this.root, 'config', 'effective.json');
    if (existsSync(eff)) {
      try {
        const saved = JSON.parse(readFileSync(eff, 'utf8')) as Record<
          string,
          { version: string; config: Record<string, unknown>; times: Record<string, number> }
        >;
        for (const [name, s] of Object.entries(saved)) {
          const t = target.get(name);
          if (t && t.version === s.version) {
            t.config = s.config;
            t.times = s.times;
          }
        }
      } catch (e) {
        this.logger.warn({ err: errorMessage(e) }, 'unreadable effective configuration; using the last good one');
      }
    }
    this.logger.info({ components: [...target.values()].map((t) => `${t.name}@${t.version}`) }, 'restoring the last good deployment');
    await this.kernel.apply(target);
  }

  private scheduleConfigSave(): void {
    if (this.saveTimer || !this.started) return;
    this.saveTimer = setTimeout(() => {
      this.saveTimer = undefined;
      void this.saveConfig();
    }, 200);
  }

  private async saveConfig(): Promise<void> {
    if (!this.started) return;
    const out: Record<string, { version: string; config: Record<string, unknown>; times: Record<string, number> }> = {};
    for (const c of this.kernel.components.values())
      out[c.name] = { version: c.version, config: this.config.get(c.name) ?? {}, times: this.config.times(c.name) };
    await writeFileAtomic(join(this.root, 'config', 'effective.json'), JSON.stringify(out, null, 2)).catch((e) =>
      this.logger.error({ err: errorMessage(e) }, 'cannot save the effective configuration'),
    );
  }
}
