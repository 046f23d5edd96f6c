import type { Command } from 'commander';
import { resolve } from 'node:path';
import { LoupeError } from '../../lib/errors.js';
import { createLogger } from '../../lib/log.js';
import { ENV_ACCESS_KEY, ENV_SECRET_KEY, keysFromEnv, keysPath, readKeysFile, type StoreKeys } from '../../embedded/objectstore/keys.js';

/**
 * `loupe objectstore serve`: the embedded S3-compatible object store alone (what `edge up` and
 * the demo run as a supervised child process). Prints one JSON line on stdout when it listens:
 * {endpoint, port, dir, region, accessKeyId, keysFile} (never the secret); stops on SIGINT /
 * SIGTERM, or when the process that started it over an IPC channel goes away.
 * `loupe objectstore keys`: the store's key pair, for clients (`--env` prints AWS_* exports).
 */
function port(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 65535)
    throw new LoupeError('BAD_OPTION', `must be a port number 0-65535, got ${JSON.stringify(v)}`, { input: '--port' });
  return n;
}

const collect = (v: string, prev: string[] = []) => [...prev, v];

export function register(program: Command): void {
  const os = program.command('objectstore').description('the embedded S3-compatible object store');
  os.command('serve')
    .description('run the object store on a folder (requests must be SigV4-signed with its key pair)')
    .requiredOption('--dir <dir>', 'data folder (buckets, objects, credentials.json)')
    .option('--port <n>', 'TCP port (0 = a free one)', '0')
    .option('--host <addr>', 'interface to bind', '127.0.0.1')
    .option('--region <r>', 'region the store reports', 'us-east-1')
    .option('--access-key <id>', `set the key pair's access key id (or ${ENV_ACCESS_KEY}); default: the folder's own random pair`)
    .option('--secret-key <secret>', `set the secret key (prefer ${ENV_SECRET_KEY}: the command line is visible to other users)`)
    .option('--bucket <name>', 'create this bucket if absent (repeatable)', collect)
    .option('--allowed-host <host>', 'another Host name clients may use, e.g. a DNS name for a 0.0.0.0 bind (repeatable)', collect)
    .action(
      async (o: {
        dir: string;
        port: string;
        host: string;
        region: string;
        accessKey?: string;
        secretKey?: string;
        bucket?: string[];
        allowedHost?: string[];
      }) => {
        const log = createLogger('objectstore', { stream: 'stderr' });
        let credentials: StoreKeys | undefined;
        if (o.accessKey !== undefined || o.secretKey !== undefined) {
          if (!o.accessKey || !o.secretKey)
            throw new LoupeError('BAD_OPTION', 'give both --access-key and --secret-key, or neither', {
              input: o.accessKey ? '--secret-key' : '--access-key',
            });
          if (o.secretKey)
            log.warn(`--secret-key on the command line is visible to other users of this machine (ps); prefer ${ENV_SECRET_KEY}`);
          credentials = { accessKeyId: o.accessKey, secretAccessKey: o.secretKey };
        } else credentials = keysFromEnv();
        const { startObjectStore } = await import('../../embedded/objectstore/index.js');
        const store = await startObjectStore({
          dir: resolve(o.dir),
          port: port(o.port),
          host: o.host,
          region: o.region,
          ...(credentials ? { credentials } : {}),
          buckets: o.bucket ?? [],
          allowedHosts: o.allowedHost ?? [],
          log,
        });
        process.stdout.write(
          JSON.stringify({
            endpoint: store.endpoint,
            port: store.port,
            dir: store.dir,
            region: store.region,
            accessKeyId: store.credentials.accessKeyId,
            keysFile: store.keysFile,
            pid: process.pid,
          }) + '\n',
        );
        await new Promise<void>((res) => {
          process.once('SIGINT', res);
          process.once('SIGTERM', res);
          // Started by a supervisor over an IPC channel: go when it goes (even after its kill -9).
          if (process.send) process.once('disconnect', res);
        });
        await store.stop();
        log.info('object store stopped');
        if (process.connected) process.disconnect();
      },
    );
  os.command('keys')
    .description("print the store's key pair (created by the first start)")
    .requiredOption('--dir <dir>', 'the data folder')
    .option('--env', 'as shell exports of AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY')
    .action((o: { dir: string; env?: boolean }) => {
      const k = readKeysFile(keysPath(resolve(o.dir)));
      if (o.env) process.stdout.write(`export AWS_ACCESS_KEY_ID=${k.accessKeyId}\nexport AWS_SECRET_ACCESS_KEY=${k.secretAccessKey}\n`);
      else process.stdout.write(JSON.stringify(k) + '\n');
    });
}
