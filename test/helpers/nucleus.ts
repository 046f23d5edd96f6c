import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { connect, type Socket } from 'node:net';
import { projectRoot } from '../../lib/paths.js';
import { encodeMessage, FrameReader, type Message, type MessageHeaders } from '../../embedded/nucleus/ipc/framing.js';

/**
 * Test helpers for the local nucleus: short temp roots (Unix socket paths must stay < 108
 * bytes), recipes for the agent fixture (test/fixtures/nucleus/agent.mjs, a real component using
 * the real greengrasscoreipc client), and reading what the agent recorded.
 */
export const AGENT = join(projectRoot, 'test', 'fixtures', 'nucleus', 'agent.mjs');
export const FIXTURES = join(projectRoot, 'test', 'fixtures', 'nucleus');

export function tempRoot(prefix = 'ln-'): string {
  return mkdtempSync(join('/tmp', prefix));
}

/**
 * A folder every component may write to. When the tests run as root, components run as
 * ggc_user (as on a device) and cannot write into the root-owned nucleus root, so scripts
 * that leave marks for a test write here.
 */
export function sharedDir(root: string): string {
  const d = join(root, 'shared');
  mkdirSync(d, { recursive: true });
  chmodSync(d, 0o777);
  return d;
}

/** Whether a process exists (signal 0). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export async function removeRoot(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
}

export const PUBSUB_ALL = {
  'aws.greengrass.ipc.pubsub': { 'test:pubsub:1': { policyDescription: 'all topics', operations: ['*'], resources: ['*'] } },
};

export interface AgentRecipeOptions {
  name: string;
  version?: string;
  steps: unknown[];
  /** Merged into DefaultConfiguration. */
  config?: Record<string, unknown>;
  accessControl?: Record<string, unknown>;
  dependencies?: Record<string, { VersionRequirement?: string; DependencyType?: 'HARD' | 'SOFT' }>;
  setenv?: Record<string, string>;
  /** Extra lifecycle steps (Install, Shutdown, ...). */
  lifecycle?: Record<string, unknown>;
  artifacts?: unknown[];
}

/** Write the agent's steps file and its recipe (JSON) into `recipeDir`; returns the recipe. */
export function writeAgentRecipe(recipeDir: string, o: AgentRecipeOptions): Record<string, unknown> {
  mkdirSync(recipeDir, { recursive: true });
  const version = o.version ?? '1.0.0';
  // Beside the recipe folder: every *.json inside it is read as a recipe.
  const stepsDir = join(dirname(recipeDir), 'agent-steps');
  mkdirSync(stepsDir, { recursive: true });
  const stepsFile = join(stepsDir, `${o.name}-${version}-${Date.now()}.json`);
  writeFileSync(stepsFile, JSON.stringify(o.steps));
  const recipe = {
    RecipeFormatVersion: '2020-01-25',
    ComponentName: o.name,
    ComponentVersion: version,
    ComponentConfiguration: { DefaultConfiguration: { ...(o.config ?? {}), accessControl: o.accessControl ?? PUBSUB_ALL } },
    ...(o.dependencies ? { ComponentDependencies: o.dependencies } : {}),
    Manifests: [
      {
        Platform: { os: 'linux' },
        Lifecycle: {
          Setenv: { AGENT_SCRIPT: stepsFile, ...(o.setenv ?? {}) },
          Run: `exec node ${AGENT}`,
          ...(o.lifecycle ?? {}),
        },
        ...(o.artifacts ? { Artifacts: o.artifacts } : {}),
      },
    ],
  };
  writeFileSync(join(recipeDir, `${o.name}-${version}.json`), JSON.stringify(recipe, null, 2));
  return recipe;
}

export function writeRecipe(recipeDir: string, recipe: Record<string, unknown>, ext: 'json' | 'yaml' = 'json', text?: string): string {
  mkdirSync(recipeDir, { recursive: true });
  const f = join(recipeDir, `${String(recipe.ComponentName)}-${String(recipe.ComponentVersion)}.${ext}`);
  writeFileSync(f, text ?? JSON.stringify(recipe, null, 2));
  return f;
}

export type AgentRecord = Record<string, unknown> & { op?: string; ok?: boolean; event?: string; step?: number; result?: any; error?: any };

export function agentRecords(root: string, name: string): AgentRecord[] {
  const f = join(root, 'work', name, 'results.jsonl');
  if (!existsSync(f)) return [];
  return readFileSync(f, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as AgentRecord);
}

/** Poll the agent's records until `pred` finds what it wants. */
export async function waitForRecord(
  root: string,
  name: string,
  pred: (r: AgentRecord) => boolean,
  timeoutMs = 30_000,
): Promise<AgentRecord> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const hit = agentRecords(root, name).find(pred);
    if (hit) return hit;
    if (Date.now() > deadline) {
      throw new Error(
        `timed out waiting for a record of ${name}; have:\n${agentRecords(root, name)
          .map((r) => JSON.stringify(r))
          .join('\n')}`,
      );
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

export const stepResult = (root: string, name: string, op: string, timeoutMs?: number) =>
  waitForRecord(root, name, (r) => r.op === op && r.step !== undefined, timeoutMs);

export async function until(pred: () => boolean, timeoutMs = 30_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

// --- a raw event-stream RPC client (for protocol and robustness tests) -----------------------

const int = (value: number) => ({ type: 'integer' as const, value });
const str = (value: string) => ({ type: 'string' as const, value });

export function rpcFrame(
  type: number,
  flags: number,
  streamId: number,
  headers: MessageHeaders = {},
  body: Uint8Array | string = new Uint8Array(0),
): Buffer {
  return encodeMessage(
    { ...headers, ':message-type': int(type), ':message-flags': int(flags), ':stream-id': int(streamId) },
    typeof body === 'string' ? Buffer.from(body) : body,
  );
}

export class RawClient {
  readonly messages: Message[] = [];
  closed = false;
  private readonly reader = new FrameReader();
  private waiters: (() => void)[] = [];

  private constructor(readonly socket: Socket) {
    socket.on('data', (c: Buffer) => {
      for (const m of this.reader.feed(c)) this.messages.push(m);
      this.wake();
    });
    socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
    socket.on('error', () => {});
  }

  static open(path: string): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const s = connect(path, () => resolve(new RawClient(s)));
      s.once('error', reject);
    });
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  write(b: Buffer): void {
    this.socket.write(b);
  }

  connectMessage(token: string, version = '0.1.0'): void {
    this.write(rpcFrame(4, 0, 0, { ':version': str(version) }, JSON.stringify({ authToken: token })));
  }

  request(streamId: number, operation: string, body: unknown, flags = 0): void {
    this.write(rpcFrame(0, flags, streamId, { operation: str(operation) }, JSON.stringify(body)));
  }

  /** Wait for the n-th message (0-based) or the socket to close. */
  async next(index: number, timeoutMs = 10_000): Promise<Message | undefined> {
    const deadline = Date.now() + timeoutMs;
    while (this.messages.length <= index && !this.closed) {
      if (Date.now() > deadline) throw new Error(`no message #${index} within ${timeoutMs} ms`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, 100);
        this.waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
    return this.messages[index];
  }

  async waitClosed(timeoutMs = 10_000): Promise<void> {
    await until(() => this.closed, timeoutMs, 'the server to close the connection');
  }

  destroy(): void {
    this.socket.destroy();
  }
}

export function header(m: Message | undefined, name: string): unknown {
  return m?.headers[name]?.value;
}

export function bodyJson(m: Message | undefined): any {
  return m ? JSON.parse(Buffer.from(m.body).toString('utf8') || 'null') : undefined;
}
