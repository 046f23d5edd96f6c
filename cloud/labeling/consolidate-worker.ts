import { parentPort } from 'node:worker_threads';
import { consolidate, type ConsolidateOptions, type WorkerAnnotation } from './consolidate.js';

/**
 * Worker-thread entry for consolidator.ts: runs `consolidate` off the main thread, so a large
 * image (thousands of boxes from several workers is O(n²) in IoU pairs) never stalls the
 * labelling server's event loop.
 */
interface Job {
  id: number;
  annotations: WorkerAnnotation[];
  opts: ConsolidateOptions;
}

parentPort!.on('message', (m: Job) => {
  try {
    parentPort!.postMessage({ id: m.id, boxes: consolidate(m.annotations, m.opts) });
  } catch (e) {
    parentPort!.postMessage({ id: m.id, error: e instanceof Error ? e.message : String(e) });
  }
});
