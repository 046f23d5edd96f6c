import { EventEmitter } from 'node:events';
import { chmodSync, existsSync, lchownSync, lstatSync, mkdirSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Logger } from 'pino';
import { errorMessage } from '../../../lib/errors.js';
import type { Lifecycle, LifecycleStep, StepName } from '../componentmanager/recipe.js';
import { killGroup, processStartTime, shouldSkip, signalGroup, startScript, type RunAs, type RunningScript } from './process.js';
import { RotatingLog, type LogRotation } from './rotating-log.js';

/**
 * One component's lifecycle, modelled on the real nucleus's Lifecycle/GenericExternalService:
 *
 *   NEW --install--> INSTALLED --deps ready--> STARTING --startup exit 0 / run started--> RUNNING
 *   RUNNING --stop--> STOPPING --shutdown, kill--> FINISHED (or INSTALLED again when restarting)
 *   any script failure --> ERRORED --recover--> STOPPING/NEW --> retried
 *
 * Errors are counted per state the way Lifecycle.java counts them: an ERRORED reported while in
 * NEW, STARTING or RUNNING is recorded for that state; any other report from that state clears
 * its count; the third error within `errorResetTimeMs` (1 hour by default) makes the component
 * BROKEN, where it stays until a deployment (or a restart request) reinstalls it.
 * A Run script that exits 0 finishes the component (FINISHED); a Startup script that exits 0
 * makes it RUNNING; a component without either is FINISHED after install.
 */
export type State = 'NEW' | 'INSTALLED' | 'STARTING' | 'RUNNING' | 'STOPPING' | 'FINISHED' | 'ERRORED' | 'BROKEN';

const DEFAULT_TIMEOUT_S: Record<StepName, number> = { bootstrap: 120, install: 120, startup: 120, run: 0, shutdown: 15, recover: 60 };
const MAXIMUM_CONTINUAL_ERROR = 3;
const COUNTED = new Set<State>(['NEW', 'STARTING', 'RUNNING']);

/** Transitions a component may report over IPC (ALLOWED_STATE_TRANSITION_FOR_REPORTING). */
const REPORTABLE: Partial<Record<State, State[]>> = {
  NEW: ['ERRORED'],
  STARTING: ['RUNNING', 'ERRORED', 'FINISHED'],
  RUNNING: ['ERRORED', 'FINISHED'],
  STOPPING: ['ERRORED', 'FINISHED'],
};

export interface ServiceSpec {
  name: string;
  version: string;
  lifecycle: Lifecycle;
  /** Environment for every script (nucleus env + IPC/TES variables + Lifecycle.Setenv). */
  env: NodeJS.ProcessEnv;
  workDir: string;
  logFile: string;
  /** Size-based rotation of logFile (Greengrass's logging.fileSizeKB / totalLogsSizeKB). */
  logRotation?: LogRotation;
  dependencies: { name: string; type: 'HARD' | 'SOFT' }[];
  /**
   * Who the scripts run as (runWithDefault.posixUser, through sudo) when the nucleus runs as
   * root; undefined runs them as the nucleus's own user. RequiresPrivilege steps always do.
   */
  runAs?: RunAs & { uid: number; gid: number };
  /** Artefact folders whose contents the component's user owns (they are created if missing). */
  artifactDirs?: string[];
}

export interface ServiceHost {
  stateOf(name: string): State | undefined;
  /** Emits 'state' (name, state) for every component. */
  readonly events: EventEmitter;
  readonly logger: Logger;
  errorResetTimeMs: number;
  killGraceMs: number;
  /** A script's process group started / ended (the nucleus records them to reap after a crash). */
  onProcessGroup?(pgid: number, startTime: string | undefined, alive: boolean): void;
}

export class ComponentService extends EventEmitter {
  state: State = 'NEW';
  statusReason = '';
  private desired: 'RUNNING' | 'FINISHED' = 'FINISHED';
  private reinstallRequested = false;
  private gen = 0;
  private startGen = 0;
  private readonly errorTimes = new Map<State, number[]>();
  private readonly procs = new Set<RunningScript>();
  /** Process groups of every script started since the last stop (daemons can outlive their shell). */
  private readonly groups = new Set<number>();
  private chain: Promise<void> = Promise.resolve();
  private readonly log: Logger;
  private readonly out: RotatingLog;
  private startupTimer: NodeJS.Timeout | undefined;
  private closed = false;
  /** Ownership is (re)applied before the first script after install starts or after a shutdown, as Greengrass does. */
  private ownershipApplied = false;

  constructor(
    readonly spec: ServiceSpec,
    private readonly host: ServiceHost,
  ) {
    super();
    this.log = host.logger.child({ component: spec.name, version: spec.version });
    mkdirSync(dirname(spec.logFile), { recursive: true });
    this.out = new RotatingLog(spec.logFile, spec.logRotation);
    if (spec.dependencies.some((d) => d.type === 'HARD')) host.events.on('state', this.onDependencyState);
  }

  get name(): string {
    return this.spec.name;
  }

  /** Ask for RUNNING: installs if needed, waits for dependencies, starts. */
  start(): void {
    this.desired = 'RUNNING';
    this.kick();
  }

  /** Ask for FINISHED and wait until nothing of this component runs any more. */
  async stop(): Promise<void> {
    this.desired = 'FINISHED';
    this.reinstallRequested = false;
    this.kick();
    await this.waitFor((s) => s === 'FINISHED' || s === 'BROKEN' || (s === 'NEW' && this.procs.size === 0));
  }

  /** Restart (a BROKEN component is reinstalled with its error counts cleared). */
  restart(): void {
    this.desired = 'RUNNING';
    if (this.state === 'BROKEN') {
      this.errorTimes.clear();
      this.transition('NEW', 'reinstall requested');
      return;
    }
    if (this.state === 'RUNNING' || this.state === 'STARTING') this.report('STOPPING', 'restart requested');
    else this.kick();
  }

  /** Paused with PauseComponent (its processes are stopped with SIGSTOP until resumed). */
  paused = false;

  /** Freeze (or thaw) every process of the component (PauseComponent / ResumeComponent). */
  setPaused(paused: boolean): void {
    for (const g of this.groups) signalGroup(g, paused ? 'SIGSTOP' : 'SIGCONT');
    this.paused = paused;
  }

  /** A state reported by the component over IPC (UpdateState); invalid transitions are ignored. */
  reportFromComponent(state: State): boolean {
    if (!REPORTABLE[this.state]?.includes(state)) {
      this.log.warn({ from: this.state, to: state }, 'ignoring invalid reported state');
      return false;
    }
    this.report(state, 'reported by the component');
    return true;
  }

  /** Resolves once `pred(state)` holds (checked now and on every transition). */
  waitFor(pred: (s: State) => boolean, timeoutMs?: number): Promise<State> {
    if (pred(this.state)) return Promise.resolve(this.state);
    return new Promise((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const on = (s: State) => {
        if (!pred(s)) return;
        this.off('state', on);
        if (timer) clearTimeout(timer);
        resolve(s);
      };
      this.on('state', on);
      if (timeoutMs !== undefined) {
        timer = setTimeout(() => {
          this.off('state', on);
          reject(new Error(`${this.name} did not reach the expected state within ${timeoutMs} ms (now ${this.state})`));
        }, timeoutMs);
      }
    });
  }

  /** Stop everything and release the log file (the component is being removed). */
  async close(): Promise<void> {
    this.host.events.off('state', this.onDependencyState);
    await this.stop();
    this.closed = true;
    await new Promise<void>((r) => this.out.end(() => r()));
  }

  // --- state machine ------------------------------------------------------------------------

  /** Record a state the way Lifecycle.internalReportState does (error counting, BROKEN). */
  private report(next: State, reason: string): void {
    const cur = this.state;
    let target = next;
    if (next === 'ERRORED' && COUNTED.has(cur)) {
      const now = Date.now();
      const list = this.errorTimes.get(cur) ?? [];
      if (list.length && now - list[list.length - 1]! >= this.host.errorResetTimeMs) list.length = 0;
      list.push(now);
      this.errorTimes.set(cur, list);
      if (list.length >= MAXIMUM_CONTINUAL_ERROR) target = 'BROKEN';
    } else {
      this.errorTimes.delete(cur);
    }
    this.transition(target, target === 'BROKEN' ? `${reason}; errored ${MAXIMUM_CONTINUAL_ERROR} times in ${cur}` : reason);
  }

  private transition(next: State, reason: string): void {
    if (next === this.state) return;
    const prev = this.state;
    this.state = next;
    this.statusReason = reason;
    const g = ++this.gen;
    this.log.info({ from: prev, to: next, reason }, 'service-set-state');
    this.writeLog(`state ${prev} -> ${next} (${reason})`);
    this.emit('state', next, prev);
    this.host.events.emit('state', this.name, next, prev);
    this.chain = this.chain
      .then(() => this.enter(next, prev, g))
      .catch((e) => this.log.error({ err: errorMessage(e) }, 'lifecycle handler failed'));
  }

  /** Re-run the handler of the current state (after the desired state changed). */
  private kick(): void {
    this.emit('kick');
    const g = this.gen;
    const s = this.state;
    this.chain = this.chain
      .then(() => this.enter(s, s, g))
      .catch((e) => this.log.error({ err: errorMessage(e) }, 'lifecycle handler failed'));
  }

  private current(g: number): boolean {
    return g === this.gen && !this.closed;
  }

  private async enter(state: State, prev: State, g: number): Promise<void> {
    if (!this.current(g)) return;
    switch (state) {
      case 'NEW': {
        if (this.desired !== 'RUNNING') return;
        this.reinstallRequested = false;
        this.ownershipApplied = false;
        const ok = await this.runForeground('install');
        if (!this.current(g)) return;
        this.report(ok ? 'INSTALLED' : 'ERRORED', ok ? 'installed' : 'install failed');
        return;
      }
      case 'INSTALLED': {
        if (this.desired !== 'RUNNING') return this.report('FINISHED', 'not asked to run');
        await this.dependenciesReady(g);
        if (!this.current(g)) return;
        if (this.desired !== 'RUNNING') return this.report('FINISHED', 'not asked to run');
        return this.report('STARTING', 'dependencies ready');
      }
      case 'STARTING':
        if (this.desired !== 'RUNNING') return this.report('STOPPING', 'stop requested');
        return this.startUp();
      case 'RUNNING':
        if (this.desired !== 'RUNNING') this.report('STOPPING', 'stop requested');
        return;
      case 'STOPPING': {
        this.clearStartupTimer();
        if (this.paused) this.setPaused(false); // a frozen process cannot shut down gracefully
        await this.runForeground('shutdown');
        await this.killAll();
        this.ownershipApplied = false;
        if (!this.current(g)) return;
        if (this.reinstallRequested) return this.report('NEW', 'reinstalling');
        return this.report(this.desired === 'RUNNING' ? 'INSTALLED' : 'FINISHED', this.desired === 'RUNNING' ? 'restarting' : 'stopped');
      }
      case 'FINISHED':
        // Nothing to run: Greengrass then stops the service, which runs its Shutdown step.
        if (prev === 'STARTING') {
          this.desired = 'FINISHED';
          return this.report('STOPPING', 'nothing to run');
        }
        if (this.desired === 'RUNNING' && prev === 'FINISHED') return this.report('INSTALLED', 'restarting');
        return;
      case 'ERRORED': {
        this.clearStartupTimer();
        if (this.spec.lifecycle.steps.recover) await this.runForeground('recover');
        if (!this.current(g)) return;
        if (prev === 'STARTING' || prev === 'RUNNING') return this.report('STOPPING', 'recovering from error');
        if (prev === 'NEW') {
          await this.killAll();
          if (!this.current(g)) return;
          // Install failed: try again (a NEW->NEW transition in the real lifecycle).
          this.transition('NEW', 'retrying install');
          return;
        }
        return this.report('FINISHED', 'errored while stopping');
      }
      case 'BROKEN':
        this.clearStartupTimer();
        this.writeLog('component is BROKEN; a deployment is needed');
        if (prev === 'STARTING' || prev === 'RUNNING' || prev === 'ERRORED') await this.runForeground('shutdown');
        await this.killAll();
        return;
      default:
        return;
    }
  }

  /**
   * As GreengrassService.dependencyReady: SOFT dependencies never hold a component back; a HARD
   * one must be RUNNING, FINISHED or STOPPING. (Dependencies that are not deployed are ignored.)
   */
  private hardDependenciesReady(): boolean {
    return this.spec.dependencies.every((d) => {
      if (d.type === 'SOFT') return true;
      const s = this.host.stateOf(d.name);
      return s === undefined || s === 'RUNNING' || s === 'FINISHED' || s === 'STOPPING';
    });
  }

  private async dependenciesReady(g: number): Promise<void> {
    if (this.hardDependenciesReady()) return;
    this.log.info({ waitingFor: this.spec.dependencies.filter((d) => d.type === 'HARD').map((d) => d.name) }, 'service-awaiting-start');
    await new Promise<void>((resolve) => {
      const check = () => {
        if (this.hardDependenciesReady() || !this.current(g) || this.desired !== 'RUNNING') {
          this.host.events.off('state', check);
          this.off('kick', check);
          resolve();
        }
      };
      this.host.events.on('state', check);
      this.on('kick', check);
    });
  }

  /** A HARD dependency went bad while we run: restart (we then wait for it), as Greengrass does. */
  private readonly onDependencyState = (name: string): void => {
    if (this.closed || (this.state !== 'STARTING' && this.state !== 'RUNNING')) return;
    const dep = this.spec.dependencies.find((d) => d.name === name && d.type === 'HARD');
    if (!dep || this.hardDependenciesReady()) return;
    this.log.info({ dependency: name, state: this.host.stateOf(name) }, 'restarting because a HARD dependency is in a bad state');
    this.restart();
  };

  private startUp(): void {
    const steps = this.spec.lifecycle.steps;
    const startGen = ++this.startGen;
    let startup: LifecycleStep | undefined;
    let run: LifecycleStep | undefined;
    try {
      startup = steps.startup && !shouldSkip(steps.startup.skipIf, this.spec.env, this.spec.workDir) ? steps.startup : undefined;
      run = steps.run && !shouldSkip(steps.run.skipIf, this.spec.env, this.spec.workDir) ? steps.run : undefined;
    } catch (e) {
      this.writeLog(errorMessage(e));
      return this.report('ERRORED', errorMessage(e));
    }
    if (startup) {
      const p = this.spawn('startup', startup);
      const timeout = (startup.timeout ?? DEFAULT_TIMEOUT_S.startup) * 1000;
      this.startupTimer = setTimeout(() => {
        if (startGen === this.startGen && this.state === 'STARTING') this.report('ERRORED', 'startup timeout');
      }, timeout);
      void p.exited.then((code) => {
        this.writeLog(`startup script exited with ${code}`);
        if (startGen !== this.startGen || (this.state !== 'STARTING' && this.state !== 'RUNNING')) return;
        if (code === 0 && this.state === 'STARTING') {
          this.clearStartupTimer();
          this.report('RUNNING', 'startup script exited 0');
        } else if (code !== 0) this.report('ERRORED', `startup script exited with ${code}`);
      });
      return;
    }
    if (run) {
      const p = this.spawn('run', run);
      this.report('RUNNING', 'run script started');
      if (run.timeout) {
        setTimeout(() => {
          if (p.running && startGen === this.startGen) {
            this.report('ERRORED', 'run timeout');
            void p.kill(this.host.killGraceMs);
          }
        }, run.timeout * 1000).unref();
      }
      void p.exited.then((code) => {
        this.writeLog(`run script exited with ${code}`);
        if (startGen !== this.startGen || this.state !== 'RUNNING') return;
        if (code === 0) {
          this.desired = 'FINISHED';
          this.report('STOPPING', 'run script finished');
        } else this.report('ERRORED', `run script exited with ${code}`);
      });
      return;
    }
    this.report('FINISHED', 'nothing to run');
  }

  private clearStartupTimer(): void {
    if (this.startupTimer) clearTimeout(this.startupTimer);
    this.startupTimer = undefined;
  }

  private spawn(step: StepName, s: LifecycleStep): RunningScript {
    this.applyOwnership();
    const env = { ...this.spec.env, ...s.setenv };
    const runAs = s.requiresPrivilege ? undefined : this.spec.runAs;
    const p = startScript({
      script: s.script,
      cwd: this.spec.workDir,
      env,
      log: this.out,
      label: `${this.name} ${step}`,
      sweepOnExit: step !== 'startup',
      ...(runAs ? { runAs } : {}),
    });
    this.procs.add(p);
    const pgid = p.pgid;
    if (pgid !== undefined) {
      this.groups.add(pgid);
      this.host.onProcessGroup?.(pgid, processStartTime(pgid), true);
    }
    void p.exited.then(() => this.procs.delete(p));
    return p;
  }

  /**
   * The work folder (created 0700) and the artefacts' contents belong to the user the scripts
   * run as, as RunWithPathOwnershipHandler makes them on a real device: applied before the first
   * script after install starts and again after each shutdown (a deployment may change the user).
   */
  private applyOwnership(): void {
    if (this.ownershipApplied) return;
    this.ownershipApplied = true;
    const fresh = !existsSync(this.spec.workDir);
    mkdirSync(this.spec.workDir, { recursive: true, mode: 0o700 });
    if (fresh) chmodSync(this.spec.workDir, 0o700);
    for (const d of this.spec.artifactDirs ?? []) mkdirSync(d, { recursive: true, mode: 0o755 });
    const ids = this.spec.runAs;
    if (!ids) return;
    try {
      chownTree(this.spec.workDir, ids.uid, ids.gid, true);
      for (const d of this.spec.artifactDirs ?? []) chownTree(d, ids.uid, ids.gid, false);
    } catch (e) {
      this.log.error(
        { err: errorMessage(e), user: ids.user },
        'cannot hand the work and artifact folders to the component user; its artifacts may not be readable',
      );
    }
  }

  /** Run a step to completion within its timeout; true when it succeeded (or is absent/skipped). */
  private async runForeground(step: StepName): Promise<boolean> {
    const s = this.spec.lifecycle.steps[step];
    if (!s) return true;
    let skip: boolean;
    try {
      skip = shouldSkip(s.skipIf, this.spec.env, this.spec.workDir);
    } catch (e) {
      this.writeLog(`${step}: ${errorMessage(e)}`);
      return false;
    }
    if (skip) {
      this.writeLog(`${step}: skipped (${s.skipIf})`);
      return true;
    }
    const p = this.spawn(step, s);
    const timeoutMs = (s.timeout ?? DEFAULT_TIMEOUT_S[step]) * 1000;
    let timer: NodeJS.Timeout | undefined;
    const res = await Promise.race([p.exited, new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), timeoutMs)))]);
    clearTimeout(timer);
    if (res === 'timeout') {
      this.writeLog(`${step}: timed out after ${timeoutMs / 1000} s`);
      await p.kill(this.host.killGraceMs);
      return false;
    }
    if (res !== 0) this.writeLog(`${step}: script exited with ${res}`);
    return res === 0;
  }

  private async killAll(): Promise<void> {
    await Promise.all([...this.procs].map((p) => p.kill(this.host.killGraceMs)));
    const groups = [...this.groups];
    this.groups.clear();
    await Promise.all(groups.map((g) => killGroup(g, this.host.killGraceMs)));
    for (const g of groups) this.host.onProcessGroup?.(g, undefined, false);
  }

  private writeLog(line: string): void {
    if (!this.out.destroyed) this.out.write(`[nucleus] ${new Date().toISOString()} ${this.name}: ${line}\n`);
  }
}

/** chown a tree (symlinks themselves, not their targets); the top folder only when `self`. */
function chownTree(path: string, uid: number, gid: number, self: boolean): void {
  if (!existsSync(path)) return;
  if (self) lchownSync(path, uid, gid);
  if (!lstatSync(path).isDirectory()) return;
  for (const f of readdirSync(path)) {
    const p = join(path, f);
    const st = lstatSync(p);
    lchownSync(p, uid, gid);
    if (st.isDirectory()) chownTree(p, uid, gid, false);
  }
}
