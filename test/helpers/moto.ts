import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { ensureVenv } from '../../cloud/training/venv.js';
import { AWS_TOOLS_VENV, awsToolsBin } from '../../cloud/infra/tools.js';

/**
 * moto's server (PyPI moto[server], a real and independent implementation of the AWS APIs) on
 * 127.0.0.1 at a free port, from the cached aws-tools venv (`loupe setup aws-tools`; made here
 * when missing). Every test gets its own server process; `stop()` ends it (also on failure).
 */
export interface MotoServer {
  endpoint: string;
  /** What SDK clients need to talk to it (moto accepts any keys). */
  clientConfig: { region: string; endpoint: string; credentials: { accessKeyId: string; secretAccessKey: string } };
  stop(): Promise<void>;
}

export const MOTO_ACCOUNT = '123456789012';

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const a = srv.address();
      srv.close(() => (typeof a === 'object' && a ? resolve(a.port) : reject(new Error('no port'))));
    });
  });
}

export async function startMoto(region = 'eu-west-1'): Promise<MotoServer> {
  await ensureVenv(undefined, AWS_TOOLS_VENV);
  const port = await freePort();
  const child: ChildProcess = spawn(awsToolsBin('moto_server'), ['-H', '127.0.0.1', '-p', String(port)], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, MOTO_ALLOW_NONEXISTENT_REGION: 'true' },
  });
  let log = '';
  child.stdout!.on('data', (b: Buffer) => (log = (log + b.toString()).slice(-4000)));
  child.stderr!.on('data', (b: Buffer) => (log = (log + b.toString()).slice(-4000)));
  const endpoint = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 120_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`moto_server exited (${child.exitCode}): ${log}`);
    try {
      const r = await fetch(`${endpoint}/moto-api/`);
      if (r.ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`moto_server did not answer on ${endpoint} within 120 s: ${log}`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  return {
    endpoint,
    clientConfig: { region, endpoint, credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' } },
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
        setTimeout(() => child.kill('SIGKILL'), 5000).unref();
      }),
  };
}
