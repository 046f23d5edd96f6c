import type { Command } from 'commander';
import { resolve } from 'node:path';
import { LoupeError } from '../../lib/errors.js';
import { createLogger } from '../../lib/log.js';
import { parseSourceSpec, startEdgeStack } from '../../embedded/stack/edge.js';

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
    .option('--source <kind:value>', 'camera source: folder:PATH, stream:URL, v4l2:DEVICE, snapshot:URL or command:CMD (default: folder camera over ../shared/datasets/metal-tags)')
    .option('--fps <n>', 'camera frames per second (interval trigger)', '5')
    .option('--duration <s>', 'stop after this many seconds (default: run until Ctrl-C)')
    .option('--model <dir>', 'folder with model.onnx (and card.json)', 'models/metal-tags')
    .option('--model-version <v>', 'loupe.Model component version', '1.0.0')
    .option('--thing <name>', 'thing name', 'loupe-edge-1')
    .option('--root <dir>', 'keep the stack in this folder (default: a temp folder, removed at the end)')
    .option('--json', 'print the summary as one JSON line on stdout')
    .action(async (o: { source?: string; fps: string; duration?: string; model: string; modelVersion: string; thing: string; root?: string; json?: boolean }) => {
      const log = createLogger('edge', { stream: 'stderr' });
      const fps = positive(o.fps, '--fps');
      const duration = o.duration === undefined ? undefined : positive(o.duration, '--duration');
      const source = o.source ? parseSourceSpec(o.source) : undefined;
      const stack = await startEdgeStack({
        ...(source ? { source } : {}),
        fps,
        modelDir: resolve(o.model),
        modelVersion: o.modelVersion,
        thingName: o.thing,
        ...(o.root ? { root: resolve(o.root) } : {}),
        log,
      });
      log.info({ root: stack.root, mqtt: stack.broker.url, s3: stack.objectStore.endpoint, bucket: stack.bucket }, 'edge stack up');
      const tty = process.stderr.isTTY;
      const live = setInterval(() => {
        const c = stack.counts();
        const inf = stack.telemetry.inference as { fps?: number; latencyMs?: { p50: number | null; p95: number | null } } | undefined;
        const line = `frames ${c.frames}  inferred ${c.inferred}  defects ${c.defects}  uploaded ${c.uploaded}  spool ${c.spoolPending}  errors ${c.errors}  fps ${inf?.fps ?? '-'}  p50 ${inf?.latencyMs?.p50 ?? '-'} ms  p95 ${inf?.latencyMs?.p95 ?? '-'} ms`;
        if (tty) process.stderr.write(`\r${line.padEnd(110)}`);
        else log.info({ ...c, fps: inf?.fps, latencyMs: inf?.latencyMs }, 'edge figures');
      }, 2000);
      await new Promise<void>((res) => {
        const t = duration ? setTimeout(res, duration * 1000) : undefined;
        const onSig = () => {
          if (t) clearTimeout(t);
          res();
        };
        process.once('SIGINT', onSig);
        process.once('SIGTERM', onSig);
      });
      clearInterval(live);
      if (tty) process.stderr.write('\n');
      // Let uploads in flight finish briefly, then count from S3 and the spool themselves.
      await new Promise((r) => setTimeout(r, 1500));
      const summary = await stack.summary();
      await stack.stop();
      if (o.json) process.stdout.write(JSON.stringify(summary) + '\n');
      else process.stdout.write(Object.entries(summary).map(([k, v]) => `${k}: ${v}`).join('\n') + '\n');
    });
}
