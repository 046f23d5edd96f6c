import type { z } from 'zod';
import type { Logger } from 'pino';
import { errorMessage, isLoupeError } from '../../lib/errors.js';
import { createLogger } from '../../lib/log.js';
import { GreengrassIpc } from './client.js';
import { parseConfig } from './config.js';

/**
 * The life cycle every loupe component shares: structured logs on stdout (the nucleus writes
 * them to the component's log file), connect to IPC, load and validate configuration, start,
 * report RUNNING, follow configuration changes, and stop cleanly on SIGTERM/SIGINT (the nucleus
 * sends SIGTERM before its shutdown timeout). A configuration that fails validation at start is
 * fatal (exit 1, the error names the key); one that fails on a runtime change is refused and
 * logged, and the component keeps its last good configuration.
 */
export interface ComponentContext<C> {
  name: string;
  log: Logger;
  ipc: GreengrassIpc;
  config: C;
  thingName: string;
}

export interface RunningComponent<C> {
  /** apply a changed, already validated configuration */
  reconfigure?(config: C): Promise<void> | void;
  stop(): Promise<void>;
}

export async function runComponent<S extends z.ZodType>(
  name: string,
  schema: S,
  start: (ctx: ComponentContext<z.infer<S>>) => Promise<RunningComponent<z.infer<S>>>,
  opts: { configOverride?: (raw: unknown) => unknown } = {},
): Promise<void> {
  const log = createLogger(name);
  let running: RunningComponent<z.infer<S>> | undefined;
  let ipc: GreengrassIpc | undefined;
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'stopping');
    const t = setTimeout(() => process.exit(0), 10_000).unref();
    try {
      await running?.stop();
      await ipc?.close();
    } catch (e) {
      log.error({ err: errorMessage(e) }, 'error while stopping');
    }
    clearTimeout(t);
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('unhandledRejection', (e) => log.error({ err: errorMessage(e) }, 'unhandled rejection'));
  try {
    ipc = await GreengrassIpc.connect({ log });
    const load = async () => {
      const raw = await ipc!.getConfiguration([]);
      return parseConfig(schema, opts.configOverride ? opts.configOverride(raw) : raw, name);
    };
    let config = await load();
    running = await start({ name, log, ipc, config, thingName: ipc.thingName });
    await ipc.updateState('RUNNING').catch((e) => log.warn({ err: errorMessage(e) }, 'UpdateState RUNNING failed'));
    let pending: Promise<void> = Promise.resolve();
    await ipc.onConfigurationUpdate((keyPath) => {
      // Updates arrive in bursts (one event per changed key); apply them one at a time.
      pending = pending.then(async () => {
        try {
          const next = await load();
          if (JSON.stringify(next) === JSON.stringify(config)) return;
          config = next;
          await running?.reconfigure?.(next);
          log.info({ keyPath }, 'configuration applied');
        } catch (e) {
          log.error({ keyPath, err: errorMessage(e) }, 'configuration change refused; keeping the previous configuration');
        }
      });
    });
    log.info({ thing: ipc.thingName }, 'running');
  } catch (e) {
    log.fatal({ err: errorMessage(e), code: isLoupeError(e) ? e.code : undefined }, 'failed to start');
    process.stderr.write(`${name}: ${errorMessage(e)}\n`);
    // the component is exiting on the error logged above: stopping is best effort
    await running?.stop().catch(() => {});
    // and so is closing the IPC connection
    await ipc?.close().catch(() => {});
    process.exit(1);
  }
}
