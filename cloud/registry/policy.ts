import { LoupeError } from '../../lib/errors.js';
import type { GateSummary, ModelStatus } from './types.js';

/**
 * When a newly registered version is approved without a person: the gate must have passed,
 * and the policy must allow automatic approval (a plant may want a person to sign off every
 * model: `autoApprove: false` keeps passing models pending for `loupe models approve`).
 * A version that failed the gate is registered as rejected, with the gate's reasons, so it is
 * kept for inspection but never becomes champion by accident.
 */
export interface ApprovalPolicy {
  autoApprove: boolean;
  /** Without a gate result a version stays pending (never auto-approved). */
  requireGate: boolean;
}

export const DEFAULT_POLICY: ApprovalPolicy = { autoApprove: true, requireGate: true };

export function decideApproval(
  gate: GateSummary | null | undefined,
  policy: ApprovalPolicy = DEFAULT_POLICY,
): {
  status: ModelStatus;
  reason: string;
  by: string;
} {
  if (!gate) {
    return policy.requireGate
      ? { status: 'pending', reason: 'no gate result; needs `loupe models approve`', by: 'policy' }
      : policy.autoApprove
        ? { status: 'approved', reason: 'policy approves without a gate', by: 'policy' }
        : { status: 'pending', reason: 'policy requires manual approval', by: 'policy' };
  }
  if (!gate.passed) return { status: 'rejected', reason: `gate failed: ${gate.reasons.join('; ')}`, by: 'gate' };
  if (!policy.autoApprove) return { status: 'pending', reason: 'gate passed; policy requires manual approval', by: 'policy' };
  return { status: 'approved', reason: `gate passed: ${gate.reasons.join('; ')}`, by: 'gate+policy' };
}

/**
 * Allowed status moves (see types.ts). Approving needs a passing gate result unless forced:
 * a forced approval (no gate, a failed gate, or a version rejected earlier) needs a reason and
 * is recorded as forced in the history, with who and when. Returns whether force was used.
 */
export function checkTransition(
  ref: string,
  from: ModelStatus,
  to: ModelStatus,
  change: { force?: boolean; reason?: string; gate?: GateSummary | null } = {},
): { forced: boolean } {
  if (from === to) return { forced: false };
  if (to === 'pending') throw new LoupeError('REGISTRY_BAD_STATUS', `cannot move back to pending (is ${from})`, { input: ref });
  if (to !== 'approved') return { forced: false };
  const overrides: string[] = [];
  if (from === 'rejected') overrides.push('it was rejected');
  if (!change.gate) overrides.push('it has no gate result');
  else if (!change.gate.passed) overrides.push(`its gate failed (${change.gate.reasons.join('; ')})`);
  if (overrides.length === 0) return { forced: false };
  if (!change.force) {
    if (from === 'rejected')
      throw new LoupeError(
        'REGISTRY_BAD_STATUS',
        `version was rejected; approve it with --force --reason WHY if you mean it (${overrides.join('; ')})`,
        { input: ref },
      );
    throw new LoupeError(
      'REGISTRY_NO_GATE',
      `no passing gate result: ${overrides.join('; ')}. Gate it (loupe models gate), or approve with --force --reason WHY: the override is recorded`,
      { input: ref },
    );
  }
  if (!change.reason?.trim())
    throw new LoupeError('REGISTRY_FORCE_REASON', `a forced approval needs --reason (${overrides.join('; ')}); it is kept in the history`, {
      input: ref,
    });
  return { forced: true };
}
