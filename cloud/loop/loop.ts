import type { Logger } from 'pino';
import { loupeEvaluator } from '../gate/evaluator.js';
import type { EvaluateFn } from '../gate/gate.js';
import type { LoopConfig, LoopHome } from './config.js';
import { LoopEnv } from './env.js';
import { runLoop, type LoopEvents, type RunReport } from './runner.js';
import { loopSteps } from './steps.js';
import { LoopStore } from './store.js';

/**
 * One loop run with everything wired: opens the environment, takes the one-run lock, resumes
 * an unfinished run or starts one, runs the steps, closes everything. What `loupe loop run`,
 * `loupe loop watch` and `loupe demo` call.
 *
 *   const report = await runLoopOnce({ config, home, trigger: 'manual', log })
 */
export interface RunOnceOptions {
  config: LoopConfig;
  home: LoopHome;
  trigger: string;
  log: Logger;
  events?: LoopEvents;
  evaluate?: EvaluateFn;
  resume?: 'auto' | 'new';
  progressStream?: NodeJS.WriteStream;
  signal?: AbortSignal;
}

export async function runLoopOnce(o: RunOnceOptions): Promise<RunReport> {
  const store = new LoopStore(o.home.loopDb);
  let env: LoopEnv | undefined;
  try {
    env = await LoopEnv.open(o.config, o.home, o.log, { evaluate: o.evaluate ?? loupeEvaluator });
    const steps = loopSteps({ ports: env.ports, config: env.config, progressStream: o.progressStream, signal: o.signal });
    return await runLoop({
      store,
      steps,
      trigger: o.trigger,
      config: o.config as unknown as Record<string, unknown>,
      runsDir: o.home.runsDir,
      log: o.log,
      events: o.events,
      resume: o.resume,
    });
  } finally {
    await env?.close();
    store.close();
  }
}

/** Progress lines for a person on stderr: one per step start/end. */
export function stderrEvents(stream: NodeJS.WriteStream = process.stderr): LoopEvents {
  return {
    stepStart: (name, i, total, attempt) =>
      stream.write(`loop [${i + 1}/${total}] ${name}${attempt > 1 ? ` (attempt ${attempt})` : ''} ...\n`),
    stepDone: (name, i, total, seconds) => stream.write(`loop [${i + 1}/${total}] ${name} done in ${seconds.toFixed(1)} s\n`),
    stepSkipped: (name, reason) => stream.write(`loop        ${name} skipped: ${reason}\n`),
  };
}
