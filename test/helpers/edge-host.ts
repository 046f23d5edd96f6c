/**
 * The edge stack's nucleus (and the components under it) in a process of its own, for tests and
 * the soak that kill it with SIGKILL: `node dist/test/helpers/edge-host.js '<json>'`. The broker and
 * the object store are the caller's (given by URL and folder), so killing this process kills the
 * nucleus alone; its components die with it (their guard), as on a device.
 *
 * The JSON: { root, brokerUrl, store: { endpoint, port, dir, region }, options } where options
 * are startEdgeStack's serialisable options (source, fps, config, modelDir, ...). Prints one JSON
 * line {"ready":true,...} on stdout once the suite is deployed; on SIGTERM it stops the stack
 * and keeps the root. Commands on stdin, one JSON line each, answered on stdout:
 * {"deployModel":{"dir","version"}} -> {"deployed":"1.1.0","status":"SUCCEEDED"}.
 */
import { createInterface } from 'node:readline';
import { keysPath, readKeysFile, storeHandle } from '../../embedded/objectstore/index.js';
import type { EmbeddedBroker } from '../../embedded/broker/broker.js';
import { startEdgeStack, type EdgeStackOptions } from '../../embedded/stack/edge.js';

interface HostConfig {
  root: string;
  brokerUrl: string;
  store: { endpoint: string; port: number; dir: string; region: string };
  options: Omit<EdgeStackOptions, 'root' | 'broker' | 'objectStore' | 'log'>;
}

const cfg = JSON.parse(process.argv[2] ?? '') as HostConfig;
const url = new URL(cfg.brokerUrl);
// The caller's broker: the stack only needs its URL.
const broker: EmbeddedBroker = {
  url: cfg.brokerUrl,
  port: Number(url.port),
  host: url.hostname,
  connectedClients: () => 0,
  onPublish: () => () => {},
  stop: async () => {},
};
const objectStore = {
  ...storeHandle(cfg.store.endpoint, cfg.store.port, cfg.store.dir, cfg.store.region, readKeysFile(keysPath(cfg.store.dir))),
  stop: async () => {},
};

const stack = await startEdgeStack({ ...cfg.options, root: cfg.root, broker, objectStore });
const say = (o: Record<string, unknown>) => process.stdout.write(JSON.stringify(o) + '\n');
say({ ready: true, pid: process.pid, deployment: stack.deployment.status, modelVersion: stack.modelVersion });

createInterface({ input: process.stdin }).on('line', (line) => {
  void (async () => {
    try {
      const cmd = JSON.parse(line) as { deployModel?: { dir: string; version: string } };
      if (cmd.deployModel) {
        const rec = await stack.deployModel(cmd.deployModel);
        say({ deployed: cmd.deployModel.version, status: rec.status, detailedStatus: rec.detailedStatus });
      }
    } catch (e) {
      say({ error: (e as Error).message });
    }
  })();
});

let stopping = false;
process.on('SIGTERM', () => {
  if (stopping) return;
  stopping = true;
  void stack.stop({ keep: true }).finally(() => process.exit(0));
});
