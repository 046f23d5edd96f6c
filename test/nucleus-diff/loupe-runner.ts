import { join } from 'node:path';
import { projectRoot } from '../../components/common/paths.js';
import { pollStates, readAsRoot, spawnAsRoot, statesOf, stopGroup, type RunningNucleus, type StateChange } from '../helpers/real-nucleus.js';

/**
 * loupe's nucleus started the way a user starts it, `loupe nucleus start --init-config FILE
 * --root ROOT`, in its own process group, seen through the same RunningNucleus shape as the
 * real one (state changes from the service-set-state lines of its greengrass.log).
 */
export async function startLoupeNucleus(o: { initConfig: string; root: string; startTimeoutMs?: number }): Promise<RunningNucleus> {
  const child = spawnAsRoot(process.execPath, [join(projectRoot, 'bin', 'loupe.js'), 'nucleus', 'start', '--init-config', o.initConfig, '--root', o.root]);
  let output = '';
  let exited = false;
  child.stdout!.on('data', (b: Buffer) => (output += b.toString()));
  child.stderr!.on('data', (b: Buffer) => (output += b.toString()));
  child.on('exit', () => (exited = true));
  const logFile = join(o.root, 'logs', 'greengrass.log');
  const transitions = (component: string): StateChange[] => {
    const out: StateChange[] = [];
    for (const line of readAsRoot(logFile).split('\n')) {
      if (!line.includes('service-set-state')) continue;
      try {
        const j = JSON.parse(line) as { msg?: string; component?: string; from?: string; to?: string };
        if (j.msg === 'service-set-state' && j.component === component && j.from && j.to) out.push({ from: j.from, to: j.to });
      } catch {
        /* a line cut by rotation */
      }
    }
    return out;
  };
  const handle: RunningNucleus = {
    root: o.root,
    pid: child.pid!,
    output: () => output,
    transitions,
    states: (c) => statesOf(transitions(c)),
    componentLog: (c) => readAsRoot(join(o.root, 'logs', `${c}.log`)),
    waitForState: (c, want, timeoutMs = 60_000) => pollStates(() => handle.states(c), want, timeoutMs, `loupe nucleus: ${c}`, () => !exited),
    stop: () => stopGroup(child),
  };
  try {
    const deadline = Date.now() + (o.startTimeoutMs ?? 60_000);
    while (!/"started":true/.test(output)) {
      if (exited) throw new Error(`loupe's nucleus exited during start-up:\n${output.slice(-4000)}`);
      if (Date.now() > deadline) throw new Error(`loupe's nucleus did not start in time:\n${output.slice(-4000)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  } catch (e) {
    await handle.stop();
    throw e;
  }
  return handle;
}
