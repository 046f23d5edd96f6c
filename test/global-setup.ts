import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';

/** Runs once before the suite: the folder where tests keep artefacts a person may open (screenshots, plots). */
export default async function setup(): Promise<void> {
  await mkdir(join(process.cwd(), 'test-artifacts'), { recursive: true });
}
