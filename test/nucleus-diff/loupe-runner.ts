import { join } from 'node:path';
import { projectRoot } from '../../lib/paths.js';
import { readAsRoot, spawnAsRoot, watchNucleus, type RunningNucleus, type StateChange } from '../helpers/real-nucleus.js';

/**
 * loupe's nucleus started the way a user starts it, `loupe nucleus start --init-config FILE
 * --root ROOT`, in its own process group, seen through the same RunningNucleus shape as the
 * real one (state changes from the service-set-state lines of its greengrass.log).
 */
export async function startLoupeNucleus(o: { initConfig: string; root: string; startTimeoutMs?: number }): Promise<RunningNucleus> {
  const child = spawnAsRoot(process.execPath, [
    join(projectRoot, 'bin', 'loupe.js'),
    'nucleus',
    'start',
    '--init-config',
    o.initConfig,
    '--root',
    o.root,
  ]);
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
  return watchNucleus({
    child,
    root: o.root,
    label: "loupe's nucleus",
    transitions,
    ready: (output) => /"started":true/.test(output),
    startTimeoutMs: o.startTimeoutMs ?? 60_000,
  });
}
