import { existsSync, readFileSync } from 'node:fs';
import { LoupeError } from '../../lib/errors.js';

/**
 * A list of image ids (a source_ref's last two path parts, `bad/x.jpg`, as data set imports and
 * model cards name images) read from a file: a model card JSON (its `dataset.testImages`, the
 * images a model was scored on) or a text file with one id per line (`#` starts a comment).
 * Used to keep a held-out benchmark set out of a label history (`loupe labels import --exclude`,
 * loop config `history.exclude`).
 */
export function readImageIds(file: string): string[] {
  if (!existsSync(file)) throw new LoupeError('IDS_MISSING', 'image id list not found', { input: file });
  const text = readFileSync(file, 'utf8');
  if (/^\s*\{/.test(text)) {
    let card: { dataset?: { testImages?: unknown } };
    try {
      card = JSON.parse(text) as typeof card;
    } catch (e) {
      throw new LoupeError('IDS_BAD', `not valid JSON (${(e as Error).message})`, { input: file });
    }
    const ids = card.dataset?.testImages;
    if (!Array.isArray(ids) || !ids.every((i) => typeof i === 'string')) {
      throw new LoupeError('IDS_BAD', 'a JSON id list must be a model card with dataset.testImages (a list of image ids)', { input: file });
    }
    return checked(ids as string[], file);
  }
  const ids = text
    .split(/\r?\n/)
    .map((l) => l.replace(/#.*$/, '').trim())
    .filter(Boolean);
  return checked(ids, file);
}

function checked(ids: string[], file: string): string[] {
  for (const [i, id] of ids.entries()) {
    if (id.startsWith('/') || id.split('/').some((p) => p === '..' || p === '')) {
      throw new LoupeError('IDS_BAD', `entry ${i + 1} (${JSON.stringify(id)}) is not an image id such as bad/x.jpg`, { input: file });
    }
  }
  return ids;
}
