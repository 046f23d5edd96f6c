#!/usr/bin/env node
// Thin launcher: the CLI is TypeScript compiled to dist/ by `npm run build`.
import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { dirname, join } from 'node:path';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const entry = join(root, 'dist', 'cli', 'loupe.js');
if (!existsSync(entry)) {
  process.stderr.write(`loupe: ${entry} is missing; run \`npm run build\` in ${root} first\n`);
  process.exit(2);
}
await import(pathToFileURL(entry).href);
