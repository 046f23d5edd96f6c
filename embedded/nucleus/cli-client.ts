import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { greengrasscoreipc } from 'aws-iot-device-sdk-v2';
import { LoupeError } from '../../lib/errors.js';
import type { CliIpcInfo } from './nucleus.js';

/**
 * How another process (the `loupe nucleus deploy|status` CLI, a script) drives a running
 * nucleus: the Greengrass CLI's own route. The nucleus writes <root>/cli_ipc_info with a CLI
 * token and the socket path; we connect with the real greengrasscoreipc client and call
 * CreateLocalDeployment / GetLocalDeploymentStatus / ListComponents like `greengrass-cli` does.
 */
export interface LocalDeploymentStatus {
  deploymentId: string;
  status: string;
  createdOn?: string;
  deploymentStatusDetails?: {
    detailedDeploymentStatus?: string;
    deploymentFailureCause?: string;
    deploymentErrorTypes?: string[];
  };
}

export function readCliIpcInfo(root: string): CliIpcInfo | undefined {
  const f = join(resolve(root), 'cli_ipc_info');
  if (!existsSync(f)) return undefined;
  const info = JSON.parse(readFileSync(f, 'utf8')) as CliIpcInfo;
  try {
    process.kill(info.pid, 0);
  } catch {
    return undefined; // left behind by a nucleus that was killed
  }
  return info;
}

/**
 * The nucleus's own words for a failed call: the modelled error's message ("Check serviceError
 * property for details" is all the client's description says), else the client's description.
 */
export function nucleusError(operation: string, e: unknown): LoupeError {
  const err = e as { serviceError?: { message?: string; _errorCode?: string }; description?: string; message?: string };
  const text = err?.serviceError?.message ?? err?.description ?? err?.message ?? String(e);
  const code = err?.serviceError?._errorCode;
  return new LoupeError('NUCLEUS_ERROR', `${operation} failed${code ? ` (${code})` : ''}: ${text}`, { input: operation, cause: e });
}

async function call<T>(operation: string, f: () => Promise<T>): Promise<T> {
  try {
    return await f();
  } catch (e) {
    throw nucleusError(operation, e);
  }
}

export class NucleusCliClient {
  private constructor(private readonly client: greengrasscoreipc.Client) {}

  static async connect(root: string): Promise<NucleusCliClient> {
    const info = readCliIpcInfo(root);
    if (!info)
      throw new LoupeError('NUCLEUS_NOT_RUNNING', 'no nucleus is running on this root (start one with `loupe nucleus start --root ...`)', {
        input: resolve(root),
      });
    const config = greengrasscoreipc.createDefaultClientConfig();
    config.hostName = info.domain_socket_path;
    config.connectTransform = async (o) => {
      o.message.payload = JSON.stringify({ authToken: info.cli_auth_token });
      return o.message;
    };
    const client = greengrasscoreipc.createClient(config);
    try {
      await client.connect();
    } catch (e) {
      // the connect failed (reported just below); the half-open client just goes
      await client.close().catch(() => {});
      throw new LoupeError(
        'NUCLEUS_UNREACHABLE',
        `cannot connect to the nucleus IPC socket ${info.domain_socket_path}: ${(e as Error).message}`,
        { input: resolve(root), cause: e },
      );
    }
    return new NucleusCliClient(client);
  }

  async createLocalDeployment(req: {
    recipeDirectoryPath?: string;
    artifactsDirectoryPath?: string;
    rootComponentVersionsToAdd?: Record<string, string>;
    rootComponentsToRemove?: string[];
    componentToConfiguration?: Record<string, Record<string, unknown>>;
    failureHandlingPolicy?: 'ROLLBACK' | 'DO_NOTHING';
  }): Promise<string> {
    // The client's model types these two as Maps (it validates that before sending).
    const r = await call('CreateLocalDeployment', () =>
      this.client.createLocalDeployment({
        ...req,
        ...(req.rootComponentVersionsToAdd ? { rootComponentVersionsToAdd: new Map(Object.entries(req.rootComponentVersionsToAdd)) } : {}),
        ...(req.componentToConfiguration ? { componentToConfiguration: new Map(Object.entries(req.componentToConfiguration)) } : {}),
      } as greengrasscoreipc.model.CreateLocalDeploymentRequest),
    );
    if (!r.deploymentId)
      throw new LoupeError('DEPLOYMENT_FAILED', 'the nucleus returned no deployment id', { input: 'CreateLocalDeployment' });
    return r.deploymentId;
  }

  async deploymentStatus(deploymentId: string): Promise<LocalDeploymentStatus> {
    const r = await call('GetLocalDeploymentStatus', () => this.client.getLocalDeploymentStatus({ deploymentId }));
    return r.deployment as LocalDeploymentStatus;
  }

  /** Poll until the deployment has finished (SUCCEEDED, FAILED or CANCELED). */
  async waitForDeployment(
    deploymentId: string,
    opts: { pollMs?: number; timeoutMs?: number; onStatus?: (s: LocalDeploymentStatus) => void } = {},
  ): Promise<LocalDeploymentStatus> {
    const deadline = Date.now() + (opts.timeoutMs ?? 30 * 60_000);
    let last = '';
    for (;;) {
      const s = await this.deploymentStatus(deploymentId);
      if (s.status !== last) {
        last = s.status;
        opts.onStatus?.(s);
      }
      if (s.status === 'SUCCEEDED' || s.status === 'FAILED' || s.status === 'CANCELED') return s;
      if (Date.now() > deadline)
        throw new LoupeError('DEPLOYMENT_TIMEOUT', `still ${s.status} after the wait limit`, { input: deploymentId });
      await new Promise((r) => setTimeout(r, opts.pollMs ?? 250));
    }
  }

  async listComponents(): Promise<{ componentName: string; version: string; state: string; configuration?: Record<string, unknown> }[]> {
    const r = await call('ListComponents', () => this.client.listComponents({}));
    return (r.components ?? []) as { componentName: string; version: string; state: string; configuration?: Record<string, unknown> }[];
  }

  async listDeployments(): Promise<LocalDeploymentStatus[]> {
    const r = await call('ListLocalDeployments', () => this.client.listLocalDeployments({}));
    return (r.localDeployments ?? []) as LocalDeploymentStatus[];
  }

  async restartComponent(componentName: string): Promise<{ status: string; message: string }> {
    const r = await call('RestartComponent', () => this.client.restartComponent({ componentName }));
    return { status: String(r.restartStatus ?? ''), message: r.message ?? '' };
  }

  async stopComponent(componentName: string): Promise<{ status: string; message: string }> {
    const r = await call('StopComponent', () => this.client.stopComponent({ componentName }));
    return { status: String(r.stopStatus ?? ''), message: r.message ?? '' };
  }

  async close(): Promise<void> {
    await this.client.close();
  }
}
