/**
 * Inference figures over a sliding window (the telemetry interval): frames/s, latency and
 * detector time p50/p95, defect rate per class (share of frames with at least one detection of
 * that class), fail rate; plus totals since start.
 */
export class InferenceStats {
  private window: { at: number; latencyMs: number; inferMs: number; classes: string[]; fail: boolean }[] = [];
  processed = 0;
  failed = 0;
  errors = 0;

  record(latencyMs: number, inferMs: number, classes: string[], fail: boolean): void {
    this.processed++;
    if (fail) this.failed++;
    this.window.push({ at: Date.now(), latencyMs, inferMs, classes: [...new Set(classes)], fail });
  }

  error(): void {
    this.errors++;
  }

  snapshot(windowS: number) {
    const now = Date.now();
    this.window = this.window.filter((w) => w.at >= now - windowS * 1000);
    const n = this.window.length;
    const perClass: Record<string, number> = {};
    for (const w of this.window) for (const c of w.classes) perClass[c] = (perClass[c] ?? 0) + 1;
    for (const c of Object.keys(perClass)) perClass[c] = +(perClass[c]! / n).toFixed(4);
    return {
      windowS,
      fps: +(n / windowS).toFixed(3),
      latencyMs: {
        p50: pct(
          this.window.map((w) => w.latencyMs),
          0.5,
        ),
        p95: pct(
          this.window.map((w) => w.latencyMs),
          0.95,
        ),
      },
      inferMs: {
        p50: pct(
          this.window.map((w) => w.inferMs),
          0.5,
        ),
        p95: pct(
          this.window.map((w) => w.inferMs),
          0.95,
        ),
      },
      defectRate: perClass,
      failRate: n ? +(this.window.filter((w) => w.fail).length / n).toFixed(4) : 0,
      processed: this.processed,
      failed: this.failed,
      errors: this.errors,
    };
  }
}

export function pct(xs: number[], q: number): number | null {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  return +s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))]!.toFixed(2);
}
