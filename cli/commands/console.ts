import { Option, type Command } from 'commander';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { LoupeError } from '../../lib/errors.js';
import { writeFileAtomic } from '../../lib/fsutil.js';
import { createLogger } from '../../lib/log.js';
import { loopHome, readLoopConfig } from '../../cloud/loop/config.js';
import { LoopEnv } from '../../cloud/loop/env.js';
import { LoopStore } from '../../cloud/loop/store.js';
import { LiveFeed } from '../../cloud/console/live.js';
import { startConsoleServer } from '../../cloud/console/server.js';
import { loopSources } from '../../cloud/console/sources.js';

/**
 * `loupe console`: the operator console (cloud/console) over a loop home and its configured
 * backends, with the live MQTT feed of the fleet. The credential never travels on the command
 * line (where `ps` shows it): LOUPE_CONSOLE_TOKEN, or a file readable by its owner only
 * (--token-file, default <home>/console-token, made with a random credential on first start).
 */
const collect = (v: string, prev: string[] = []) => [...prev, v];

/** The console credential: the environment, else the token file (0600, created when it is the default and absent). */
export async function consoleToken(file: string, create: boolean): Promise<{ token: string; source: string; created: boolean }> {
  const env = process.env.LOUPE_CONSOLE_TOKEN;
  if (env) return { token: env.trim(), source: 'LOUPE_CONSOLE_TOKEN', created: false };
  if (!existsSync(file)) {
    if (!create)
      throw new LoupeError('CONSOLE_NO_TOKEN', 'no console credential: set LOUPE_CONSOLE_TOKEN or create this file (mode 0600)', {
        input: file,
      });
    await writeFileAtomic(file, `${randomBytes(24).toString('base64url')}\n`, { mode: 0o600 });
    return { token: readFileSync(file, 'utf8').trim(), source: file, created: true };
  }
  const mode = statSync(file).mode & 0o777;
  if (mode & 0o077)
    throw new LoupeError(
      'CONSOLE_TOKEN_FILE_OPEN',
      `the credential file is readable by others (mode ${mode.toString(8).padStart(4, '0')}); chmod 600 it`,
      { input: file },
    );
  return { token: readFileSync(file, 'utf8').trim(), source: file, created: false };
}

export function register(program: Command): void {
  program
    .command('console')
    .description(
      'the operator console (web): fleet, live inspection, labelling queue, loop runs, models; credential from LOUPE_CONSOLE_TOKEN or a 0600 file',
    )
    .option('--home <dir>', 'loop home (default $LOUPE_HOME or the project .loupe)')
    .option('--config <file>', 'loop configuration (default <home>/loop.json)')
    .option('--port <port>', 'TCP port', '8090')
    .option('--host <host>', 'interface to bind', '127.0.0.1')
    .option('--allowed-host <name>', 'a host name browsers reach the console by (besides IP addresses and localhost); repeatable', collect)
    .option('--mqtt <url>', "the broker devices publish to (default the loop configuration's fleet.mqttUrl)")
    .option('--token-file <file>', 'file holding the console credential (default <home>/console-token; created on first start)')
    .addOption(new Option('--token <token>', 'not accepted: a credential on the command line shows in ps and shell history').hideHelp())
    .action(
      async (o: {
        home?: string;
        config?: string;
        port: string;
        host: string;
        allowedHost?: string[];
        mqtt?: string;
        tokenFile?: string;
        token?: string;
      }) => {
        if (o.token !== undefined)
          throw new LoupeError(
            'CONSOLE_TOKEN_ARG',
            'a credential on the command line shows in ps and shell history; set LOUPE_CONSOLE_TOKEN or use --token-file',
            { input: '--token' },
          );
        const port = Number(o.port);
        if (!Number.isInteger(port) || port < 0 || port > 65535)
          throw new LoupeError('BAD_OPTION', `must be a port number, got ${JSON.stringify(o.port)}`, { input: '--port' });
        const log = createLogger('console', { stream: 'stderr' });
        const home = loopHome(o.home);
        const tokenFile = resolve(o.tokenFile ?? join(home.dir, 'console-token'));
        const cred = await consoleToken(tokenFile, o.tokenFile === undefined);
        const config = readLoopConfig(o.config ?? home.config);
        if (!config.fleet)
          throw new LoupeError('LOOP_NO_FLEET', 'the loop configuration has no `fleet` section', { input: o.config ?? home.config });
        const env = await LoopEnv.open(config, home, log);
        const store = new LoopStore(home.loopDb);
        const mqttUrl = o.mqtt ?? config.fleet.mqttUrl;
        const live = mqttUrl ? await LiveFeed.connect(mqttUrl) : null;
        const srv = await startConsoleServer({
          sources: loopSources(env, store, live),
          token: cred.token,
          port,
          host: o.host,
          allowedHosts: o.allowedHost,
          log,
        });
        log.info(
          { url: srv.url, credential: cred.source, created: cred.created || undefined, mqtt: mqttUrl ?? null },
          'operator console up',
        );
        process.stderr.write(`operator console at ${srv.url} (credential in ${cred.source}; Ctrl-C to stop)\n`);
        await new Promise<void>((res) => {
          process.once('SIGINT', () => res());
          process.once('SIGTERM', () => res());
        });
        await srv.stop();
        await live?.close();
        store.close();
        await env.close();
      },
    );
}
