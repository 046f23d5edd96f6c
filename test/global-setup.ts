import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';

declare module 'vitest' {
  export interface ProvidedContext {
    /** A folder for this vitest run alone, shared by its test files (see test/helpers/synth-once.ts). */
    runDir: string;
  }
}

/**
 * Runs once before the suite: the folder where tests keep artefacts a person may open
 * (screenshots, plots), and a folder for this run that its test files share (removed after the
 * run, emptied before a watch-mode rerun, so nothing in it outlives the sources it was made from).
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  await mkdir(join(process.cwd(), 'test-artifacts'), { recursive: true });
  const runDir = await mkdtemp(join(tmpdir(), 'loupe-vitest-run-'));
  project.provide('runDir', runDir);
  project.onTestsRerun(async () => {
    await rm(runDir, { recursive: true, force: true });
    await mkdir(runDir, { recursive: true });
  });
  return async () => {
    await rm(runDir, { recursive: true, force: true });
  };
}
