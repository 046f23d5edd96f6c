import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { trainLocal } from '../../training/local-trainer.js';
import type { TrainMetricsFile, TrainResult } from '../../training/options.js';
import type { TrainingPort } from '../ports.js';

export interface LocalTrainingSettings {
  /** cpu, 0, ... (the loop's `train.device`); overrides the request's options.device. */
  device?: string;
  /**
   * Resume what an earlier attempt of the same run left in the folder (the loop): stop a trainer
   * still writing there, reuse a finished folder, else empty it and train. Without it (`loupe
   * train`) the folder is trained into as it is: the command refuses a folder holding a run
   * itself, and a folder is never emptied nor another process stopped on a user's behalf.
   */
  resumeRun: boolean;
}

/**
 * Training on this machine (`train.backend: "local"`, `loupe train --backend local`): train.py in
 * the pinned venv. With `resumeRun`, idempotent for the run: a folder an earlier attempt finished
 * (metrics.json is written last) is reused; a trainer an earlier, killed loop process left running
 * is stopped first.
 */
export function localTraining(s: LocalTrainingSettings): TrainingPort {
  const hooksOf = (h: Parameters<TrainingPort['train']>[1]) => ({
    log: h.log,
    signal: h.signal,
    forceSignal: h.forceSignal,
    progressStream: h.progressStream,
  });
  return {
    backend: 'local',
    async train({ dir, options }, h) {
      if (!s.resumeRun)
        return { result: await trainLocal(s.device === undefined ? options : { ...options, device: s.device }, dir, hooksOf(h)) };
      // A loop process killed mid-training leaves its train.py running (SIGKILL runs no clean-up):
      // stop it before looking at or replacing what it writes.
      const killed = killOrphanTrainers(dir);
      if (killed.length) h.log.warn({ pids: killed, dir }, 'stopped a trainer left running by an earlier attempt');
      const metricsFile = join(dir, 'metrics.json');
      if (existsSync(metricsFile) && existsSync(join(dir, 'model.onnx')) && existsSync(join(dir, 'best.pt'))) {
        // An earlier attempt finished training (train.py writes metrics.json last) but was cut off before recording it.
        try {
          const metrics = JSON.parse(readFileSync(metricsFile, 'utf8')) as TrainMetricsFile;
          const result: TrainResult = {
            backend: 'local',
            dir,
            bestPt: join(dir, 'best.pt'),
            onnx: join(dir, 'model.onnx'),
            resultsCsv: join(dir, 'results.csv'),
            metricsJson: metricsFile,
            metrics,
            epochs: [],
          };
          h.log.info({ dir }, 'training output of an earlier attempt is complete; reusing it');
          return { result };
        } catch {
          // metrics.json cut off mid-write: train again
        }
      }
      await rm(dir, { recursive: true, force: true });
      return { result: await trainLocal({ ...options, device: s.device }, dir, hooksOf(h)) };
    },
  };
}

/**
 * Trainer processes an earlier attempt of this run started (train.py with `--out <dir>`), found by
 * their exact command line in /proc and stopped by pid. Only processes writing into this run's
 * own training folder match.
 */
export function killOrphanTrainers(dir: string): number[] {
  const killed: number[] = [];
  let pids: string[];
  try {
    pids = readdirSync('/proc').filter((p) => /^\d+$/.test(p));
  } catch {
    return killed; // no /proc: nothing to find
  }
  for (const p of pids) {
    const pid = Number(p);
    if (pid === process.pid) continue;
    let argv: string[];
    try {
      argv = readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0');
    } catch {
      continue;
    }
    const i = argv.indexOf('--out');
    if (i < 0 || argv[i + 1] !== dir || !argv.some((a) => a.endsWith('train.py'))) continue;
    try {
      process.kill(pid, 'SIGKILL');
      killed.push(pid);
    } catch {
      // already gone
    }
  }
  return killed;
}
