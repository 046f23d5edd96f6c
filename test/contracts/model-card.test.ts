import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { projectRoot } from '../../lib/paths.js';
import { MODEL_CARD_SCHEMA_V1, readModelCard, writeModelCard } from '../../contracts/model-card.js';

describe('contracts/model-card: loupe.model-card/1, read and written through one schema', () => {
  let dir: string;
  const shipped = join(projectRoot, 'models', 'metal-tags', 'card.json');
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'loupe-card-'));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('reads the shipped card and writes it back unchanged', async () => {
    const card = await readModelCard(shipped);
    expect(card.schema).toBe(MODEL_CARD_SCHEMA_V1);
    const out = join(dir, 'card.json');
    await writeModelCard(out, card);
    expect(JSON.parse(await readFile(out, 'utf8'))).toEqual(JSON.parse(await readFile(shipped, 'utf8')));
  });

  it('refuses a version it does not read, or none, naming the file and the value', async () => {
    const raw = JSON.parse(await readFile(shipped, 'utf8')) as Record<string, unknown>;
    const v2 = join(dir, 'v2.json');
    await writeFile(v2, JSON.stringify({ ...raw, schema: 'loupe.model-card/2' }));
    await expect(readModelCard(v2)).rejects.toMatchObject({
      code: 'CARD_SCHEMA',
      message: `${v2}: model card schema "loupe.model-card/2" is not one this loupe reads (loupe.model-card/1)`,
    });
    const none = join(dir, 'none.json');
    const { schema: _s, ...rest } = raw;
    await writeFile(none, JSON.stringify(rest));
    await expect(readModelCard(none)).rejects.toMatchObject({
      code: 'CARD_BAD',
      message: `${none}: model card has no "schema" field (this loupe reads loupe.model-card/1)`,
    });
  });
});
