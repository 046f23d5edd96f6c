import { createWriteStream } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import yazl from 'yazl';

/**
 * Deterministic ZIP artefacts: entries sorted by name, one fixed timestamp, modes given
 * explicitly, so the same inputs give the same bytes and the same digest in the recipe.
 * (Greengrass's unarchiver ignores the modes and applies the recipe's Permission; unzip and
 * loupe's local nucleus keep them.)
 */
export interface ZipEntry {
  /** path inside the ZIP, `/`-separated */
  name: string;
  /** a file to copy in, or the bytes */
  file?: string;
  data?: Buffer;
  mode?: number;
}

const ZIP_TIME = new Date('2020-01-01T00:00:00Z');

export async function writeZip(path: string, entries: ZipEntry[]): Promise<void> {
  const zip = new yazl.ZipFile();
  for (const e of [...entries].sort((a, b) => (a.name < b.name ? -1 : 1))) {
    if (e.data) zip.addBuffer(e.data, e.name, { mtime: ZIP_TIME, mode: e.mode ?? 0o100644 });
    else zip.addFile(e.file!, e.name, { mtime: ZIP_TIME, mode: e.mode ?? 0o100644 });
  }
  zip.end();
  await mkdir(dirname(path), { recursive: true });
  await new Promise<void>((res, rej) => {
    const ws = createWriteStream(path);
    ws.on('close', () => res());
    ws.on('error', rej);
    zip.outputStream.on('error', rej).pipe(ws);
  });
}
