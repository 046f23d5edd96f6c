import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { itemState } from '../labelstore/state.js';
import type { LoopEnv } from './env.js';
import type { LoopStore } from './store.js';

/**
 * When `loupe loop watch` starts a run:
 *  - labels: at least `trigger.minNewLabels` approved labels the champion was not trained on
 *    (newer than the snapshot it was trained from; for the shipped model, newer than the
 *    imported history). With the simulated workforce labelling happens inside the run, so
 *    unlabelled uploads waiting for a job count too;
 *  - schedule: `trigger.everyMinutes` since the last scheduled run (kept in the loop store, so
 *    a restarted watcher keeps the rhythm);
 *  - by hand: `loupe loop run`.
 */
export interface TriggerCheck {
  due: boolean;
  reason: string;
  newApproved: number;
  unlabelled: number;
  championTrainedAsOf: number;
  scheduleDue: boolean;
}

export async function championTrainedAsOf(env: LoopEnv): Promise<number> {
  const champ = await env.registry.champion(env.config.group);
  const snap = champ?.meta.snapshot;
  if (typeof snap === 'string') {
    const manifest = join(env.home.snapshotsDir, snap, 'snapshot.json');
    if (existsSync(manifest)) return Number((JSON.parse(readFileSync(manifest, 'utf8')) as { asOf: number }).asOf);
  }
  // The shipped model was trained on the imported history: everything approved up to its newest record.
  const history = (await env.labels.latest({ status: 'APPROVED' })).filter((r) => r.source_ref.startsWith('s3://${bucket}/'));
  return history.reduce((m, r) => Math.max(m, r.event_time), 0);
}

export async function checkTriggers(env: LoopEnv, store: LoopStore, now = Date.now()): Promise<TriggerCheck> {
  const t = env.config.trigger;
  const asOf = await championTrainedAsOf(env);
  const latest = await env.labels.latest();
  const newApproved = latest.filter((r) => r.status === 'APPROVED' && r.event_time > asOf).length;
  const unlabelled = latest.filter((r) => itemState(r) === 'unlabelled' || itemState(r) === 'rejected').length;
  const counted = newApproved + (env.config.labeling.backend === 'simulated' ? unlabelled : 0);
  const last = store.get<number>('schedule.lastRunAt') ?? 0;
  const scheduleDue = t.everyMinutes !== undefined && now - last >= t.everyMinutes * 60_000;
  let reason = '';
  if (counted >= t.minNewLabels)
    reason = `labels: ${newApproved} new approved${env.config.labeling.backend === 'simulated' ? ` + ${unlabelled} to label` : ''} >= ${t.minNewLabels}`;
  else if (scheduleDue) reason = `schedule: every ${t.everyMinutes} min`;
  return { due: reason !== '', reason, newApproved, unlabelled, championTrainedAsOf: asOf, scheduleDue };
}
