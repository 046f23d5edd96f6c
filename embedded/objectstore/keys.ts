import { randomBytes } from 'node:crypto';
import { chmod, link, mkdir, open, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { LoupeError } from '../../lib/errors.js';
import { fsyncDir } from '../../lib/fsutil.js';
import { checkKeys, keysPath, readKeysFile, type StoreKeys } from '../../contracts/store-keys.js';

export { KEYS_FILE, keysPath, checkKeys, readKeysFile, type StoreKeys } from '../../contracts/store-keys.js';

export const ENV_ACCESS_KEY = 'LOUPE_OBJECTSTORE_ACCESS_KEY_ID';
export const ENV_SECRET_KEY = 'LOUPE_OBJECTSTORE_SECRET_ACCESS_KEY';

const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

/** A fresh pair shaped like AWS's: a 20-character id (LOUPE + 15 random) and a 40-character secret. */
export function randomKeys(): StoreKeys {
  const id = [...randomBytes(15)].map((b) => BASE32[b & 31]).join('');
  return { accessKeyId: `LOUPE${id}`, secretAccessKey: randomBytes(30).toString('base64').replace(/\+/g, 'A').replace(/\//g, 'B') };
}

/** The pair from LOUPE_OBJECTSTORE_ACCESS_KEY_ID / LOUPE_OBJECTSTORE_SECRET_ACCESS_KEY, if both are set. */
export function keysFromEnv(env: NodeJS.ProcessEnv = process.env): StoreKeys | undefined {
  const a = env[ENV_ACCESS_KEY];
  const s = env[ENV_SECRET_KEY];
  if (!a && !s) return undefined;
  if (!a || !s)
    throw new LoupeError('objectstore.keys', `set both ${ENV_ACCESS_KEY} and ${ENV_SECRET_KEY}, or neither`, { input: 'environment' });
  const k = { accessKeyId: a, secretAccessKey: s };
  checkKeys(k, 'environment');
  return k;
}

/**
 * What the local nucleus's TES hands to components: the store's key pair, read from its key file
 * on each request (so replaced keys are picked up). The AWS SDK's container-credentials provider
 * insists on a session token, as real TES credentials carry one; the store does not use it (a
 * request's authority is its SigV4 signature with the secret), so it is a fixed marker.
 */
export function tesCredentials(keysFile: string): StoreKeys & { sessionToken: string } {
  return { ...readKeysFile(keysFile), sessionToken: 'loupe-objectstore-no-session' };
}

async function writeKeys(path: string, k: StoreKeys, replace: boolean): Promise<boolean> {
  const tmp = `${path}.${randomBytes(6).toString('hex')}.tmp`;
  const fh = await open(tmp, 'wx', 0o600);
  try {
    await fh.writeFile(JSON.stringify({ ...k, created: new Date().toISOString() }, null, 2) + '\n');
    await fh.sync();
  } finally {
    await fh.close();
  }
  try {
    if (replace) await rename(tmp, path);
    else {
      // link() fails when the file exists: two stores starting at once keep one pair.
      try {
        await link(tmp, path);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
        throw e;
      }
    }
  } finally {
    await rm(tmp, { force: true });
  }
  await fsyncDir(join(path, '..'));
  return true;
}

/**
 * The store's keys: `given` (flags or environment) replace the file's pair; otherwise the file's
 * pair, created at random on first use. The file is kept at 0600.
 */
export async function loadOrCreateKeys(dir: string, given?: StoreKeys): Promise<StoreKeys> {
  await mkdir(dir, { recursive: true });
  const path = keysPath(dir);
  if (given) {
    checkKeys(given, 'keys');
    let same = false;
    try {
      const cur = readKeysFile(path);
      same = cur.accessKeyId === given.accessKeyId && cur.secretAccessKey === given.secretAccessKey;
    } catch {
      // absent or unreadable: written below
    }
    if (!same) await writeKeys(path, given, true);
  } else {
    await writeKeys(path, randomKeys(), false);
  }
  const st = await stat(path);
  if ((st.mode & 0o077) !== 0) await chmod(path, 0o600);
  return readKeysFile(path);
}
