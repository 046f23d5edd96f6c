import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import { invalidArguments, notFound, serviceError } from '../ipc/errors.js';
import { LIFECYCLE_SERVICE, type Authorizer } from '../authorization.js';
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

/**
 * Sleep `ms` (any length: a timer longer than 2^31-1 ms would fire at once in Node and turn a
 * long deferral into a busy loop); false when aborted.
 */
export async function longSleep(ms: number, signal: AbortSignal): Promise<boolean> {
  let left = ms;
  while (left > 0 && !signal.aborted) {
    const step = Math.min(left, MAX_TIMER_MS);
    const done = await sleep(step, true, { signal, ref: false }).catch(() => false);
    if (!done) return false;
    left -= step;
  }
  return !signal.aborted;
}

const MAX_TIMER_MS = 2 ** 31 - 1;

export class LifecycleIpc {
  private readonly updateSubscribers = new Map<string, Set<OperationContext>>();
  private pending: PendingUpdate | undefined;
  private readonly closing = new AbortController();

  constructor(
    private readonly kernel: Kernel,
    private readonly authz: Authorizer,
    private readonly log: Logger,
  ) {}

  register(server: IpcServer): void {
    server.register('UpdateState', (req, ctx) => {
      const c = this.kernel.components.get(ctx.principal);
      if (!c) throw notFound(`Component ${ctx.principal} not found`, 'Component', ctx.principal);
      const state = req.state;
      if (state !== 'RUNNING' && state !== 'ERRORED')
        throw invalidArguments(`state must be RUNNING or ERRORED, got ${JSON.stringify(state)}`);
      c.service.reportFromComponent(state);
      return {};
    });

    // PauseComponent / ResumeComponent: authorized per target component against the
    // aws.greengrass.ipc.lifecycle policies, as the real LifecycleIPCEventStreamAgent.
    const pauseOrResume = (op: 'PauseComponent' | 'ResumeComponent') => (req: Record<string, unknown>, ctx: OperationContext) => {
      const name = req.componentName;
      if (typeof name !== 'string' || name === '') throw invalidArguments('Component name is required.');
      this.authz.check(LIFECYCLE_SERVICE, ctx.principal, `aws.greengrass#${op}`, name);
      const c = this.kernel.components.get(name);
      if (!c) throw notFound('', 'Component', name);
      if (op === 'PauseComponent') {
        if (c.service.state !== 'RUNNING') throw invalidArguments(`Component ${name} is not running`);
        if (!c.service.paused) c.service.setPaused(true);
      } else {
        if (!c.service.paused) throw invalidArguments(`Component ${name} is not paused`);
        c.service.setPaused(false);
      }
      return {};
    };
    server.register('PauseComponent', pauseOrResume('PauseComponent'));
    server.register('ResumeComponent', pauseOrResume('ResumeComponent'));

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
      if (!this.updateSubscribers.has(ctx.principal)) throw invalidArguments('Component is not subscribed to component update events');
      // The real nucleus answers this for any deferral it is not waiting for.
      if (!p || p.deploymentId !== deploymentId) throw serviceError('Time limit to respond to PreComponentUpdateEvent exceeded');
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
  async preUpdate(
    deploymentId: string,
    timeoutMs: number,
    progress?: (msg: string) => void,
  ): Promise<{ component: string; message: string; recheckAfterMs: number }[]> {
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
      if (p.waitingOn.size)
        this.log.info({ deploymentId, silent: [...p.waitingOn] }, 'no answer to the pre-update event within the timeout; going ahead');
      const deferrals = [...p.answers].filter(([, d]) => d.recheckAfterMs > 0);
      if (deferrals.length === 0) return honoured;
      const wait = Math.max(...deferrals.map(([, d]) => d.recheckAfterMs));
      for (const [component, d] of deferrals) {
        honoured.push({ component, ...d });
        this.log.info({ deploymentId, component, message: d.message, recheckAfterMs: d.recheckAfterMs }, 'component deferred the update');
      }
      progress?.(`deferred by ${deferrals.map(([c]) => c).join(', ')} for ${wait} ms`);
      if (!(await longSleep(wait, this.closing.signal))) return honoured;
    }
  }

  /** The nucleus is stopping: end any deferral wait. */
  close(): void {
    this.closing.abort();
  }

  postUpdate(deploymentId: string): void {
    const event = { postUpdateEvent: { deploymentId } };
    for (const set of this.updateSubscribers.values()) for (const ctx of set) ctx.emit(event);
  }
}
