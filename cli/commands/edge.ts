import type { Command } from 'commander';
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { LoupeError } from '../../lib/errors.js';
import { createLogger } from '../../lib/log.js';
import { parseSourceSpec, startEdgeStack, type EdgeEndpoints } from '../../embedded/stack/edge.js';
import { defaultModelDir } from '../../lib/paths.js';
import { formatDuration } from '../../lib/progress.js';
import { outputFormat, say, terminal, type LiveLine } from '../../lib/terminal.js';

/**
 * `loupe edge up`: the edge half of loupe on this machine. Starts the MQTT broker, the
 * S3-compatible object store and the local nucleus, deploys loupe.Model, loupe.Camera,
 * loupe.Inference and loupe.Uploader, prints live figures on stderr, and on --duration (or
 * Ctrl-C) stops and prints one summary: with --json a single JSON line on stdout,
 * {frames, inferred, defects, uploaded, spoolPending, errors, modelVersion, seconds}.
 */
function positive(v: string, flag: string): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new LoupeError('cli.number', `must be a positive number, got "${v}"`, { input: flag });
  return n;
}

export function register(program: Command): void {
  const edge = program.command('edge').description('the edge components on this machine (local nucleus, broker, object store)');
  edge
    .command('up')
    .description('start the embedded stack, deploy the loupe suite, show live figures')
    .option(
      '--source <kind:value>',
      'camera source: folder:PATH, stream:URL, v4l2:DEVICE, snapshot:URL or command:CMD (default: a folder camera over the shipped metal-tags photos)',
    )
    .option('--fps <n>', 'camera frames per second (interval trigger)', '5')
    .option('--duration <s>', 'stop after this many seconds (default: run until Ctrl-C)')
    .option('--model <dir>', 'folder with model.onnx (and card.json) (default: the shipped models/metal-tags)')
    .option('--model-version <v>', 'loupe.Model component version', '1.0.0')
    .option('--thing <name>', 'thing name', 'loupe-edge-1')
    .option('--root <dir>', 'keep the stack in this folder (default: a temp folder, removed at the end)')
    .option('--json', 'print the summary as one JSON line on stdout')
    .action(
      async (o: {
        source?: string;
        fps: string;
        duration?: string;
        model?: string;
        modelVersion: string;
        thing: string;
        root?: string;
        json?: boolean;
      }) => {
        const log = createLogger('edge', { stream: 'stderr' });
        const fps = positive(o.fps, '--fps');
        const duration = o.duration === undefined ? undefined : positive(o.duration, '--duration');
        const source = o.source ? parseSourceSpec(o.source) : undefined;
        const t0 = Date.now();
        // A stack that fails to start keeps its folder: the error names the component logs in it.
        const stack = await startEdgeStack({
          ...(source ? { source } : {}),
          fps,
          modelDir: o.model ? resolve(o.model) : defaultModelDir(),
          modelVersion: o.modelVersion,
          thingName: o.thing,
          ...(o.root ? { root: resolve(o.root) } : {}),
          keepOnFailure: true,
          log,
        });
        const ep = stack.endpoints();
        if (outputFormat() === 'human') say(endpointsText(ep, (Date.now() - t0) / 1000, duration));
        // the secret stays out of log files; it is in the store's key file (mode 0600)
        else log.info({ endpoints: { ...ep, objectStore: { ...ep.objectStore, secretAccessKey: undefined } } }, 'edge stack up');

        // A component that errors is reported at once, with its reason; BROKEN (restarts used up) ends the run.
        const failures = new Map<string, { state: string; reason: string; log: string }>();
        let stopNow: (() => void) | undefined;
        stack.nucleus.on('state', (name: string, state: string) => {
          if (state !== 'ERRORED' && state !== 'BROKEN') return;
          const file = stack.nucleus.logFile(name);
          void lastError(file).then((reason) => {
            failures.set(name, { state, reason, log: file });
            log.error({ component: name, state, reason, log: file }, `${name} is ${state}`);
            if (state === 'BROKEN') stopNow?.();
          });
        });

        const figures = (): string => {
          const c = stack.counts();
          const inf = stack.telemetry.inference as { fps?: number; latencyMs?: { p50: number | null; p95: number | null } } | undefined;
          return `frames ${c.frames}  inferred ${c.inferred}  defects ${c.defects}  uploaded ${c.uploaded}  spool ${c.spoolPending}  errors ${c.errors}  fps ${inf?.fps ?? '-'}  p50 ${inf?.latencyMs?.p50 ?? '-'} ms  p95 ${inf?.latencyMs?.p95 ?? '-'} ms`;
        };
        const term = terminal();
        const liveLine: LiveLine = { render: () => `edge ${formatDuration((Date.now() - t0) / 1000)}  ${figures()}` };
        if (term.live) term.add(liveLine);
        const live = setInterval(
          () => {
            if (term.live) term.update();
            else {
              const c = stack.counts();
              const inf = stack.telemetry.inference as { fps?: number; latencyMs?: unknown } | undefined;
              log.info({ ...c, fps: inf?.fps, latencyMs: inf?.latencyMs }, 'edge figures');
            }
          },
          term.live ? 500 : 2000,
        );
        await new Promise<void>((res) => {
          const t = duration ? setTimeout(res, duration * 1000) : undefined;
          stopNow = () => {
            if (t) clearTimeout(t);
            res();
          };
          process.once('SIGINT', stopNow);
          process.once('SIGTERM', stopNow);
        });
        clearInterval(live);
        // Let uploads in flight finish briefly, then count from S3 and the spool themselves.
        await new Promise((r) => setTimeout(r, 1500));
        const summary = await stack.summary();
        if (term.live) term.remove(liveLine, `edge ${formatDuration((Date.now() - t0) / 1000)}  ${figures()}`);

        // Errors seen in results and camera health count too: say what they were.
        const reasons: string[] = [...failures].map(([c, f]) => `${c} ${f.state}: ${f.reason}`);
        const { errors: resultErrors, firstError } = stack.tally;
        if (resultErrors)
          reasons.push(`loupe.Inference: ${resultErrors} frame(s) could not be inferred, e.g. ${firstError ?? 'no reason given'}`);
        const cam = stack.telemetry.camera as
          { cameras?: Array<{ camera: string; errors: number; lastError?: string; state: string }> } | undefined;
        for (const c of cam?.cameras ?? [])
          if (c.errors > 0)
            reasons.push(`loupe.Camera ${c.camera}: ${c.errors} error(s) (${c.state}), last: ${c.lastError ?? 'no reason given'}`);
        const failed = reasons.length > 0 || summary.errors > 0;
        await stack.stop({ keep: failed });
        if (o.json) process.stdout.write(JSON.stringify(summary) + '\n');
        else
          process.stdout.write(
            Object.entries(summary)
              .map(([k, v]) => `${k}: ${v}`)
              .join('\n') + '\n',
          );
        if (failed) {
          for (const r of reasons) log.error(r);
          say(
            `loupe edge: ${reasons.length || summary.errors} problem(s); component logs kept in ${ep.nucleus.logs} (working folder ${ep.root})`,
          );
          process.exitCode = 1;
        }
      },
    );
}

function endpointsText(ep: EdgeEndpoints, seconds: number, duration: number | undefined): string {
  const o = ep.objectStore;
  return [
    `loupe edge: up in ${seconds.toFixed(1)} s${duration ? `, running for ${duration} s` : ', Ctrl-C stops'}`,
    `  object store  ${o.endpoint}  bucket ${o.bucket}  region ${o.region}  path-style`,
    `                AWS_ACCESS_KEY_ID=${o.accessKeyId} AWS_SECRET_ACCESS_KEY=${o.secretAccessKey}`,
    `  MQTT broker   ${ep.broker.url}  topics ${ep.broker.topics}`,
    `  nucleus       IPC socket ${ep.nucleus.ipcSocket}`,
    `                TES ${ep.nucleus.tesUri}  thing ${ep.nucleus.thingName}`,
    `                component logs ${ep.nucleus.logs}`,
    `  folder        ${ep.root}`,
  ].join('\n');
}

/** The reason a component gave for failing: its last error event (pino JSON), else its last line. */
export async function lastError(logFile: string): Promise<string> {
  const text = await readFile(logFile, 'utf8').catch(() => '');
  const lines = text.split('\n').filter((l) => l.trim());
  for (let i = lines.length - 1; i >= Math.max(0, lines.length - 200); i--) {
    const line = lines[i]!;
    const at = line.indexOf('{"level"');
    if (at < 0) continue;
    try {
      const e = JSON.parse(line.slice(at)) as { level?: number; msg?: string; err?: unknown };
      if ((e.level ?? 0) >= 50) {
        const err =
          e.err && typeof e.err === 'object' && 'message' in e.err
            ? String((e.err as { message: unknown }).message)
            : e.err
              ? String(e.err)
              : '';
        return [e.msg, err].filter(Boolean).join(': ');
      }
    } catch {
      // not a JSON event
    }
  }
  return lines.at(-1)?.slice(0, 500) ?? `no output (log ${logFile})`;
}
