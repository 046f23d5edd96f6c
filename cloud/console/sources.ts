import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { errorMessage } from '../../lib/errors.js';
import { itemState } from '../labelstore/state.js';
import type { LoopEnv } from '../loop/env.js';
import type { LoopStore } from '../loop/store.js';
import { MODEL_COMPONENT } from '../publish/model-component.js';
import type { LiveFeed } from './live.js';

/**
 * Everything the operator console shows, read through the parts the loop itself uses (LoopEnv:
 * label store and labelling, registry, fleet store and fleet backend; LoopStore: runs and steps)
 * and the live MQTT feed. This is the one module that knows where loop state lives, so a change
 * to the loop's parts touches the console here only. Each read is independent: a part that fails
 * (an AWS call without credentials, say) shows its error on its page instead of breaking the rest.
 */
export interface ConsoleSources {
  fleet(): Promise<unknown>;
  live(): Promise<unknown>;
  labelling(): Promise<unknown>;
  runs(): Promise<unknown>;
  models(): Promise<unknown>;
  /** A recent defect frame's bytes (only frames the live feed reported, read where the device wrote them). */
  frame(thing: string, frameId: string): Promise<Buffer | undefined>;
}

const guard = async <T>(f: () => Promise<T> | T): Promise<T | { error: string }> => {
  try {
    return await f();
  } catch (e) {
    return { error: errorMessage(e) };
  }
};

function tail(path: string, lines: number): string {
  const text = readFileSync(path, 'utf8');
  return text.split('\n').slice(-lines).join('\n');
}

export function loopSources(env: LoopEnv, store: LoopStore, live: LiveFeed | null): ConsoleSources {
  return {
    fleet: async () => ({
      backend: env.fleet.kind,
      target: env.fleet.target,
      devices: await guard(() => env.fleet.devices(MODEL_COMPONENT)),
      components: await guard(async () => env.fleet.currentComponents()),
      deployments: env.fleetStore.deployments({ backend: env.fleet.kind, target: env.fleet.target }).slice(-20).reverse(),
      live: live
        ? live.snapshot().things.map((t) => ({
            thing: t.thing,
            telemetryAt: t.telemetryAt,
            lastResultAt: t.lastResultAt,
            model: t.telemetry?.model ?? null,
            queueDepth: t.telemetry?.queueDepth ?? null,
            errors: t.telemetry?.errors ?? null,
            modelError: t.telemetry?.modelError ?? null,
          }))
        : null,
    }),
    live: async () =>
      live ? live.snapshot() : { error: 'no MQTT feed: the loop configuration has no fleet.mqttUrl and --mqtt was not given' },
    labelling: async () => {
      const latest = await env.labels.latest();
      const counts: Record<string, number> = { unlabelled: 0, 'awaiting-verification': 0, approved: 0, rejected: 0 };
      for (const r of latest) counts[itemState(r)] = (counts[itemState(r)] ?? 0) + 1;
      return {
        images: latest.length,
        counts,
        jobs: env.labeling.listJobs(),
        queue: latest
          .filter((r) => itemState(r) === 'unlabelled')
          .slice(0, 50)
          .map((r) => ({ source_ref: r.source_ref, device: r.device, boxes: r.annotations.length, event_time: r.event_time })),
      };
    },
    runs: async () =>
      store.listRuns(20).map((r) => {
        const dir = join(env.home.runsDir, String(r.id));
        const files = existsSync(dir) ? readdirSync(dir).filter((f) => statSync(join(dir, f)).isFile()) : [];
        const logs = files
          .filter((f) => f.endsWith('.log') || f.endsWith('.jsonl'))
          .map((f) => ({ file: f, tail: tail(join(dir, f), 60) }));
        return { ...r, steps: store.steps(r.id), files, logs };
      }),
    models: async () =>
      Promise.all(
        (await env.registry.list()).map(async (v) => {
          let card: unknown = null;
          try {
            card = v.artefacts.card ? JSON.parse(readFileSync(await env.registry.artefactPath(v, 'card'), 'utf8')) : null;
          } catch {
            card = null;
          }
          let gateReport: unknown = null;
          try {
            gateReport = v.gate?.reportPath && existsSync(v.gate.reportPath) ? JSON.parse(readFileSync(v.gate.reportPath, 'utf8')) : null;
          } catch {
            gateReport = null;
          }
          return { ...v, card, gateReport };
        }),
      ),
    frame: async (thing, frameId) => {
      const r = live?.defect(thing, frameId);
      if (!r || !r.path || !existsSync(r.path)) return undefined;
      return readFileSync(r.path);
    },
  };
}
