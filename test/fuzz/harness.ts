import fc from 'fast-check';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { isLoupeError } from '../../lib/errors.js';
import { projectRoot } from '../../lib/paths.js';

/**
 * The standing fuzz suite's harness (issue 14): property-based runs with fast-check, seeded and
 * bounded in time. Each target runs for LOUPE_FUZZ_SECONDS (default 3 in the normal suite;
 * `npm run test:unit` sets 1, `npm run fuzz` 60) from seed LOUPE_FUZZ_SEED (default fixed, so a failure
 * reproduces; fast-check prints the seed and the shrunk counterexample). What every target
 * checks for each input:
 * - no crash: the call returns, or throws a LoupeError (a clear, coded error naming the input);
 * - no hang: one call stays under `maxCallMs`;
 * - bounded memory: the target's own output bound (`bound`), and the process's heap never grows
 *   more than `maxHeapGrowthMiB` over the run.
 * Iterations, time and the largest call time go to test-artifacts/fuzz/<target>.json and the log.
 */
export const FUZZ_SECONDS = Number(process.env.LOUPE_FUZZ_SECONDS ?? 3);
export const FUZZ_SEED = Number(process.env.LOUPE_FUZZ_SEED ?? 20_240_611);
if (!(FUZZ_SECONDS > 0) || !Number.isInteger(FUZZ_SEED)) throw new Error('LOUPE_FUZZ_SECONDS must be > 0 and LOUPE_FUZZ_SEED an integer');

export interface FuzzReport {
  target: string;
  seed: number;
  seconds: number;
  iterations: number;
  /** Inputs the target accepted (returned a value) and refused with a LoupeError. */
  accepted: number;
  refused: number;
  refusedCodes: Record<string, number>;
  maxCallMs: number;
  heapGrowthMiB: number;
}

export interface TargetOptions {
  /** One call longer than this is a hang (default 2000 ms; machines here are shared and loaded). */
  maxCallMs?: number;
  maxHeapGrowthMiB?: number;
  /** Budget override (seconds) for this target. */
  seconds?: number;
}

/** What a test does with a target's result: fail with the property's message, or pass and report. */
export class FuzzStats {
  iterations = 0;
  accepted = 0;
  refused = 0;
  refusedCodes: Record<string, number> = {};
  maxCallMs = 0;
  private heap0 = process.memoryUsage().heapUsed;
  private heapMax = 0;

  constructor(
    readonly target: string,
    readonly opts: TargetOptions = {},
  ) {}

  /** Run one input through `call`: LoupeError is a refusal, anything else thrown fails the property. */
  check<T>(call: () => T, bound?: (out: T) => string | null): void {
    this.iterations++;
    const t0 = performance.now();
    let out: T;
    try {
      out = call();
    } catch (e) {
      return this.thrown(t0, e);
    }
    this.returned(t0, out, bound);
  }

  /** The async form (server requests): `call` resolves to a result or rejects with a LoupeError. */
  async checkAsync<T>(call: () => Promise<T>, bound?: (out: T) => string | null): Promise<void> {
    this.iterations++;
    const t0 = performance.now();
    let out: T;
    try {
      out = await call();
    } catch (e) {
      return this.thrown(t0, e);
    }
    this.returned(t0, out, bound);
  }

  private thrown(t0: number, e: unknown): void {
    this.time(t0);
    if (!isLoupeError(e))
      throw new Error(`${this.target}: crashed with ${(e as Error)?.name ?? typeof e}: ${(e as Error)?.message ?? String(e)}`, {
        cause: e,
      });
    this.refused++;
    this.refusedCodes[e.code] = (this.refusedCodes[e.code] ?? 0) + 1;
  }

  private returned<T>(t0: number, out: T, bound?: (out: T) => string | null): void {
    this.time(t0);
    this.accepted++;
    const why = bound?.(out);
    if (why) throw new Error(`${this.target}: output over its bound: ${why}`);
    this.heapCheck();
  }

  /** Count an outcome the target classifies itself (an HTTP status, say). */
  note(code: string, accepted: boolean): void {
    if (accepted) this.accepted++;
    else {
      this.refused++;
      this.refusedCodes[code] = (this.refusedCodes[code] ?? 0) + 1;
    }
  }

  private time(t0: number): void {
    const ms = performance.now() - t0;
    this.maxCallMs = Math.max(this.maxCallMs, ms);
    const limit = this.opts.maxCallMs ?? 2000;
    if (ms > limit) throw new Error(`${this.target}: one call took ${ms.toFixed(0)} ms (limit ${limit} ms): a hang`);
  }

  private heapCheck(): void {
    if (this.iterations % 64 !== 0) return;
    const grown = (process.memoryUsage().heapUsed - this.heap0) / 2 ** 20;
    this.heapMax = Math.max(this.heapMax, grown);
    const limit = this.opts.maxHeapGrowthMiB ?? 512;
    if (grown > limit) throw new Error(`${this.target}: heap grew ${grown.toFixed(0)} MiB (limit ${limit} MiB)`);
  }

  report(seconds: number): FuzzReport {
    const r: FuzzReport = {
      target: this.target,
      seed: FUZZ_SEED,
      seconds: +seconds.toFixed(2),
      iterations: this.iterations,
      accepted: this.accepted,
      refused: this.refused,
      refusedCodes: this.refusedCodes,
      maxCallMs: +this.maxCallMs.toFixed(1),
      heapGrowthMiB: +this.heapMax.toFixed(1),
    };
    const dir = join(projectRoot, 'test-artifacts', 'fuzz');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, `${this.target}.json`), JSON.stringify(r, null, 2));
    console.log(
      `fuzz ${r.target}: ${r.iterations} iterations in ${r.seconds} s (seed ${r.seed}; ${r.accepted} accepted, ${r.refused} refused; slowest call ${r.maxCallMs} ms)`,
    );
    return r;
  }
}

/** Run a synchronous property for the time budget; returns the report. */
export function fuzz<T>(
  target: string,
  arb: fc.Arbitrary<T>,
  body: (input: T, stats: FuzzStats) => void,
  opts: TargetOptions = {},
): FuzzReport {
  const stats = new FuzzStats(target, opts);
  const seconds = opts.seconds ?? FUZZ_SECONDS;
  const t0 = performance.now();
  fc.assert(
    fc.property(arb, (input) => {
      body(input, stats);
    }),
    {
      seed: FUZZ_SEED,
      numRuns: Number.MAX_SAFE_INTEGER,
      interruptAfterTimeLimit: seconds * 1000,
      markInterruptAsFailure: false,
      endOnFailure: true,
    },
  );
  return stats.report((performance.now() - t0) / 1000);
}

/** The async form. */
export async function fuzzAsync<T>(
  target: string,
  arb: fc.Arbitrary<T>,
  body: (input: T, stats: FuzzStats) => Promise<void>,
  opts: TargetOptions = {},
): Promise<FuzzReport> {
  const stats = new FuzzStats(target, opts);
  const seconds = opts.seconds ?? FUZZ_SECONDS;
  const t0 = performance.now();
  await fc.assert(
    fc.asyncProperty(arb, async (input) => {
      await body(input, stats);
    }),
    {
      seed: FUZZ_SEED,
      numRuns: Number.MAX_SAFE_INTEGER,
      interruptAfterTimeLimit: seconds * 1000,
      markInterruptAsFailure: false,
      endOnFailure: true,
    },
  );
  return stats.report((performance.now() - t0) / 1000);
}

/**
 * Byte-level mutations of a valid seed input: flips, overwrites with boundary bytes, inserts,
 * deletions, truncation, and splices of another seed: most inputs stay close to the format, so
 * the parser gets past its first check.
 */
export function mutated(seeds: Uint8Array[]): fc.Arbitrary<Uint8Array> {
  const edit = fc.oneof(
    fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
    fc.record({ kind: fc.constant('set' as const), at: fc.nat(), value: fc.constantFrom(0x00, 0x01, 0x7f, 0x80, 0xff, 0xfe) }),
    fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), bytes: fc.uint8Array({ maxLength: 16 }) }),
    fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), length: fc.integer({ min: 1, max: 64 }) }),
    fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
    fc.record({ kind: fc.constant('varint' as const), at: fc.nat() }),
  );
  return fc
    .record({ seed: fc.nat({ max: seeds.length - 1 }), edits: fc.array(edit, { minLength: 1, maxLength: 6 }) })
    .map(({ seed, edits }) => {
      let b = Buffer.from(seeds[seed]!);
      for (const e of edits) {
        const at = b.length ? e.at % b.length : 0;
        if (e.kind === 'flip' && b.length) b[at] = b[at]! ^ (1 << e.bit);
        else if (e.kind === 'set' && b.length) b[at] = e.value;
        else if (e.kind === 'insert') b = Buffer.concat([b.subarray(0, at), Buffer.from(e.bytes), b.subarray(at)]);
        else if (e.kind === 'delete') b = Buffer.concat([b.subarray(0, at), b.subarray(at + e.length)]);
        else if (e.kind === 'truncate') b = b.subarray(0, at);
        // a huge length prefix: the classic way to make a reader run past its buffer or allocate
        else if (e.kind === 'varint')
          b = Buffer.concat([b.subarray(0, at), Buffer.from([0xff, 0xff, 0xff, 0xff, 0x0f]), b.subarray(at + 1)]);
      }
      return new Uint8Array(b);
    });
}
