import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { appendFileSync, existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { projectRoot } from '../../lib/paths.js';

/**
 * The REAL AWS IoT Greengrass nucleus (../shared/tools/greengrass-nucleus/Greengrass.jar), run
 * offline for tests, the oracle loupe's nucleus is compared with:
 *
 *   const problems = realNucleusPrerequisites();          // [] when java, the jar, sudo and ggc_user are here
 *   const gg = await startRealNucleus({ initConfig: '/tmp/x/config.yaml', root: '/tmp/x/root' });
 *   await gg.waitForState('my.Component', 'RUNNING');    // from service-set-state lines of greengrass.log
 *   gg.states('my.Component');                            // ['NEW', 'INSTALLED', 'STARTING', 'RUNNING', ...]
 *   gg.componentLog('my.Component');                      // <root>/logs/my.Component.log
 *   await gg.stop();                                      // SIGTERM to its process group, SIGKILL after 20 s
 *
 * The JVM runs in its own process group (java -Droot=ROOT -jar Greengrass.jar --init-config FILE
 * --setup-system-service false); stop() signals the whole group, so components it started go too,
 * and it is safe to call twice (call it in afterAll / finally, also when a test failed). When the
 * test does not run as root, the nucleus runs through `sudo -n` (it needs root to run components
 * as ggc_user, as on a device). Start-up takes 5-40 s on a loaded 2-core machine.
 */
export const GREENGRASS_JAR = join(projectRoot, '..', 'shared', 'tools', 'greengrass-nucleus', 'Greengrass.jar');

const isRoot = process.getuid?.() === 0;

function commandWorks(cmd: string, args: string[]): boolean {
  const r = spawnSync(cmd, args, { stdio: 'ignore' });
  return r.status === 0;
}

/** What is missing to run the real nucleus here (empty when it can run). `.ci/run` installs all of it. */
export function realNucleusPrerequisites(): string[] {
  const problems: string[] = [];
  if (!existsSync(GREENGRASS_JAR)) problems.push(`no ${GREENGRASS_JAR} (../shared/tools is expected beside the project)`);
  if (!commandWorks('java', ['-version'])) problems.push('no java on PATH (apt-get install openjdk-17-jre-headless)');
  if (!commandWorks('sudo', ['-n', 'true'])) problems.push('no password-less sudo (the nucleus runs component scripts through sudo)');
  if (!commandWorks('id', ['ggc_user'])) problems.push('no ggc_user (groupadd -r ggc_group; useradd -r -M -g ggc_group ggc_user)');
  return problems;
}

export interface StateChange {
  from: string;
  to: string;
}

/** What both nuclei look like to a test (the differential suite drives loupe's through the same shape). */
export interface RunningNucleus {
  readonly root: string;
  readonly pid: number;
  /** Everything the process printed (stdout + stderr). */
  output(): string;
  /** Lifecycle state changes of one component, oldest first. */
  transitions(component: string): StateChange[];
  /** The states a component went through, starting with NEW. */
  states(component: string): string[];
  componentLog(component: string): string;
  waitForState(component: string, state: string | ((states: string[]) => boolean), timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

/** Send `signal` to a process group we started (through sudo when we are not root). */
export function signalGroup(pgid: number, signal: 'TERM' | 'KILL'): void {
  if (isRoot) {
    try {
      process.kill(-pgid, signal === 'TERM' ? 'SIGTERM' : 'SIGKILL');
    } catch {
      /* already gone */
    }
  } else spawnSync('sudo', ['-n', 'kill', `-${signal}`, '--', `-${pgid}`], { stdio: 'ignore' });
}

function groupAlive(pgid: number): boolean {
  if (isRoot) {
    try {
      process.kill(-pgid, 0);
      return true;
    } catch {
      return false;
    }
  }
  return commandWorks('sudo', ['-n', 'kill', '-0', '--', `-${pgid}`]);
}

/** Spawn a command in its own process group, as root (directly, or through sudo -n -E). */
export function spawnAsRoot(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): ChildProcess {
  const [c, a] = isRoot ? [cmd, args] : ['sudo', ['-n', '-E', cmd, ...args]];
  return spawn(c, a, { cwd: opts.cwd ?? projectRoot, env: opts.env ?? process.env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Stop a process group: SIGTERM, then SIGKILL after `graceMs`; resolves when nothing of it is left. */
export async function stopGroup(child: ChildProcess, graceMs = 20_000): Promise<void> {
  const pgid = child.pid;
  if (pgid === undefined) return;
  signalGroup(pgid, 'TERM');
  const deadline = Date.now() + graceMs;
  while (groupAlive(pgid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  if (groupAlive(pgid)) signalGroup(pgid, 'KILL');
  const hard = Date.now() + 10_000;
  while (groupAlive(pgid) && Date.now() < hard) await new Promise((r) => setTimeout(r, 100));
}

/** Read a file the nucleus (root) wrote; through sudo when we are not root. */
export function readAsRoot(path: string): string {
  if (isRoot) return existsSync(path) ? readFileSync(path, 'utf8') : '';
  const r = spawnSync('sudo', ['-n', 'cat', path], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout : '';
}

const SET_STATE = /service-set-state\. \{serviceName=([^,}]+), currentState=([A-Z]+), newState=([A-Z]+)\}/;

/** service-set-state lines of the real nucleus's greengrass.log, by component. */
export function parseRealTransitions(log: string): Map<string, StateChange[]> {
  const out = new Map<string, StateChange[]>();
  for (const line of log.split('\n')) {
    const m = SET_STATE.exec(line);
    if (!m) continue;
    const list = out.get(m[1]!) ?? [];
    list.push({ from: m[2]!, to: m[3]! });
    out.set(m[1]!, list);
  }
  return out;
}

export function statesOf(transitions: StateChange[]): string[] {
  if (transitions.length === 0) return [];
  return [transitions[0]!.from, ...transitions.map((t) => t.to)];
}

/** Poll `read()` until `done(states)`; shared by both nuclei's waitForState. */
export async function pollStates(
  read: () => string[],
  want: string | ((s: string[]) => boolean),
  timeoutMs: number,
  what: string,
  alive: () => boolean,
): Promise<void> {
  const pred = typeof want === 'string' ? (s: string[]) => s.at(-1) === want : want;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const s = read();
    if (pred(s)) return;
    if (!alive()) throw new Error(`${what}: the nucleus exited; states so far: ${s.join(' -> ') || '(none)'}`);
    if (Date.now() > deadline) throw new Error(`${what}: not there within ${timeoutMs} ms; states so far: ${s.join(' -> ') || '(none)'}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * A nucleus process we started (its own process group) seen as a RunningNucleus: `transitions`
 * reads its state changes, `ready` says when its output shows it has started. Stopped (the
 * whole group) if it does not start in time.
 */
export async function watchNucleus(o: {
  child: ChildProcess;
  root: string;
  label: string;
  transitions: (component: string) => StateChange[];
  ready: (output: string) => boolean;
  startTimeoutMs: number;
}): Promise<RunningNucleus> {
  let output = '';
  let exited = false;
  o.child.stdout!.on('data', (b: Buffer) => (output += b.toString()));
  o.child.stderr!.on('data', (b: Buffer) => (output += b.toString()));
  o.child.on('exit', () => (exited = true));
  const handle: RunningNucleus = {
    root: o.root,
    pid: o.child.pid!,
    output: () => output,
    transitions: o.transitions,
    states: (c) => statesOf(o.transitions(c)),
    componentLog: (c) => readAsRoot(join(o.root, 'logs', `${c}.log`)),
    waitForState: (c, want, timeoutMs = 60_000) =>
      pollStates(
        () => handle.states(c),
        want,
        timeoutMs,
        `${o.label}: ${c}`,
        () => !exited,
      ),
    stop: () => stopGroup(o.child),
  };
  try {
    const deadline = Date.now() + o.startTimeoutMs;
    while (!o.ready(output)) {
      if (exited) throw new Error(`${o.label} exited during start-up:\n${output.slice(-4000)}`);
      if (Date.now() > deadline) throw new Error(`${o.label} did not start within ${o.startTimeoutMs / 1000} s:\n${output.slice(-4000)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  } catch (e) {
    await handle.stop();
    throw e;
  }
  return handle;
}

/**
 * `outputFile`: also append what the JVM prints to this file. A restart on the same root (a new
 * init-config) works as on a device: the real nucleus starts from the new file.
 */
export async function startRealNucleus(o: {
  initConfig: string;
  root: string;
  startTimeoutMs?: number;
  env?: NodeJS.ProcessEnv;
  outputFile?: string;
}): Promise<RunningNucleus> {
  const problems = realNucleusPrerequisites();
  if (problems.length) throw new Error(`the real Greengrass nucleus cannot run here: ${problems.join('; ')}`);
  const child = spawnAsRoot(
    'java',
    ['-Droot=' + o.root, '-Dlog.store=FILE', '-jar', GREENGRASS_JAR, '--init-config', o.initConfig, '--setup-system-service', 'false'],
    {
      ...(o.env ? { env: o.env } : {}),
    },
  );
  if (o.outputFile) {
    const file = o.outputFile;
    const append = (b: Buffer) => appendFileSync(file, b);
    child.stdout!.on('data', append);
    child.stderr!.on('data', append);
  }
  const logFile = join(o.root, 'logs', 'greengrass.log');
  return watchNucleus({
    child,
    root: o.root,
    label: 'the real nucleus',
    transitions: (component) => parseRealTransitions(readAsRoot(logFile)).get(component) ?? [],
    ready: (output) => output.includes('Launched Nucleus successfully.'),
    startTimeoutMs: o.startTimeoutMs ?? 120_000,
  });
}

/** Component names with a log file under <root>/logs (for a failure report). */
export function logNames(root: string): string[] {
  const d = join(root, 'logs');
  return existsSync(d)
    ? readdirSync(d)
        .filter((f) => f.endsWith('.log'))
        .map((f) => f.slice(0, -4))
    : [];
}
