import { mkdtemp, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '../../lib/log.js';
import { runDemo } from '../../cli/demo.js';
import { loopHome, readLoopConfig } from '../../cloud/loop/config.js';
import { trainLocal } from '../../cloud/training/local-trainer.js';
import { loupeEvaluator } from '../../cloud/gate/evaluator.js';
import { DEMO_CHAMPION_DIR } from '../../cloud/loop/reference.js';
import type { BenchEntry } from './run.js';

/**
 * The loop on the metal-tags demo: seconds per stage and for the whole loop (`loupe demo`,
 * `--fast` size by default, LOUPE_BENCH_DEMO=full for the full demo), and beside it the baseline
 * measured in the same run on the same snapshot: the unavoidable compute done by hand (train.py
 * with the same options, then loupe's evaluator on the challenger and the champion). The
 * difference is what the loop itself costs (ingest, labelling, snapshot, registry, publishing,
 * deployment, confirmation, bookkeeping). The machine is shared: load averages are reported.
 */
const entry: BenchEntry = {
  name: 'loop',
  async run() {
    const full = process.env.LOUPE_BENCH_DEMO === 'full';
    const dir = await mkdtemp(join(tmpdir(), 'loupe-bench-loop-'));
    const load0 = loadavg()[0];
    try {
      const s = await runDemo({ fast: !full, home: join(dir, 'demo'), log: silentLogger, events: {} });
      if (!s.ok) throw new Error(`demo did not close the loop: ${s.error ?? s.halt ?? 'unknown'}`);
      const loadDemo = loadavg()[0];
      // Baseline: the same training and evaluation, by hand, on the run's snapshot.
      const home = loopHome(join(dir, 'demo'));
      const cfg = readLoopConfig(home.config);
      const snapYaml = join(home.snapshotsDir, s.snapshot!.id, 'data.yaml');
      const t0 = performance.now();
      const tr = await trainLocal(
        {
          data: snapYaml,
          base: join(DEMO_CHAMPION_DIR, 'model.pt'),
          epochs: cfg.train.epochs,
          imgsz: cfg.train.imgsz,
          batch: cfg.train.batch,
          patience: cfg.train.patience,
          seed: cfg.train.seed,
          timeMinutes: cfg.train.timeMinutes,
          workers: cfg.train.workers,
          device: cfg.train.device,
        },
        join(dir, 'bare-train'),
      );
      const bareTrain = (performance.now() - t0) / 1000;
      const t1 = performance.now();
      await loupeEvaluator(tr.onnx, snapYaml, cfg.gate.split);
      await loupeEvaluator(join(DEMO_CHAMPION_DIR, 'model.onnx'), snapYaml, cfg.gate.split);
      const bareEval = (performance.now() - t1) / 1000;
      const loopStages = ['ingest', 'label', 'verify', 'snapshot', 'train', 'evaluate', 'gate', 'register', 'publish', 'deploy', 'confirm'];
      const loopSum = loopStages.reduce((n, k) => n + (s.seconds[k] ?? 0), 0);
      const overhead = loopSum - (s.seconds.train ?? 0) - (s.seconds.evaluate ?? 0);
      const total = s.seconds.total!;
      return {
        entry: 'loop',
        machine: { loadavg1Before: load0, loadavg1AfterDemo: loadDemo, loadavg1After: loadavg()[0] },
        results: {
          size: full ? 'full' : 'fast',
          epochs: cfg.train.epochs,
          uploads: s.imagesUploaded,
          labelled: s.imagesLabelled,
          snapshotImages: s.snapshot?.images,
          gate: s.gate,
          seconds_per_stage: s.seconds,
          loop_seconds: +loopSum.toFixed(1),
          demo_seconds: total,
          baseline_bare_train_seconds: +bareTrain.toFixed(1),
          baseline_bare_eval_two_models_seconds: +bareEval.toFixed(1),
          loop_train_vs_bare: +((s.seconds.train ?? 0) / bareTrain).toFixed(3),
          loop_evaluate_vs_bare: +((s.seconds.evaluate ?? 0) / bareEval).toFixed(3),
          loop_overhead_seconds: +overhead.toFixed(1),
        },
        targets: [
          { name: 'demo_seconds', value: total, target: '<= 900 s (15 min on 2 cores)', met: total <= 900 },
          {
            name: 'loop_overhead_seconds',
            value: +overhead.toFixed(1),
            target: '<= 60 s (everything but training and evaluation)',
            met: overhead <= 60,
          },
        ],
      };
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  },
};

export default entry;
