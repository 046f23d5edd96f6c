import type { Command } from 'commander';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { LoupeError, errorMessage } from '../../lib/errors.js';
import { createLogger } from '../../lib/log.js';
import { loopHome, readLoopConfig } from '../../cloud/loop/config.js';
import { LoopEnv } from '../../cloud/loop/env.js';
import { runLoopOnce, stderrEvents } from '../../cloud/loop/loop.js';
import { abandonRun, buildReport, type RunReport } from '../../cloud/loop/runner.js';
import { STEP_NAMES } from '../../cloud/loop/steps.js';
import { LoopStore } from '../../cloud/loop/store.js';
import { checkTriggers } from '../../cloud/loop/triggers.js';
import { ingestIncoming } from '../../cloud/ingest/index.js';

/**
 * `loupe loop run|watch|status|report|abandon`: the closed loop (ingest → label → verify →
 * snapshot → train → evaluate → gate → register → publish → deploy → confirm) as one run with
 * persisted state in <home>/loop.db. `run` resumes an unfinished run (crash, failure) or starts
 * one; one run at a time (LOOP_BUSY otherwise). `watch` starts runs on triggers (new labels, a
 * schedule). Exit codes: 0 succeeded, halted on purpose (gate rejected, nothing new) or waiting
 * (a Ground Truth job is with people; the next run resumes it), 1 failed.
 */
interface Opts {
  home?: string;
  config?: string;
  json?: boolean;
}

function summary(r: RunReport): string {
  const lines = [
    `run ${r.run} (${r.trigger}${r.resumed ? ', resumed' : ''}): ${r.status}${r.halt ? ` — ${r.halt}` : ''}${r.error ? ` — ${r.error}` : ''} in ${r.seconds.toFixed(1)} s`,
  ];
  for (const s of r.steps)
    lines.push(
      `  ${s.name.padEnd(9)} ${s.status.padEnd(8)} ${s.seconds === null ? '' : `${s.seconds.toFixed(1)} s`}${s.attempts > 1 ? ` (${s.attempts} attempts)` : ''}${s.error && s.status === 'failed' ? `  ${s.error}` : ''}`,
    );
  return lines.join('\n');
}

export function register(program: Command): void {
  const loop = program.command('loop').description('the closed loop: uploads in, a new model on the fleet out');
  const common = (c: Command) =>
    c
      .option('--home <dir>', 'loop home (default $LOUPE_HOME or ./.loupe)')
      .option('--config <file>', 'loop configuration (default <home>/loop.json)')
      .option('--json', 'machine-readable output');

  common(loop.command('run').description('run the loop once (resumes an unfinished run first)'))
    .option('--new', 'refuse to resume; fail if a run is unfinished')
    .option('--trigger <why>', 'recorded as the run trigger', 'manual')
    .action(async (o: Opts & { new?: boolean; trigger: string }) => {
      const home = loopHome(o.home);
      const config = readLoopConfig(o.config ?? home.config);
      const log = createLogger('loop', { stream: 'stderr' });
      const ac = new AbortController();
      const onSig = () => ac.abort();
      process.once('SIGINT', onSig);
      process.once('SIGTERM', onSig);
      try {
        const r = await runLoopOnce({
          config,
          home,
          trigger: o.trigger,
          log,
          events: stderrEvents(),
          resume: o.new ? 'new' : 'auto',
          progressStream: process.stderr,
          signal: ac.signal,
        });
        process.stdout.write(o.json ? JSON.stringify(r) + '\n' : summary(r) + '\n');
      } catch (e) {
        // The run's report (failed step and why) is kept; print it, then fail.
        const store = new LoopStore(home.loopDb);
        const last = store.latestRun();
        if (last && o.json) process.stdout.write(JSON.stringify(buildReport(store, last.id, [...STEP_NAMES], false)) + '\n');
        store.close();
        throw e;
      } finally {
        process.off('SIGINT', onSig);
        process.off('SIGTERM', onSig);
      }
    });

  common(
    loop
      .command('watch')
      .description('start runs when triggered: N new labels (trigger.minNewLabels) or a schedule (trigger.everyMinutes)'),
  )
    .option('--poll <seconds>', 'how often to check', '30')
    .option('--once', 'check once, run if due, exit')
    .action(async (o: Opts & { poll: string; once?: boolean }) => {
      const home = loopHome(o.home);
      const config = readLoopConfig(o.config ?? home.config);
      const log = createLogger('loop', { stream: 'stderr' });
      const poll = Number(o.poll);
      if (!(poll > 0)) throw new LoupeError('CLI_BAD_NUMBER', `must be a positive number of seconds, got ${o.poll}`, { input: '--poll' });
      let stop = false;
      const onSig = () => (stop = true);
      process.once('SIGINT', onSig);
      process.once('SIGTERM', onSig);
      try {
        do {
          const store = new LoopStore(home.loopDb);
          let env: LoopEnv | undefined;
          try {
            env = await LoopEnv.open(config, home, log);
            // New uploads count towards the trigger: ingest is idempotent, the run's own ingest finds nothing twice.
            await ingestIncoming({
              s3: env.s3,
              bucket: config.storage.bucket,
              prefix: config.storage.prefix,
              store: env.labels,
              statePath: home.ingestState,
              log,
            });
            const t = await checkTriggers(env, store);
            const unfinished = store.unfinishedRun();
            log.info({ ...t, unfinished: unfinished?.id ?? null }, t.due || unfinished ? 'loop triggered' : 'loop not due');
            await env.close();
            env = undefined;
            if (t.due || unfinished) {
              if (t.scheduleDue) store.set('schedule.lastRunAt', Date.now());
              store.close();
              const r = await runLoopOnce({
                config,
                home,
                trigger: unfinished ? unfinished.trigger : t.reason,
                log,
                events: stderrEvents(),
              });
              process.stdout.write(o.json ? JSON.stringify(r) + '\n' : summary(r) + '\n');
            } else if (o.once) {
              process.stdout.write(
                o.json
                  ? JSON.stringify(t) + '\n'
                  : `not due: ${t.newApproved} new approved, ${t.unlabelled} unlabelled (need ${config.trigger.minNewLabels})\n`,
              );
            }
          } catch (e) {
            log.error({ err: errorMessage(e) }, 'loop run failed; the next check resumes it');
            if (o.once) throw e;
          } finally {
            await env?.close();
            if (store.db.open) store.close();
          }
          if (o.once) break;
          for (let i = 0; i < poll * 10 && !stop; i++) await new Promise((r) => setTimeout(r, 100));
        } while (!stop);
      } finally {
        process.off('SIGINT', onSig);
        process.off('SIGTERM', onSig);
      }
    });

  common(loop.command('status').description('the lock holder, the unfinished run, recent runs')).action(async (o: Opts) => {
    const home = loopHome(o.home);
    if (!existsSync(home.loopDb)) throw new LoupeError('LOOP_NO_STATE', 'no loop has run here yet', { input: home.loopDb });
    const store = new LoopStore(home.loopDb);
    try {
      const runs = store.listRuns(10).map((r) => ({
        id: r.id,
        trigger: r.trigger,
        status: r.status,
        createdAt: r.createdAt,
        finishedAt: r.finishedAt,
        halt: r.halt,
        error: r.error,
        steps: store.steps(r.id).map((s) => ({ name: s.name, status: s.status, seconds: s.seconds, attempts: s.attempts })),
      }));
      const out = { lock: store.lockOwner(), unfinished: store.unfinishedRun()?.id ?? null, runs };
      if (o.json) process.stdout.write(JSON.stringify(out) + '\n');
      else {
        process.stdout.write(
          [
            out.lock
              ? `running: pid ${out.lock.pid} on ${out.lock.host} (run ${out.lock.runId ?? '-'}), heartbeat ${out.lock.heartbeatAt}`
              : 'no loop running',
            out.unfinished
              ? `unfinished run: ${out.unfinished} (loupe loop run resumes it; loupe loop abandon ${out.unfinished} gives up)`
              : '',
            ...runs.map(
              (r) =>
                `run ${r.id}  ${r.status.padEnd(9)} ${r.createdAt}  ${r.trigger}${r.halt ? `  — ${r.halt}` : ''}${r.error ? `  — ${r.error}` : ''}`,
            ),
          ]
            .filter(Boolean)
            .join('\n') + '\n',
        );
      }
    } finally {
      store.close();
    }
  });

  common(loop.command('report').description('the report of a run (default: the latest)').argument('[run]', 'run id')).action(
    async (run: string | undefined, o: Opts) => {
      const home = loopHome(o.home);
      const store = new LoopStore(home.loopDb);
      try {
        const id = run ? Number(run) : store.latestRun()?.id;
        if (!id || !store.getRun(id)) throw new LoupeError('LOOP_NO_RUN', 'no such run', { input: run ?? home.loopDb });
        const file = join(home.runsDir, String(id), 'report.json');
        const r = existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as RunReport) : buildReport(store, id, [...STEP_NAMES], false);
        process.stdout.write(o.json ? JSON.stringify(r) + '\n' : summary(r) + '\n');
      } finally {
        store.close();
      }
    },
  );

  common(loop.command('abandon').description('give up on an unfinished run so the next run starts afresh').argument('<run>', 'run id'))
    .requiredOption('--reason <text>', 'why')
    .action(async (run: string, o: Opts & { reason: string }) => {
      const store = new LoopStore(loopHome(o.home).loopDb);
      try {
        abandonRun(store, Number(run), o.reason);
        process.stdout.write(o.json ? JSON.stringify({ run: Number(run), status: 'abandoned' }) + '\n' : `run ${run} abandoned\n`);
      } finally {
        store.close();
      }
    });
}
