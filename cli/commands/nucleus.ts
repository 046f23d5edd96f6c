import type { Command } from 'commander';
import { keysPath, tesCredentials } from '../../embedded/objectstore/keys.js';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pino } from 'pino';
import { followLog, parseFilters, selectLines } from '../nucleus-logs.js';
import { LoupeError } from '../../lib/errors.js';
import { readInitConfig } from '../../embedded/nucleus/initconfig.js';
import { Nucleus, optionsFromInitConfig, type NucleusOptions } from '../../embedded/nucleus/nucleus.js';

/**
 * `loupe nucleus start|deploy|status|logs`: the local Greengrass nucleus, shaped like the
 * Greengrass CLI's local deployments. `start` runs in the foreground (SIGTERM/SIGINT stop it
 * cleanly); `deploy` and `status` reach the running nucleus over its IPC socket with the CLI
 * token it wrote into the root (as greengrass-cli does). `deploy` exits 0 when the deployment
 * succeeded and 3 when it failed (and was rolled back); other errors exit 1.
 */
export const DEPLOYMENT_FAILED_EXIT = 3;

function parseMerge(values: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const v of values) {
    const m = /^([^=\s]+)=(\S+)$/.exec(v);
    if (!m) throw new LoupeError('CLI_MERGE', `must be NAME=VERSION, got "${v}"`, { input: '--merge' });
    out[m[1]!] = m[2]!;
  }
  return out;
}

function parseUpdateConfig(text: string | undefined): Record<string, Record<string, unknown>> | undefined {
  if (text === undefined) return undefined;
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new LoupeError('CLI_UPDATE_CONFIG', `not valid JSON: ${(e as Error).message}`, { input: '--update-config' });
  }
  if (
    v === null ||
    typeof v !== 'object' ||
    Array.isArray(v) ||
    Object.values(v).some((c) => c === null || typeof c !== 'object' || Array.isArray(c))
  ) {
    throw new LoupeError('CLI_UPDATE_CONFIG', 'must be {"<component>": {"MERGE": {...}, "RESET": ["/pointer", ...]}}', {
      input: '--update-config',
    });
  }
  return v as Record<string, Record<string, unknown>>;
}

function dirOption(p: string | undefined, flag: string): string | undefined {
  if (p === undefined) return undefined;
  const abs = resolve(p);
  if (!existsSync(abs)) throw new LoupeError('CLI_DIR', 'does not exist', { input: `${flag} ${p}` });
  return abs;
}

export function register(program: Command): void {
  const nucleus = program
    .command('nucleus')
    .description('the local Greengrass nucleus: run components on this machine with the real IPC protocol');

  nucleus
    .command('start')
    .description('run a nucleus in the foreground (stops cleanly on SIGTERM/SIGINT)')
    .option('--root <dir>', 'nucleus root (component store, work dirs, logs, config); default system.rootpath of --init-config')
    .option(
      '--init-config <file>',
      "the real nucleus's configuration file (system, services with inline components, aws.greengrass.Nucleus configuration): one file starts either nucleus",
    )
    .option('--thing <name>', 'thing name (AWS_IOT_THING_NAME, MQTT client id)')
    .option('--mqtt <url>', 'IoT Core stand-in broker URL; "none" for no bridge (default: start an embedded broker)')
    .option('--region <region>', 'AWS_REGION for components')
    .option('--keep-qos0-offline', 'also spool QoS 0 IoT Core messages while the broker is away')
    .option('--objectstore-dir <dir>', "the embedded object store's folder: its key pair is what the TES hands to components")
    .option('--log-file-size-kb <n>', 'rotate a component log when it reaches this size (Greengrass logging.fileSizeKB)', '1024')
    .option('--total-logs-size-kb <n>', 'keep at most this much log per component (Greengrass logging.totalLogsSizeKB)', '10240')
    .action(
      async (
        o: {
          root?: string;
          initConfig?: string;
          thing?: string;
          mqtt?: string;
          region?: string;
          keepQos0Offline?: boolean;
          objectstoreDir?: string;
          logFileSizeKb: string;
          totalLogsSizeKb: string;
        },
        cmd: Command,
      ) => {
        const init = o.initConfig !== undefined ? await readInitConfig(resolve(o.initConfig)) : undefined;
        const rootOption = o.root ?? init?.rootPath;
        if (!rootOption)
          throw new LoupeError('CLI_ROOT', 'give --root (or --init-config with system.rootpath)', { input: 'loupe nucleus start' });
        const root = resolve(rootOption);
        const kb = (v: string, flag: string): number => {
          const n = Number(v);
          if (!Number.isInteger(n) || n < 1)
            throw new LoupeError('CLI_BAD_OPTION', 'must be a whole number of KB, at least 1', { input: `${flag} ${v}` });
          return n;
        };
        // Flags given on the command line win over the configuration file; defaults do not.
        const given = (name: string) => cmd.getOptionValueSource(name) === 'cli';
        const logging = {
          fileSizeKB:
            !given('logFileSizeKb') && init?.logging?.fileSizeKB !== undefined
              ? init.logging.fileSizeKB
              : kb(o.logFileSizeKb, '--log-file-size-kb'),
          totalLogsSizeKB:
            !given('totalLogsSizeKb') && init?.logging?.totalLogsSizeKB !== undefined
              ? init.logging.totalLogsSizeKB
              : kb(o.totalLogsSizeKb, '--total-logs-size-kb'),
        };
        const level = process.env.LOUPE_LOG_LEVEL ?? 'info';
        const logger = pino(
          { name: 'nucleus', level, timestamp: pino.stdTimeFunctions.isoTime },
          pino.multistream([
            { level: level as pino.Level, stream: pino.destination({ fd: 2, sync: true }) },
            {
              level: level as pino.Level,
              stream: pino.destination({ dest: join(root, 'logs', 'greengrass.log'), mkdir: true, sync: true }),
            },
          ]),
        );
        const overrides: Partial<NucleusOptions> = {
          root,
          logger,
          ...(o.thing ? { thingName: o.thing } : {}),
          ...(o.region ? { region: o.region } : {}),
          ...(o.mqtt !== undefined ? { mqttUrl: o.mqtt === 'none' ? false : o.mqtt } : {}),
          ...(o.keepQos0Offline ? { keepQos0WhenOffline: true } : {}),
          // read on every TES request, so keys replaced in the store's folder are picked up
          ...(o.objectstoreDir ? { credentials: () => tesCredentials(keysPath(resolve(o.objectstoreDir!))) } : {}),
          logging,
        };
        const n = new Nucleus(init ? optionsFromInitConfig(init, overrides) : { ...overrides, root });
        await n.start();
        const s = n.status();
        process.stdout.write(
          JSON.stringify({
            started: true,
            root: s.root,
            pid: s.pid,
            thingName: s.thingName,
            socketPath: s.socketPath,
            tesUri: s.tesUri,
            mqttUrl: s.mqttUrl,
            components: s.components,
          }) + '\n',
        );
        await new Promise<void>((resolveStop) => {
          const onSignal = (sig: string) => {
            logger.info({ signal: sig }, 'stopping on signal');
            process.off('SIGTERM', onSignal);
            process.off('SIGINT', onSignal);
            n.stop().then(resolveStop, resolveStop);
          };
          process.on('SIGTERM', onSignal);
          process.on('SIGINT', onSignal);
        });
      },
    );

  nucleus
    .command('deploy')
    .description('create a local deployment on the running nucleus and wait until it succeeds or rolls back (exit 0 / 3)')
    .requiredOption('--root <dir>', 'root of the running nucleus')
    .option('--recipe-dir <dir>', 'folder of component recipes (*.json, *.yaml)')
    .option('--artifact-dir <dir>', 'folder of artefacts: <dir>/<component>/<version>/<file>')
    .option(
      '--merge <NAME=VERSION>',
      'root component to add or update (repeatable)',
      (v: string, prev: string[]) => [...prev, v],
      [] as string[],
    )
    .option('--remove <NAME>', 'root component to remove (repeatable)', (v: string, prev: string[]) => [...prev, v], [] as string[])
    .option('--update-config <json>', 'configuration updates: {"<component>": {"MERGE": {...}, "RESET": ["/pointer"]}}')
    .option('--failure-handling-policy <policy>', 'ROLLBACK (default) or DO_NOTHING')
    .option('--timeout <seconds>', 'give up waiting after this long', '1800')
    .option('--json', 'print the final deployment status as JSON')
    .action(
      async (o: {
        root: string;
        recipeDir?: string;
        artifactDir?: string;
        merge: string[];
        remove: string[];
        updateConfig?: string;
        failureHandlingPolicy?: string;
        timeout: string;
        json?: boolean;
      }) => {
        const merge = parseMerge(o.merge);
        const componentToConfiguration = parseUpdateConfig(o.updateConfig);
        const recipeDir = dirOption(o.recipeDir, '--recipe-dir');
        const artifactDir = dirOption(o.artifactDir, '--artifact-dir');
        const policy = o.failureHandlingPolicy?.toUpperCase();
        if (policy !== undefined && policy !== 'ROLLBACK' && policy !== 'DO_NOTHING')
          throw new LoupeError('CLI_POLICY', `must be ROLLBACK or DO_NOTHING, got "${o.failureHandlingPolicy}"`, {
            input: '--failure-handling-policy',
          });
        const timeoutS = Number(o.timeout);
        if (!Number.isFinite(timeoutS) || timeoutS <= 0)
          throw new LoupeError('CLI_TIMEOUT', `must be a positive number of seconds, got "${o.timeout}"`, { input: '--timeout' });
        if (Object.keys(merge).length === 0 && o.remove.length === 0 && !componentToConfiguration) {
          throw new LoupeError('CLI_EMPTY_DEPLOYMENT', 'give at least one --merge, --remove or --update-config', {
            input: 'loupe nucleus deploy',
          });
        }
        // The IPC client (aws-crt) is loaded only by the commands that talk to a running nucleus.
        const { NucleusCliClient } = await import('../../embedded/nucleus/cli-client.js');
        const client = await NucleusCliClient.connect(o.root);
        try {
          const id = await client.createLocalDeployment({
            ...(recipeDir ? { recipeDirectoryPath: recipeDir } : {}),
            ...(artifactDir ? { artifactsDirectoryPath: artifactDir } : {}),
            rootComponentVersionsToAdd: merge,
            rootComponentsToRemove: o.remove,
            ...(componentToConfiguration ? { componentToConfiguration } : {}),
            ...(policy ? { failureHandlingPolicy: policy as 'ROLLBACK' | 'DO_NOTHING' } : {}),
          });
          process.stderr.write(`loupe: deployment ${id} submitted\n`);
          const s = await client.waitForDeployment(id, {
            timeoutMs: timeoutS * 1000,
            onStatus: (st) => process.stderr.write(`loupe: deployment ${id} ${st.status}\n`),
          });
          const components = await client.listComponents();
          const result = {
            deploymentId: id,
            status: s.status,
            detailedStatus: s.deploymentStatusDetails?.detailedDeploymentStatus ?? null,
            failureCause: s.deploymentStatusDetails?.deploymentFailureCause ?? null,
            components: components.map((c) => ({ name: c.componentName, version: c.version, state: c.state })),
          };
          if (o.json) process.stdout.write(JSON.stringify(result) + '\n');
          else {
            process.stdout.write(
              `${s.status}${result.detailedStatus ? ` (${result.detailedStatus})` : ''}${result.failureCause ? `: ${result.failureCause}` : ''}\n`,
            );
            for (const c of result.components) process.stdout.write(`  ${c.name} ${c.version} ${c.state}\n`);
          }
          if (s.status !== 'SUCCEEDED') process.exitCode = DEPLOYMENT_FAILED_EXIT;
        } finally {
          await client.close();
        }
      },
    );

  nucleus
    .command('status')
    .description("each component's name, version and state (from the running nucleus, else the last good deployment)")
    .requiredOption('--root <dir>', 'nucleus root')
    .option('--json', 'print JSON')
    .action(async (o: { root: string; json?: boolean }) => {
      const root = resolve(o.root);
      let out: {
        root: string;
        running: boolean;
        pid: number | null;
        components: { name: string; version: string; state: string | null }[];
        lastDeployment: unknown;
      };
      const { NucleusCliClient, readCliIpcInfo } = await import('../../embedded/nucleus/cli-client.js');
      if (readCliIpcInfo(root)) {
        const client = await NucleusCliClient.connect(root);
        try {
          const comps = await client.listComponents();
          const deps = await client.listDeployments();
          out = {
            root,
            running: true,
            pid: readCliIpcInfo(root)?.pid ?? null,
            components: comps.map((c) => ({ name: c.componentName, version: c.version, state: c.state })),
            lastDeployment: deps.at(-1) ?? null,
          };
        } finally {
          await client.close();
        }
      } else {
        if (!existsSync(root)) throw new LoupeError('NUCLEUS_ROOT', 'does not exist', { input: root });
        const lg = join(root, 'config', 'last-good.json');
        const comps = existsSync(lg)
          ? (JSON.parse(readFileSync(lg, 'utf8')) as { components: Record<string, { version: string }> }).components
          : {};
        out = {
          root,
          running: false,
          pid: null,
          components: Object.entries(comps).map(([name, c]) => ({ name, version: c.version, state: null })),
          lastDeployment: null,
        };
      }
      if (o.json) process.stdout.write(JSON.stringify(out) + '\n');
      else {
        process.stdout.write(`nucleus ${out.running ? `running (pid ${out.pid})` : 'not running'} at ${root}\n`);
        for (const c of out.components) process.stdout.write(`  ${c.name} ${c.version} ${c.state ?? '-'}\n`);
      }
    });

  nucleus
    .command('logs')
    .description("print a component's log (<root>/logs/<name>.log); NAME greengrass is the nucleus's own log (as greengrass-cli logs get)")
    .requiredOption('--root <dir>', 'nucleus root')
    .argument('<name>', 'component name')
    .option('--tail <n>', 'only the last N lines')
    .option(
      '--filter <f>',
      'key=value (a JSON log field, e.g. level=ERROR) or a regular expression; repeat: all must match',
      (v: string, acc: string[]) => [...acc, v],
      [] as string[],
    )
    .option('--follow', 'keep printing lines as they are written (rotation followed), until Ctrl-C')
    .option('--format <f>', 'human (JSON log lines as time LEVEL msg key=value) or raw', 'raw')
    .action(async (name: string, o: { root: string; tail?: string; filter: string[]; follow?: boolean; format: string }) => {
      const file = join(resolve(o.root), 'logs', `${name}.log`);
      if (!/^[A-Za-z0-9\-_.]+$/.test(name)) throw new LoupeError('CLI_NAME', 'is not a component name', { input: name });
      if (o.format !== 'human' && o.format !== 'raw')
        throw new LoupeError('CLI_FORMAT', 'must be human or raw', { input: `--format ${o.format}` });
      if (!existsSync(file)) throw new LoupeError('NO_LOG', `has no log at ${file}`, { input: name });
      const filters = parseFilters(o.filter);
      const human = o.format === 'human';
      const text = readFileSync(file, 'utf8');
      let lines = selectLines(text, filters, human);
      if (o.tail !== undefined) {
        const n = Number(o.tail);
        if (!Number.isInteger(n) || n < 0) throw new LoupeError('CLI_TAIL', `must be a whole number, got "${o.tail}"`, { input: '--tail' });
        lines = n === 0 ? [] : lines.slice(-n);
      }
      if (lines.length) process.stdout.write(lines.join('\n') + '\n');
      if (!o.follow) return;
      const stop = new AbortController();
      const end = () => stop.abort();
      process.once('SIGINT', end);
      process.once('SIGTERM', end);
      await followLog(file, Buffer.byteLength(text), (l) => process.stdout.write(l + '\n'), { filters, human, signal: stop.signal });
    });

  const component = nucleus
    .command('component')
    .description('act on one component of the running nucleus (greengrass-cli component restart|stop)');
  for (const [verb, what] of [
    ['restart', 'restart a component (its Shutdown, then Install/Startup/Run again)'],
    ['stop', 'stop a component (its Shutdown runs; it stays stopped until restarted or redeployed)'],
  ] as const) {
    component
      .command(verb)
      .description(what)
      .requiredOption('--root <dir>', 'nucleus root')
      .argument('<names...>', 'component names')
      .option('--json', 'print JSON')
      .action(async (names: string[], o: { root: string; json?: boolean }) => {
        const { NucleusCliClient } = await import('../../embedded/nucleus/cli-client.js');
        const client = await NucleusCliClient.connect(resolve(o.root));
        try {
          for (const n of names) {
            const r = verb === 'restart' ? await client.restartComponent(n) : await client.stopComponent(n);
            process.stdout.write(
              o.json
                ? JSON.stringify({ component: n, action: verb, ...r }) + '\n'
                : `${n}: ${verb} ${r.status}${r.message ? ` (${r.message})` : ''}\n`,
            );
          }
        } finally {
          await client.close();
        }
      });
  }

  const deployment = nucleus
    .command('deployment')
    .description('local deployments of the running nucleus (greengrass-cli deployment list|status)');
  const printDeployment = (d: {
    deploymentId: string;
    status: string;
    createdOn?: string;
    deploymentStatusDetails?: { detailedDeploymentStatus?: string; deploymentFailureCause?: string };
  }) =>
    `${d.deploymentId} ${d.status}${d.deploymentStatusDetails?.detailedDeploymentStatus ? ` ${d.deploymentStatusDetails.detailedDeploymentStatus}` : ''}${d.createdOn ? ` created ${d.createdOn}` : ''}${d.deploymentStatusDetails?.deploymentFailureCause ? `: ${d.deploymentStatusDetails.deploymentFailureCause}` : ''}\n`;
  deployment
    .command('list')
    .description('every local deployment, oldest first')
    .requiredOption('--root <dir>', 'nucleus root')
    .option('--json', 'print JSON')
    .action(async (o: { root: string; json?: boolean }) => {
      const { NucleusCliClient } = await import('../../embedded/nucleus/cli-client.js');
      const client = await NucleusCliClient.connect(resolve(o.root));
      try {
        const list = await client.listDeployments();
        process.stdout.write(o.json ? JSON.stringify(list) + '\n' : list.map(printDeployment).join(''));
      } finally {
        await client.close();
      }
    });
  deployment
    .command('status')
    .description("one deployment's status")
    .requiredOption('--root <dir>', 'nucleus root')
    .argument('<id>', 'deployment id (from deploy or deployment list)')
    .option('--json', 'print JSON')
    .action(async (id: string, o: { root: string; json?: boolean }) => {
      const { NucleusCliClient } = await import('../../embedded/nucleus/cli-client.js');
      const client = await NucleusCliClient.connect(resolve(o.root));
      try {
        const d = await client.deploymentStatus(id);
        process.stdout.write(o.json ? JSON.stringify(d) + '\n' : printDeployment(d));
      } finally {
        await client.close();
      }
    });
}
