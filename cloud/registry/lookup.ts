import { LoupeError } from '../../lib/errors.js';
import type { ModelVersion } from './types.js';

/** Model group names as SageMaker allows them for model package groups (so a group moves between the two registries). */
export const GROUP_RE = /^[A-Za-z0-9](-*[A-Za-z0-9]){0,62}$/;

export function checkGroup(group: string): void {
  if (typeof group !== 'string' || !GROUP_RE.test(group))
    throw new LoupeError('REGISTRY_BAD_GROUP', 'model group names are 1-63 letters, digits and hyphens', { input: String(group) });
}

export interface FindByKeyOptions {
  /** Only versions created strictly after this time (SageMaker: ListModelPackages CreationTimeAfter). */
  createdAfter?: Date;
}

/**
 * Finding a version by the idempotency key it was registered with, the same in every registry
 * (test/cloud-models/registry-findbykey*.test.ts runs one conformance suite against both):
 * - only versions of `group`, with exactly this key (no prefix or normalised match);
 * - `createdAfter` keeps versions created strictly after that time;
 * - not found (also: no such group yet) is `undefined`, never an error, and creates nothing;
 * - a malformed group is REGISTRY_BAD_GROUP, an empty key REGISTRY_BAD_KEY, an invalid date
 *   REGISTRY_BAD_KEY too (naming the option), before anything is looked up.
 */
export interface RegistryKeyLookup {
  findByKey(group: string, idempotencyKey: string, opts?: FindByKeyOptions): Promise<ModelVersion | undefined>;
}

/** The argument checks every findByKey makes first. */
export function checkLookup(group: string, idempotencyKey: string, opts: FindByKeyOptions = {}): void {
  checkGroup(group);
  if (typeof idempotencyKey !== 'string' || idempotencyKey.length === 0)
    throw new LoupeError('REGISTRY_BAD_KEY', 'an idempotency key must be a non-empty string', { input: group });
  if (opts.createdAfter !== undefined && !(opts.createdAfter instanceof Date && Number.isFinite(opts.createdAfter.getTime())))
    throw new LoupeError('REGISTRY_BAD_KEY', 'createdAfter must be a valid Date', { input: 'createdAfter' });
}
