import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { promisify } from 'node:util';
import type { Logger } from 'pino';
import { LoupeError } from '../../lib/errors.js';
import { cacheDir } from '../../lib/paths.js';

const run = promisify(execFile);

async function integrityOf(path: string): Promise<string> {
  const h = createHash('sha512');
  for await (const c of createReadStream(path)) h.update(c as Buffer);
  return `sha512-${h.digest('base64')}`;
}

/**
 * A package from the npm registry that this machine has not installed (another platform's
 * native package, the Node.js binaries), unpacked into loupe's cache with `npm pack`, the npm
 * client's own way to fetch a tarball (it checks the registry's integrity hash). With
 * `integrity` the tarball must also match that pinned hash, so a build never takes different
 * bytes than the ones reviewed. Returns the unpacked package folder.
 */
export async function fetchPackage(name: string, version: string, log: Logger, integrity?: string): Promise<string> {
  const dir = join(cacheDir(), 'npm-platform', `${name.replace('/', '+')}@${version}`);
  const marker = join(dir, 'integrity');
  if (existsSync(join(dir, 'package', 'package.json'))) {
    // A pinned package is taken from the cache only if it was checked against the same pin.
    if (!integrity || (existsSync(marker) && (await readFile(marker, 'utf8')) === integrity)) return join(dir, 'package');
    await rm(dir, { recursive: true, force: true });
  }
  await mkdir(dir, { recursive: true });
  log.info({ package: `${name}@${version}` }, 'fetching a package with npm pack');
  try {
    const { stdout } = await run('npm', ['pack', `${name}@${version}`, '--pack-destination', dir, '--json', '--silent'], {
      maxBuffer: 64 * 1024 * 1024,
    });
    const tgz = join(dir, basename((JSON.parse(stdout) as { filename: string }[])[0]!.filename));
    if (integrity) {
      const got = await integrityOf(tgz);
      if (got !== integrity) throw new Error(`integrity mismatch: pinned ${integrity}, the registry served ${got}`);
    }
    await run('tar', ['-xzf', tgz, '-C', dir]);
    await rm(tgz, { force: true });
    if (integrity) await writeFile(marker, integrity);
  } catch (e) {
    await rm(dir, { recursive: true, force: true });
    throw new LoupeError('build.fetch', `cannot fetch it from the npm registry: ${(e as Error).message}`, { input: `${name}@${version}` });
  }
  return join(dir, 'package');
}
