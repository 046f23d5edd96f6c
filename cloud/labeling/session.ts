import { LoupeError } from '../../lib/errors.js';
import type { ItemView, Labeling, Task, VerifyTask } from './jobs.js';
import { requireRole, type Worker } from './workers.js';

/**
 * What one authenticated worker may do in a labelling job: the identity is the credential's
 * owner, fixed when the session is made, and every call checks the worker's role. The web
 * server makes one per request from the session cookie or bearer credential; the simulated
 * workforce makes one from the credential it was issued, the same way.
 *
 *   const s = WorkerSession.fromToken(lab, token)     // LoupeError UNAUTHENTICATED when unknown or revoked
 *   s.nextTask(job) / s.taskFor(job, ref) / s.submit(job, ref, boxes) / s.skip(job, ref)
 *   s.nextVerification(job) / s.verify(job, ref, { verdict, reason })
 */
export class WorkerSession {
  constructor(
    readonly lab: Labeling,
    readonly worker: Worker,
  ) {}

  static fromToken(lab: Labeling, token: unknown): WorkerSession {
    const w = lab.workers.authenticate(token);
    if (!w) throw new LoupeError('UNAUTHENTICATED', 'unknown or revoked worker credential');
    return new WorkerSession(lab, w);
  }

  get id(): string {
    return this.worker.id;
  }

  nextTask(job: string, opts: { skip?: ReadonlySet<string> } = {}): Task | null {
    requireRole(this.worker, 'label');
    return this.lab.nextTask(job, this.id, opts);
  }

  taskFor(job: string, ref: string): Task {
    requireRole(this.worker, 'label');
    return this.lab.taskFor(job, ref, this.id);
  }

  skip(job: string, ref: string): void {
    this.lab.releaseLease(job, ref, this.id);
  }

  submit(job: string, ref: string, boxes: unknown, opts: { replace?: boolean } = {}): Promise<{ complete: boolean }> {
    requireRole(this.worker, 'label');
    return this.lab.submit(job, ref, this.id, boxes, opts);
  }

  items(job: string): ItemView[] {
    return this.lab.itemsFor(job, this.id);
  }

  nextVerification(job: string, opts: { skip?: ReadonlySet<string>; ref?: string } = {}): VerifyTask | null {
    requireRole(this.worker, 'verify');
    return this.lab.nextVerification(job, this.id, opts);
  }

  verify(job: string, ref: string, v: { verdict: 'approve' | 'reject'; reason?: string }): Promise<void> {
    requireRole(this.worker, 'verify');
    return this.lab.verify(job, ref, { ...v, verifier: this.id });
  }
}
