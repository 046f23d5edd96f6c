import type { Logger } from 'pino';
import { invalidArguments, notFound } from '../ipc/errors.js';
import type { IpcServer, OperationContext } from '../ipc/server.js';
import type { Kernel } from './kernel.js';

/**
 * Lifecycle IPC (the real LifecycleIPCEventStreamAgent): UpdateState, SubscribeToComponentUpdates
 * and DeferComponentUpdate, plus the pre-/post-update notifications a NOTIFY_COMPONENTS
 * deployment sends through them.
 *
 * Pre-update protocol: every subscribed component gets {preUpdateEvent: {deploymentId,
 * isGgcRestarting: false}}. The deployment waits until each has answered with
 * DeferComponentUpdate or the policy timeout passes. If any answer asks for more time
 * (recheckAfterMs > 0), the nucleus waits that long and asks again; answers with 0 (or silence
 * until the timeout) let the update go ahead.
 */
interface Deferral {
  message: string;
  recheckAfterMs: number;
}

interface PendingUpdate {
  deploymentId: string;
  waitingOn: Set<string>;
  answers: Map<string, Deferral>;
  onAnswer: () => void;
}

export class LifecycleIpc {
  private readonly updateSubscribers = new Map<string, Set<OperationContext>>();
  private pending: PendingUpdate | undefined;

  constructor(
    private readonly kernel: Kernel,
    private readonly log: Logger,
  ) {}

  register(server: IpcServer): void {
    server.register('UpdateState', (req, ctx) => {
      const c = this.kernel.components.get(ctx.principal);
      if (!c) throw notFound(`Component ${ctx.principal} not found`, 'Component', ctx.principal);
      const state = req.state;
      if (state !== 'RUNNING' && state !== 'ERRORED') throw invalidArguments(`state must be RUNNING or ERRORED, got ${JSON.stringify(state)}`);
      c.service.reportFromComponent(state);
      return {};
    });

    server.register('SubscribeToComponentUpdates', (_req, ctx) => {
      let set = this.updateSubscribers.get(ctx.principal);
      if (!set) this.updateSubscribers.set(ctx.principal, (set = new Set()));
      set.add(ctx);
      ctx.onClose(() => {
        set.delete(ctx);
        if (set.size === 0) this.updateSubscribers.delete(ctx.principal);
        // A component that went away cannot answer: stop waiting for it.
        if (this.pending && !this.updateSubscribers.has(ctx.principal)) {
          this.pending.waitingOn.delete(ctx.principal);
          this.pending.onAnswer();
        }
      });
      return {};
    });

    server.register('DeferComponentUpdate', (req, ctx) => {
      const deploymentId = req.deploymentId;
      if (typeof deploymentId !== 'string' || deploymentId === '') throw invalidArguments('deploymentId is required');
      const p = this.pending;
      if (!this.updateSubscribers.has(ctx.principal)) throw invalidArguments(`Component ${ctx.principal} is not subscribed to component updates`);
      if (!p || p.deploymentId !== deploymentId) throw notFound(`No pending update for deployment ${deploymentId}`, 'Deployment', deploymentId);
      const recheck = req.recheckAfterMs === undefined || req.recheckAfterMs === null ? 0 : Number(req.recheckAfterMs);
      if (!Number.isFinite(recheck) || recheck < 0) throw invalidArguments('recheckAfterMs must be a non-negative number');
      p.answers.set(ctx.principal, { message: typeof req.message === 'string' ? req.message : '', recheckAfterMs: recheck });
      p.waitingOn.delete(ctx.principal);
      p.onAnswer();
      return {};
    });
  }

  hasUpdateSubscribers(): boolean {
    return this.updateSubscribers.size > 0;
  }

  /**
   * Notify subscribers of an update and wait for their consent (see the class comment).
   * Returns the deferrals that were honoured, for the deployment record.
   */
  async preUpdate(deploymentId: string, timeoutMs: number, progress?: (msg: string) => void): Promise<{ component: string; message: string; recheckAfterMs: number }[]> {
    const honoured: { component: string; message: string; recheckAfterMs: number }[] = [];
    for (;;) {
      if (this.updateSubscribers.size === 0) return honoured;
      const p: PendingUpdate = { deploymentId, waitingOn: new Set(this.updateSubscribers.keys()), answers: new Map(), onAnswer: () => {} };
      this.pending = p;
      const allAnswered = new Promise<void>((resolve) => {
        p.onAnswer = () => {
          if (p.waitingOn.size === 0) resolve();
        };
      });
      const event = { preUpdateEvent: { deploymentId, isGgcRestarting: false } };
      for (const set of this.updateSubscribers.values()) for (const ctx of set) ctx.emit(event);
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([allAnswered, new Promise<void>((r) => (timer = setTimeout(r, timeoutMs)))]);
      clearTimeout(timer);
      this.pending = undefined;
      if (p.waitingOn.size) this.log.info({ deploymentId, silent: [...p.waitingOn] }, 'no answer to the pre-update event within the timeout; going ahead');
      const deferrals = [...p.answers].filter(([, d]) => d.recheckAfterMs > 0);
      if (deferrals.length === 0) return honoured;
      const wait = Math.max(...deferrals.map(([, d]) => d.recheckAfterMs));
      for (const [component, d] of deferrals) {
        honoured.push({ component, ...d });
        this.log.info({ deploymentId, component, message: d.message, recheckAfterMs: d.recheckAfterMs }, 'component deferred the update');
      }
      progress?.(`deferred by ${deferrals.map(([c]) => c).join(', ')} for ${wait} ms`);
      await new Promise((r) => setTimeout(r, wait));
    }
  }

  postUpdate(deploymentId: string): void {
    const event = { postUpdateEvent: { deploymentId } };
    for (const set of this.updateSubscribers.values()) for (const ctx of set) ctx.emit(event);
  }
}
