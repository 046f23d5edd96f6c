import { defineConfig } from 'vitest/config';

// Two cores on the reference machine: real servers, model runs and child processes share them,
// so files run in at most two forks and timeouts are generous (speed targets live in benchmarks).
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 120_000,
    hookTimeout: 600_000,
    globalSetup: ['test/global-setup.ts'],
  },
});
