import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { LoupeError } from '../../lib/errors.js';
import { projectRoot } from '../../lib/paths.js';
import type { ConsolidateOptions, ConsolidatedBox, WorkerAnnotation } from './consolidate.js';

/**
 * One worker thread that runs consolidations (consolidate-worker.ts), started on first use, so
 * they never block the event loop. The thread keeps the process alive only while it has work
 * (ref'd while requests wait, unref'd when idle). Requests run in order; a crashed thread fails
 * what it held and is replaced on the next call.
 */
function workerScript(): string {
  const sibling = fileURLToPath(new URL('./consolidate-worker.js', import.meta.url));
  if (existsSync(sibling)) return sibling;
  // Running from the TypeScript sources (vitest): the thread runs the build's copy.
  const built = join(projectRoot, 'dist', 'cloud', 'labeling', 'consolidate-worker.js');
  if (existsSync(built)) return built;
  throw new LoupeError('LABELING_NO_WORKER', 'the consolidation worker is not built; run `npm run build`', { input: built });
}

export class Consolidator {
  private worker: Worker | undefined;
  private nextId = 1;
  private readonly waiting = new Map<number, { resolve: (b: ConsolidatedBox[]) => void; reject: (e: Error) => void }>();

  private start(): Worker {
    if (this.worker) return this.worker;
    const w = new Worker(workerScript());
    w.unref();
    w.on('message', (m: { id: number; boxes?: ConsolidatedBox[]; error?: string }) => {
      const p = this.waiting.get(m.id);
      if (!p) return;
      this.waiting.delete(m.id);
      if (this.waiting.size === 0) w.unref();
      if (m.error !== undefined) p.reject(new LoupeError('LABEL_CONSOLIDATE', `consolidation failed: ${m.error}`));
      else p.resolve(m.boxes!);
    });
    const fail = (e: Error) => {
      if (this.worker === w) this.worker = undefined;
      for (const p of this.waiting.values()) p.reject(new LoupeError('LABEL_CONSOLIDATE', `consolidation thread stopped: ${e.message}`));
      this.waiting.clear();
    };
    w.on('error', fail);
    w.on('exit', (code) => fail(new Error(`exit code ${code}`)));
    this.worker = w;
    return w;
  }

  run(annotations: WorkerAnnotation[], opts: ConsolidateOptions): Promise<ConsolidatedBox[]> {
    const w = this.start();
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      if (this.waiting.size === 0) w.ref();
      this.waiting.set(id, { resolve, reject });
      w.postMessage({ id, annotations, opts });
    });
  }

  async close(): Promise<void> {
    const w = this.worker;
    this.worker = undefined;
    if (w) await w.terminate();
  }
}
