import { appendFileSync } from 'node:fs';
import { join } from 'node:path';
import { errorMessage } from '../../lib/errors.js';
import { createLogger } from '../../lib/log.js';
import { GreengrassIpc } from '../../components/ipc/client.js';

/**
 * A probe component for tests on a nucleus (packaged and run like loupe's own components): it
 * subscribes over IPC to the topics named in PROBE_TOPICS (comma-separated) and appends every
 * message to `observed.jsonl` in its work folder (its working directory), one JSON object a line:
 *   {kind: 'message', topic, message}
 * and records what the device's cloud side answers:
 *   {kind: 'iotcore', topic, ok, error?}  one PublishToIoTCore on PROBE_IOT_TOPIC
 *   {kind: 'tes', status}                 one GET of the Token Exchange Service
 * then {kind: 'ready'} once every subscription is open. It runs until the nucleus stops it.
 */
const out = join(process.cwd(), 'observed.jsonl');
const write = (o: Record<string, unknown>) => appendFileSync(out, JSON.stringify({ at: new Date().toISOString(), ...o }) + '\n');
const log = createLogger('probe');

const ipc = await GreengrassIpc.connect({ log });
for (const topic of (process.env.PROBE_TOPICS ?? '').split(',').filter(Boolean)) {
  await ipc.subscribe(topic, (message, t) => write({ kind: 'message', topic: t, message }));
}
if (process.env.PROBE_IOT_TOPIC) {
  try {
    await ipc.publishIoTCore(process.env.PROBE_IOT_TOPIC, { probe: true });
    write({ kind: 'iotcore', topic: process.env.PROBE_IOT_TOPIC, ok: true });
  } catch (e) {
    const cause = (e as { cause?: { serviceError?: unknown } }).cause;
    write({
      kind: 'iotcore',
      topic: process.env.PROBE_IOT_TOPIC,
      ok: false,
      error: errorMessage(e),
      serviceError: cause?.serviceError ?? null,
    });
  }
}
if (process.env.AWS_CONTAINER_CREDENTIALS_FULL_URI) {
  try {
    const r = await fetch(process.env.AWS_CONTAINER_CREDENTIALS_FULL_URI, {
      headers: { Authorization: process.env.AWS_CONTAINER_AUTHORIZATION_TOKEN ?? '' },
    });
    write({ kind: 'tes', status: r.status });
  } catch (e) {
    write({ kind: 'tes', status: null, error: errorMessage(e) });
  }
}
write({ kind: 'ready' });
const stop = () => {
  void ipc.close().finally(() => process.exit(0));
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
