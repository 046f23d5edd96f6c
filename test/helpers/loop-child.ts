/**
 * A loop process for the runner's crash tests: five steps whose side effects are rows in an
 * "effects" SQLite file, each written idempotently (INSERT OR IGNORE on the run + step), and
 * an invocation log that counts how often each step body ran. Usage:
 *   node dist/test/helpers/loop-child.js <dir> [halt-at-step] [sleep-ms]
 * LOUPE_LOOP_CRASH=<step>:before|after makes the runner SIGKILL this process at that point.
 */
import Database from 'better-sqlite3';
import { appendFileSync } from 'node:fs';
import { join } from 'node:path';
import { LoopStore } from '../../cloud/loop/store.js';
import { z } from 'zod';
import { done, halted, runLoop, type LoopStep } from '../../cloud/loop/runner.js';

const [dir, haltAt, sleepMs] = process.argv.slice(2) as [string, string | undefined, string | undefined];
const effects = new Database(join(dir, 'effects.db'));
effects.exec('CREATE TABLE IF NOT EXISTS effects (run INTEGER, step TEXT, value TEXT, UNIQUE(run, step))');
const names = ['ingest', 'label', 'train', 'register', 'deploy'];
const steps: LoopStep[] = names.map((name) => ({
  name,
  title: name,
  output: z.object({ effect: z.number(), saw: z.string() }),
  async run(ctx) {
    appendFileSync(join(dir, 'invocations.log'), `${ctx.runId} ${name} ${ctx.attempt}\n`);
    if (sleepMs) await new Promise((r) => setTimeout(r, Number(sleepMs)));
    const prev = Object.keys(ctx.outputs).join(',');
    effects.prepare('INSERT OR IGNORE INTO effects (run, step, value) VALUES (?, ?, ?)').run(ctx.runId, name, prev);
    const row = effects.prepare('SELECT rowid AS id FROM effects WHERE run = ? AND step = ?').get(ctx.runId, name) as { id: number };
    const output = { effect: row.id, saw: prev };
    return haltAt === name ? halted(output, `halted at ${name}`) : done(output);
  },
}));
const store = new LoopStore(join(dir, 'loop.db'));
try {
  const report = await runLoop({ store, steps, trigger: 'manual', config: { n: 1 }, runsDir: join(dir, 'runs') });
  process.stdout.write(JSON.stringify(report) + '\n');
} catch (e) {
  process.stderr.write(`loop-child: ${(e as Error).message}\n`);
  process.exitCode = 3;
} finally {
  store.close();
}
