import { defineConfig } from 'vitest/config';

// Two cores on the reference machine: real servers, model runs and child processes share them,
// so files run in at most two forks and timeouts are generous (speed targets live in benchmarks).
// The unit tier (`npm run test:unit`) runs three forks: its slowest files (the nucleus's) mostly
// wait on component processes, and a third fork fills that time (280 -> 181 s with the changes of
// issue 10, at load 2.6-5); it also gives each fuzz target 1 s instead of 3 (LOUPE_FUZZ_SECONDS),
// and does not isolate files (`--no-isolate`): a fork keeps its loaded modules from one file to the
// next, which saves most of the import time (71 -> 17 s summed; the tier 185 -> 144 s). The full
// suite, what CI runs, keeps every file in a fresh module state.
//
// The global setup makes a folder for the run that its files share: the CDK app is synthesised
// there once per configuration (test/helpers/synth-once.ts), not once per file.
//
// Tiers by file name: `*.full.test.ts` needs Python (the trainer venv, ultralytics cross-checks,
// the boto3 S3 conformance suite), a browser, real training, the real Greengrass nucleus, or
// starts whole stacks as processes (the edge stack, `loupe nucleus start` with components, the
// packaging build run on the nucleus); it runs only in the full suite (`npm test`). Every other
// `*.test.ts` is the unit tier too (`npm run test:unit`). A file with a few such cases among fast
// ones is split (test/edge/cli.test.ts keeps the option checks of cli.full.test.ts).
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 120_000,
    hookTimeout: 600_000,
    globalSetup: ['test/global-setup.ts'],
    coverage: {
      provider: 'v8',
      // The code under test as the test process runs it; code in child processes (CLI runs from
      // dist/, components on the nucleus) is not measured.
      include: ['cli/**/*.ts', 'lib/**/*.ts', 'contracts/**/*.ts', 'components/**/*.ts', 'cloud/**/*.ts', 'embedded/**/*.ts'],
      reporter: ['text-summary', 'json-summary', 'html'],
      reportsDirectory: 'coverage',
      // Figures even when a test fails (the run still fails): one flaky case must not cost the report.
      reportOnFailure: true,
    },
  },
});
