import type { ResultMessage } from '../../contracts/topics.js';
import type { PolicyConfig } from './config.js';

/**
 * Upload policies as small named blocks: each looks at one inference result and says whether
 * (and why) the image is worth labelling. The priority orders the spool's eviction: random
 * passes go first, then uncertain frames, defects last.
 */
export const PRIORITY = { random: 1, uncertain: 2, failed: 3, classes: 3 } as const;

export interface Selection {
  reason: string;
  reasons: string[];
  priority: number;
}

export interface Policy {
  name: string;
  priority: number;
  matches(r: ResultMessage): boolean;
}

export function createPolicy(p: PolicyConfig, random: () => number = Math.random): Policy {
  switch (p.type) {
    case 'failed':
      return { name: p.name ?? 'failed', priority: PRIORITY.failed, matches: (r) => r.verdict === 'fail' };
    case 'uncertain':
      return {
        name: p.name ?? 'uncertain',
        priority: PRIORITY.uncertain,
        matches: (r) => r.detections.some((d) => d.conf >= p.low && d.conf < p.high),
      };
    case 'random':
      return { name: p.name ?? 'random', priority: PRIORITY.random, matches: (r) => r.verdict === 'pass' && random() < p.share };
    case 'classes': {
      const want = new Set(p.classes.map(String));
      return {
        name: p.name ?? `classes:${p.classes.join(',')}`,
        priority: PRIORITY.classes,
        matches: (r) => r.detections.some((d) => d.conf >= p.minConf && (want.has(d.name) || want.has(String(d.cls)))),
      };
    }
  }
}

/** Every policy that matches; the reason is the one with the highest priority (first on ties). */
export function select(policies: Policy[], r: ResultMessage): Selection | undefined {
  if (r.verdict === 'error') return undefined;
  const hits = policies.filter((p) => p.matches(r));
  if (hits.length === 0) return undefined;
  const best = hits.reduce((a, b) => (b.priority > a.priority ? b : a));
  return { reason: best.name, reasons: hits.map((h) => h.name), priority: best.priority };
}
