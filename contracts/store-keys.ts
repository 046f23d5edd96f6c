import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { LoupeError } from '../lib/errors.js';

/**
 * The object store's key pair: one per installation, random, kept in `<dir>/credentials.json`
 * (mode 0600) beside the data it guards. This file is the one place the keys come from: the
 * store reads it at start, the local nucleus's TES hands the pair to components, `edge up`, the
 * demo and the loop's embedded storage config (`storage.keysFile`) read it, and
 * `loupe objectstore keys` prints it. `--access-key/--secret-key` (or the environment) replace
 * the pair in the file rather than living beside it.
 */
export interface StoreKeys {
  accessKeyId: string;
  secretAccessKey: string;
}

export const KEYS_FILE = 'credentials.json';

export const keysPath = (dir: string): string => join(dir, KEYS_FILE);

function validate(k: unknown, where: string): StoreKeys {
  const o = k as Partial<StoreKeys> | null;
  if (!o || typeof o.accessKeyId !== 'string' || typeof o.secretAccessKey !== 'string') {
    throw new LoupeError('objectstore.keys', 'expected {"accessKeyId": "...", "secretAccessKey": "..."}', { input: where });
  }
  checkKeys(o as StoreKeys, where);
  return { accessKeyId: o.accessKeyId!, secretAccessKey: o.secretAccessKey! };
}

/** Keys must be printable and not trivially short (an empty secret would sign anything). */
export function checkKeys(k: StoreKeys, where: string): void {
  if (!/^[A-Za-z0-9+/=._-]{3,128}$/.test(k.accessKeyId))
    throw new LoupeError('objectstore.keys', 'the access key id must be 3-128 of letters, digits and + / = . _ -', { input: where });
  if (k.secretAccessKey.length < 8 || /\s/.test(k.secretAccessKey))
    throw new LoupeError('objectstore.keys', 'the secret key must be at least 8 characters, without spaces', { input: where });
}

/** Read a key file (`<store dir>/credentials.json`); a clear error when it is missing or malformed. */
export function readKeysFile(path: string): StoreKeys {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new LoupeError(
      'objectstore.keys',
      `cannot read the object store's keys: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message} (start the store once to create them)`,
      { input: path, cause: e },
    );
  }
  try {
    return validate(JSON.parse(text), path);
  } catch (e) {
    if (e instanceof LoupeError) throw e;
    throw new LoupeError('objectstore.keys', `not JSON: ${(e as Error).message}`, { input: path });
  }
}
