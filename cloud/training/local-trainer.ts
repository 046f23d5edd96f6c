import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import type { Logger } from 'pino';
import { codeFromText } from '../../lib/error-codes.js';
import { LoupeError } from '../../lib/errors.js';
import { silentLogger } from '../../lib/log.js';
import { projectRoot } from '../../lib/paths.js';
import { Progress } from '../../lib/progress.js';
import { parseTrainLine, type EpochEvent, type NetworkAttemptEvent, type StartEvent, type TrainRefusal } from './events.js';
import { trainPyArgs, validateOptions, type TrainMetricsFile, type TrainOptions, type TrainResult } from './options.js';
import { ensureVenv, offlinePythonEnv, venvPython } from './venv.js';

export const trainScript = join(projectRoot, 'cloud', 'training', 'train.py');

export interface LocalTrainHooks {
  log?: Logger;
  /** Abort (Ctrl-C): SIGINT goes to train.py, which stops after saving last.pt; the run then rejects. */
  signal?: AbortSignal;
  /** Abort without waiting (a second Ctrl-C): train.py is killed. */
  forceSignal?: AbortSignal;
  /** Extra environment for the Python child (e.g. LOUPE_FORBID_NETWORK=1, proxies for offline proofs). */
  env?: NodeJS.ProcessEnv;
  onEvent?: (e: StartEvent | EpochEvent | NetworkAttemptEvent) => void;
  /** Seconds to wait for train.py to wind down after SIGINT before it is killed. */
  graceSeconds?: number;
  progressStream?: NodeJS.WriteStream;
}

/**
 * The local backend: train.py in the pinned venv, as a child process. Its LOUPE_EVENT lines drive
 * a progress bar and structured logs; LOUPE_ERROR refusals become LoupeErrors with train.py's code;
 * everything else it prints is kept at debug level (and its tail goes into failure messages).
 */
export async function trainLocal(options: TrainOptions, outDir: string, hooks: LocalTrainHooks = {}): Promise<TrainResult> {
  const log = hooks.log ?? silentLogger;
  const opts = validateOptions(options);
  const out = resolve(outDir);
  if (hooks.signal?.aborted) throw interrupted(out, 0);
  const venv = await ensureVenv(log);
  const createdOut = !existsSync(out);
  await mkdir(out, { recursive: true });

  const args = [trainScript, ...trainPyArgs(opts, out)];
  const child = spawn(venvPython(venv), args, {
    // train.py stops by itself when this process dies, also from SIGKILL (no exit handler runs then).
    env: offlinePythonEnv({ ...hooks.env, LOUPE_PARENT_PID: String(process.pid) }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  log.info({ pid: child.pid, python: venvPython(venv), args: args.slice(1) }, 'train.py started');
  // Never leave a training process behind if this process exits first.
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);

  // The overall bar has a stable total: epochs, or with a time budget the budget's seconds
  // (ultralytics re-estimates the epoch count of a timed run after every epoch).
  const timed = opts.timeMinutes !== undefined;
  const started = Date.now();
  const progress = new Progress(timed ? 'train (time budget)' : 'train', timed ? Math.round(opts.timeMinutes! * 60) : opts.epochs, log, {
    logEveryMs: 0,
    stream: hooks.progressStream,
    unit: timed ? 's' : 'epoch',
  });
  let batchBar: Progress | undefined;
  let batchEpoch = 0;
  const epochs: EpochEvent[] = [];
  let refusal: TrainRefusal | undefined;
  let tail = '';
  let epochsDone = 0;
  const keepTail = (s: string) => {
    tail = (tail + s + '\n').slice(-6000);
  };

  const budgetTotal = () => (timed ? Math.round(opts.timeMinutes! * 60) : opts.epochs);
  createInterface({ input: child.stdout }).on('line', (line) => {
    const parsed = parseTrainLine(line);
    switch (parsed.kind) {
      case 'event': {
        const e = parsed.event;
        if (e.event === 'start') {
          if (!timed) progress.setTotal(e.epochs);
          log.info(
            { base: e.base, names: e.names, counts: e.counts, device: e.device, ultralytics: e.ultralytics, torch: e.torch, hyp: e.hyp },
            'training started',
          );
          hooks.onEvent?.(e);
        } else if (e.event === 'batch') {
          if (!batchBar || batchEpoch !== e.epoch) {
            batchBar?.stop();
            batchEpoch = e.epoch;
            batchBar = new Progress(`  epoch ${e.epoch}/${timed ? `~${e.epochs}` : e.epochs}`, e.batches, undefined, {
              stream: hooks.progressStream,
              unit: 'batch',
            });
          }
          batchBar.update(e.batch, { box: +e.box_loss.toFixed(3), cls: +e.cls_loss.toFixed(3), dfl: +e.dfl_loss.toFixed(3) });
          if (timed) progress.update(Math.min(budgetTotal(), Math.round((Date.now() - started) / 1000)), { epoch: e.epoch });
        } else if (e.event === 'epoch') {
          epochs.push(e);
          epochsDone = e.epoch;
          batchBar?.stop();
          batchBar = undefined;
          // One permanent line per epoch with its validation, as ultralytics prints after each epoch.
          log.info(
            {
              epoch: e.epoch,
              epochs: e.epochs,
              seconds: e.seconds,
              box_loss: +e.box_loss.toFixed(4),
              cls_loss: +e.cls_loss.toFixed(4),
              dfl_loss: +e.dfl_loss.toFixed(4),
              P: +e.precision.toFixed(3),
              R: +e.recall.toFixed(3),
              mAP50: +e.map50.toFixed(3),
              'mAP50-95': +e.map50_95.toFixed(3),
            },
            `epoch ${e.epoch}/${timed ? `~${e.epochs}` : e.epochs} validated`,
          );
          if (timed) progress.update(Math.min(budgetTotal(), Math.round((Date.now() - started) / 1000)), { epoch: e.epoch });
          else progress.update(e.epoch, { mAP50: +e.map50.toFixed(3) });
          hooks.onEvent?.(e);
        } else if (e.event === 'export') {
          log.info({ format: e.format }, 'exporting best.pt');
        } else if (e.event === 'network_attempt') {
          log.warn({ address: e.address }, 'train.py attempted a network connection (refused)');
          hooks.onEvent?.(e);
        } else if (e.event === 'done') {
          log.info({ epochsRun: e.epochs_run, seconds: e.seconds, secondsPerEpoch: e.seconds_per_epoch, val: e.val }, 'training done');
        } else if (e.event === 'interrupted') {
          log.warn({ epochsDone: e.epochs_done, seconds: e.seconds }, 'training interrupted');
        }
        break;
      }
      case 'error':
        refusal = parsed.error;
        break;
      case 'metric':
        break;
      case 'text':
        keepTail(parsed.text);
        log.debug({ stream: 'stdout' }, parsed.text);
    }
  });
  createInterface({ input: child.stderr }).on('line', (line) => {
    keepTail(line);
    log.debug({ stream: 'stderr' }, line);
  });

  let aborted = false;
  let killTimer: NodeJS.Timeout | undefined;
  const onAbort = () => {
    aborted = true;
    log.warn('interrupt: asking train.py to stop (it keeps last.pt)');
    child.kill('SIGINT');
    killTimer = setTimeout(() => child.kill('SIGKILL'), (hooks.graceSeconds ?? 120) * 1000);
  };
  const onForce = () => {
    aborted = true;
    child.kill('SIGKILL');
  };
  hooks.signal?.addEventListener('abort', onAbort, { once: true });
  hooks.forceSignal?.addEventListener('abort', onForce, { once: true });

  const { code, signal } = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolveExit, reject) => {
    child.on('error', (e) =>
      reject(
        new LoupeError('PYTHON_MISSING', `cannot run the trainer venv's python (${e.message}); run \`loupe setup python\``, {
          input: venvPython(venv),
        }),
      ),
    );
    child.on('close', (c, s) => resolveExit({ code: c, signal: s }));
  }).finally(() => {
    hooks.signal?.removeEventListener('abort', onAbort);
    hooks.forceSignal?.removeEventListener('abort', onForce);
    process.removeListener('exit', killOnExit);
    if (killTimer) clearTimeout(killTimer);
  });

  batchBar?.stop();
  if (refusal) {
    progress.stop();
    // A refused input trained nothing: leave no half-made output folder behind.
    await rm(createdOut ? out : join(out, 'work'), { recursive: true, force: true });
    const r = codeFromText(refusal.code, refusal.message, 'TRAIN_FAILED');
    throw new LoupeError(r.code, r.message, { exitCode: 2 });
  }
  if (aborted || code === 130 || code !== 0) progress.stop();
  if (aborted || code === 130) throw interrupted(out, epochsDone);
  if (code !== 0) {
    throw new LoupeError(
      'TRAIN_FAILED',
      `train.py ${signal ? `was killed by ${signal}` : `exited with status ${code}`}; its last output:\n${tail.trim()}`,
      { input: trainScript },
    );
  }
  progress.finish();

  const metricsJson = join(out, 'metrics.json');
  const metrics = JSON.parse(await readFile(metricsJson, 'utf8')) as TrainMetricsFile;
  return {
    backend: 'local',
    dir: out,
    bestPt: join(out, 'best.pt'),
    onnx: join(out, 'model.onnx'),
    resultsCsv: join(out, 'results.csv'),
    metricsJson,
    metrics,
    epochs,
  };
}

function interrupted(out: string, epochsDone: number): LoupeError {
  const last = join(out, 'last.pt');
  const kept = existsSync(last)
    ? `; the last checkpoint is kept at ${last} (warm-start from it with --base)`
    : '; no epoch had finished, so no checkpoint was kept';
  return new LoupeError('TRAIN_INTERRUPTED', `training interrupted after ${epochsDone} epoch(s)${kept}`, { exitCode: 130 });
}
