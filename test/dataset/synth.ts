import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import sharp from 'sharp';
import { afterAll } from 'vitest';

const made: string[] = [];
// Each test file that uses tempDir removes its folders when it is done (shared machine, small /tmp).
afterAll(async () => {
  for (const d of made.splice(0)) await rm(d, { recursive: true, force: true });
});

/** A fresh temp folder for one test, removed after the test file. */
export async function tempDir(prefix = 'lds-'): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), prefix));
  made.push(d);
  return d;
}

/** Write a real JPEG (a grey gradient) of the given size. */
export async function writeJpeg(path: string, width: number, height: number): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const px = Buffer.alloc(width * height * 3);
  for (let i = 0; i < width * height; i++) px.fill((i * 7) % 256, i * 3, i * 3 + 3);
  await sharp(px, { raw: { width, height, channels: 3 } })
    .jpeg()
    .toFile(path);
}

/** Entries of a folder (to show nothing was left behind), hidden temp folders included. */
export async function entries(dir: string): Promise<string[]> {
  return (await readdir(dir)).sort();
}

export async function writeText(path: string, text: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, text);
}

/** A Pascal VOC annotation file. */
export function vocXml(
  file: string,
  width: number,
  height: number,
  objects: { name: string; box: [number, number, number, number]; difficult?: boolean }[],
): string {
  const objs = objects
    .map(
      (o) =>
        `<object><name>${o.name}</name><difficult>${o.difficult ? 1 : 0}</difficult><bndbox><xmin>${o.box[0]}</xmin><ymin>${o.box[1]}</ymin><xmax>${o.box[2]}</xmax><ymax>${o.box[3]}</ymax></bndbox></object>`,
    )
    .join('');
  return `<annotation><filename>${file}</filename><size><width>${width}</width><height>${height}</height><depth>3</depth></size>${objs}</annotation>`;
}
