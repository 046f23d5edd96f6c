import type { Command } from 'commander';
import { createLogger } from '../../lib/log.js';
import { runDemo } from '../demo.js';
import { LoupeError } from '../../lib/errors.js';

/**
 * `loupe demo [--fast] [--json]`: the whole closed loop on one machine (see cli/demo.ts).
 * Progress on stderr; the last line on stdout is the JSON summary (DESIGN.md). Exit 0 when the
 * device ended up running the new model, 1 otherwise (the summary says where it stopped).
 */
export function register(program: Command): void {
  program
    .command('demo')
    .description(
      'run the whole loop on this machine: device inspects and uploads, labelling, training, gate, registry, republish, the device switches model',
    )
    .option('--fast', 'CI-sized run (fewer uploads, one training epoch)')
    .option('--json', 'print only the JSON summary on stdout (progress stays on stderr)')
    .option('--home <dir>', 'keep all state here (default: a temp folder, removed afterwards)')
    .option('--keep', 'keep the temp folder (its path is in the summary)')
    .option('--uploads <n>', 'images to upload before the loop runs')
    .option('--epochs <n>', 'training epochs (warm start from the starting champion, models/metal-tags-early)')
    .option('--seed <n>', 'seed of the simulated labelling noise and of training (default 1)')
    .action(
      async (o: { fast?: boolean; json?: boolean; home?: string; keep?: boolean; uploads?: string; epochs?: string; seed?: string }) => {
        const int = (v: string | undefined, flag: string, min = 1) => {
          if (v === undefined) return undefined;
          const n = Number(v);
          if (!Number.isInteger(n) || n < min)
            throw new LoupeError('CLI_BAD_NUMBER', `must be an integer >= ${min}, got ${v}`, { input: flag });
          return n;
        };
        const log = createLogger('demo', { stream: 'stderr', level: process.env.LOUPE_LOG_LEVEL ?? (o.json ? 'warn' : 'info') });
        const ac = new AbortController();
        const onSig = () => ac.abort();
        process.once('SIGINT', onSig);
        process.once('SIGTERM', onSig);
        try {
          const s = await runDemo({
            fast: !!o.fast,
            home: o.home,
            keep: o.keep,
            log,
            progressStream: process.stderr,
            signal: ac.signal,
            uploads: int(o.uploads, '--uploads'),
            epochs: int(o.epochs, '--epochs'),
            seed: int(o.seed, '--seed', 0),
          });
          if (!o.json) {
            process.stderr.write(
              [
                '',
                `frames inspected ${s.framesInspected}, defects found ${s.defectsFound}, uploaded ${s.imagesUploaded}, labelled ${s.imagesLabelled} (${s.labelsApproved} approved, ${s.labelsRejected} rejected)`,
                `model before ${s.modelBefore.ref} (loupe.Model ${s.modelBefore.componentVersion}), after ${s.modelAfter ? `${s.modelAfter.ref} (${s.modelAfter.status}, loupe.Model ${s.modelAfter.componentVersion})` : '-'}`,
                s.gate
                  ? `gate ${s.gate.passed ? 'passed' : 'rejected'}: ${s.gate.metric} ${s.gate.challenger.toFixed(3)} vs champion ${s.gate.champion?.toFixed(3) ?? '-'} on its ${s.gate.split} split of ${s.gate.images} images (${s.gate.report})`
                  : 'gate: not reached',
                s.benchmark
                  ? `benchmark set (${s.benchmark.images} held-out images): champion mAP50 ${s.benchmark.champion?.map50.toFixed(3)} (mAP50-95 ${s.benchmark.champion?.map50_95.toFixed(3)})` +
                    (s.benchmark.challenger && s.benchmark.gain
                      ? `, challenger ${s.benchmark.challenger.map50.toFixed(3)} (${s.benchmark.challenger.map50_95.toFixed(3)}): gain ${s.benchmark.gain.map50 >= 0 ? '+' : ''}${s.benchmark.gain.map50.toFixed(3)} mAP50`
                      : ', no challenger')
                  : 'benchmark set: not scored',
                `fleet runs the new version: ${s.fleetRunsNewVersion} (${s.resultsWithNewModel} results from it)${s.halt ? `; ${s.halt}` : ''}${s.error ? `; error: ${s.error}` : ''}`,
                `seconds: ${Object.entries(s.seconds)
                  .map(([k, v]) => `${k} ${v}`)
                  .join(', ')}`,
                '',
              ].join('\n'),
            );
          }
          process.stdout.write(JSON.stringify(s) + '\n');
          if (!s.ok) process.exitCode = 1;
        } finally {
          process.off('SIGINT', onSig);
          process.off('SIGTERM', onSig);
        }
      },
    );
}
