import { basename } from 'node:path';
import type { Logger } from 'pino';
import { silentLogger } from '../../lib/log.js';
import { Progress } from '../../lib/progress.js';
import type { Box, GtBox } from '../../contracts/box.js';
import type { LabelStore } from '../labelstore/types.js';
import { boxToGt, clipBox, gtToBox, iou } from '../../contracts/box.js';
import type { Labeling, Task, VerifyTask } from './jobs.js';
import { WorkerSession } from './session.js';

/**
 * A simulated workforce, so unattended runs and tests need no person: each worker labels from a
 * ground-truth source (e.g. the reference's metal-tags labels) with a set noise and miss rate,
 * drawn from its own seeded generator, so a run is reproducible. A simulated verifier approves
 * a consolidated label when it matches the ground truth (every true box matched at IoU >=
 * `iouThreshold`, no extra box) and otherwise rejects it, saying what is wrong.
 *
 *   await runSimulatedWorkforce(lab, job, { workers: [{ id, seed, noise, missRate }], truth })
 *   await runSimulatedVerifier(lab, job, { id, truth })
 *   truthFromStore(store, images)  // truth = the APPROVED boxes of the image with the same file name
 *
 * Images for which the truth source knows nothing are released from the job (they go back to
 * the pool for people) rather than labelled with made-up boxes.
 *
 * Simulated workers are workers like any other: each is issued a credential by the job's worker
 * registry (as `loupe labels workers add` does; re-issued each run, so an old one stops working)
 * and acts through a WorkerSession made from it, so the same identity, role and verifier rules
 * apply. The verifier gets only the `verify` role, the labellers only `label`.
 */

/** Ground truth for a task; null when unknown. */
export type TruthSource = (task: Pick<Task, 'sourceRef' | 'meta' | 'width' | 'height'>) => Promise<GtBox[] | null>;

export interface SimulatedWorker {
  id: string;
  seed: number;
  /** Standard deviation of each box edge's displacement, as a fraction of the box's width/height. */
  noise?: number;
  /** Probability of missing each true box. */
  missRate?: number;
  /** Probability of adding one spurious box to an image. */
  falsePositiveRate?: number;
}

/**
 * mulberry32: a small, well-known 32-bit seeded generator. Hand-written (a few lines) because
 * reproducibility is all that is needed here and Math.random cannot be seeded.
 */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function gaussian(rand: () => number): number {
  // Box–Muller
  const u = Math.max(rand(), 1e-12);
  const v = rand();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
}

/** What one simulated worker draws for an image whose true boxes are `truth`. */
export function simulateLabels(truth: GtBox[], width: number, height: number, w: SimulatedWorker, rand: () => number): GtBox[] {
  const noise = w.noise ?? 0.03;
  const out: GtBox[] = [];
  for (const t of truth) {
    if (rand() < (w.missRate ?? 0.05)) continue;
    const b = gtToBox(t);
    const bw = b.x2 - b.x1;
    const bh = b.y2 - b.y1;
    const moved: Box = {
      cls: b.cls,
      x1: b.x1 + gaussian(rand) * noise * bw,
      y1: b.y1 + gaussian(rand) * noise * bh,
      x2: b.x2 + gaussian(rand) * noise * bw,
      y2: b.y2 + gaussian(rand) * noise * bh,
    };
    const c = clipBox({ ...moved, x1: Math.min(moved.x1, moved.x2 - 1), y1: Math.min(moved.y1, moved.y2 - 1) }, width, height);
    if (c) out.push(boxToGt(c));
  }
  if (rand() < (w.falsePositiveRate ?? 0)) {
    const bw = Math.max(4, width * (0.05 + 0.15 * rand()));
    const bh = Math.max(4, height * (0.05 + 0.15 * rand()));
    const x1 = rand() * (width - bw);
    const y1 = rand() * (height - bh);
    out.push(boxToGt({ cls: truth[0]?.class_id ?? 0, x1, y1, x2: x1 + bw, y2: y1 + bh }));
  }
  return out;
}

export interface WorkforceResult {
  submitted: number;
  perWorker: Record<string, number>;
  /** Images released because the truth source knows nothing about them. */
  released: string[];
}

export async function runSimulatedWorkforce(
  lab: Labeling,
  job: string,
  opts: { workers: SimulatedWorker[]; truth: TruthSource; log?: Logger },
): Promise<WorkforceResult> {
  const log = opts.log ?? silentLogger;
  const perWorker: Record<string, number> = {};
  const noTruth = new Set<string>();
  const info = lab.getJob(job);
  const progress = new Progress(`label ${job}`, info.counts.items * info.workersPerImage - info.counts.annotations, log);
  let submitted = 0;
  // Round-robin over the workers, one task each per turn, as a crowd would interleave.
  const rands = new Map(opts.workers.map((w) => [w.id, seededRandom(w.seed)]));
  const sessions = new Map(
    opts.workers.map((w) => [w.id, WorkerSession.fromToken(lab, lab.workers.issue(w.id, ['label'], 'simulated workforce').token)]),
  );
  const active = new Set(opts.workers.map((w) => w.id));
  while (active.size) {
    for (const w of opts.workers) {
      if (!active.has(w.id)) continue;
      const session = sessions.get(w.id)!;
      const task = session.nextTask(job, { skip: noTruth });
      if (!task) {
        active.delete(w.id);
        continue;
      }
      const truth = await opts.truth(task);
      if (truth === null) {
        noTruth.add(task.sourceRef);
        continue;
      }
      await session.submit(job, task.sourceRef, simulateLabels(truth, task.width, task.height, w, rands.get(w.id)!));
      perWorker[w.id] = (perWorker[w.id] ?? 0) + 1;
      progress.update(++submitted);
    }
  }
  // Consolidation runs in the background as images complete; the job is labelled when it is done.
  await lab.settle();
  progress.finish();
  const released: string[] = [];
  for (const ref of noTruth) {
    const item = lab.items(job).find((i) => i.sourceRef === ref);
    if (item && item.annotations.length === 0) {
      lab.release(job, ref);
      released.push(ref);
      log.warn({ job, sourceRef: ref }, 'no ground truth for this image: released from the simulated job');
    }
  }
  return { submitted, perWorker, released };
}

/** Compare labels with the truth: boxes matched greedily by IoU (same class). */
export function compareWithTruth(
  labels: GtBox[],
  truth: GtBox[],
  iouThreshold = 0.5,
): { matched: number; missed: number; extra: number; meanIou: number } {
  const pairs: { i: number; j: number; v: number }[] = [];
  labels.forEach((l, i) =>
    truth.forEach((t, j) => {
      if (l.class_id !== t.class_id) return;
      const v = iou(gtToBox(l), gtToBox(t));
      if (v >= iouThreshold) pairs.push({ i, j, v });
    }),
  );
  pairs.sort((a, b) => b.v - a.v);
  const li = new Set<number>();
  const tj = new Set<number>();
  let sum = 0;
  for (const p of pairs) {
    if (li.has(p.i) || tj.has(p.j)) continue;
    li.add(p.i);
    tj.add(p.j);
    sum += p.v;
  }
  return {
    matched: li.size,
    missed: truth.length - tj.size,
    extra: labels.length - li.size,
    meanIou: li.size ? sum / li.size : labels.length === 0 && truth.length === 0 ? 1 : 0,
  };
}

export interface VerifierResult {
  approved: number;
  rejected: number;
  reasons: Record<string, string>;
}

export async function runSimulatedVerifier(
  lab: Labeling,
  job: string,
  opts: { id: string; truth: TruthSource; iouThreshold?: number; log?: Logger },
): Promise<VerifierResult> {
  const log = opts.log ?? silentLogger;
  const out: VerifierResult = { approved: 0, rejected: 0, reasons: {} };
  let task: VerifyTask | null;
  const skipped = new Set<string>();
  await lab.settle();
  const session = WorkerSession.fromToken(lab, lab.workers.issue(opts.id, ['verify'], 'simulated workforce').token);
  while ((task = session.nextVerification(job, { skip: skipped }))) {
    const truth = await opts.truth(task);
    if (truth === null) {
      skipped.add(task.sourceRef);
      log.warn({ job, sourceRef: task.sourceRef }, 'no ground truth: left for a person to verify');
      continue;
    }
    const c = compareWithTruth(task.annotations, truth, opts.iouThreshold ?? 0.5);
    if (c.missed === 0 && c.extra === 0) {
      await session.verify(job, task.sourceRef, { verdict: 'approve' });
      out.approved++;
    } else {
      const reason = [c.missed ? `${c.missed} defect(s) not boxed` : '', c.extra ? `${c.extra} box(es) on no defect` : '']
        .filter(Boolean)
        .join('; ');
      await session.verify(job, task.sourceRef, { verdict: 'reject', reason });
      out.rejected++;
      out.reasons[task.sourceRef] = reason;
    }
  }
  return out;
}

/**
 * Truth from a label store holding reference labels (e.g. the imported metal-tags labels.csv):
 * an image's truth is the latest APPROVED boxes of the reference image with the same file name.
 * The file name is looked for in the record's meta (`meta.origin`, `meta.frame.source|origin|
 * path|file`, when whoever recorded it knew the camera's source file; the loupe.upload/1 sidecar
 * does not carry it) and then in the source_ref itself.
 */
export async function truthFromStore(store: LabelStore, opts: { asOf?: number; refPrefix?: string } = {}): Promise<TruthSource> {
  const approved = await store.latest({ asOf: opts.asOf, status: 'APPROVED' });
  const byName = new Map<string, GtBox[]>();
  for (const r of approved) {
    if (opts.refPrefix && !r.source_ref.startsWith(opts.refPrefix)) continue;
    byName.set(
      basename(r.source_ref),
      r.annotations.map(({ confidence: _c, ...b }) => b),
    );
  }
  return async (task) => {
    const frame = task.meta?.frame as Record<string, unknown> | string | undefined;
    const candidates: string[] = [];
    if (frame && typeof frame === 'object')
      for (const k of ['source', 'origin', 'path', 'file', 'name'])
        if (typeof frame[k] === 'string') candidates.push(basename(frame[k] as string));
    for (const k of ['origin', 'source', 'sourceFile', 'file'])
      if (typeof task.meta?.[k] === 'string') candidates.push(basename(task.meta[k] as string));
    candidates.push(basename(task.sourceRef));
    for (const c of candidates) {
      const t = byName.get(c);
      if (t) return t;
    }
    return null;
  };
}
