import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { migrate, schemaVersion, type SqliteSchema } from '../../lib/migrate.js';
import { openSqlite } from '../../lib/sqlite.js';

const dir = mkdtempSync(join(tmpdir(), 'loupe-migrate-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const v1 = { version: 1, description: 'notes', up: 'CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY, text TEXT NOT NULL);' };
const v2 = { version: 2, description: 'notes.author', up: "ALTER TABLE notes ADD COLUMN author TEXT NOT NULL DEFAULT '';" };
const v3 = {
  version: 3,
  description: 'authors from text',
  up: (db: Database.Database) => {
    db.prepare("UPDATE notes SET author = substr(text, 1, instr(text, ':') - 1) WHERE instr(text, ':') > 0").run();
  },
};
const schema = (...migrations: SqliteSchema['migrations']): SqliteSchema => ({ name: 'note store', migrations });

describe('lib/migrate: ordered forward migrations in PRAGMA user_version', () => {
  it('brings a new file to the latest version, in order, and does nothing the second time', () => {
    const p = join(dir, 'new.db');
    const db = openSqlite(p, schema(v1, v2, v3));
    expect(schemaVersion(db)).toBe(3);
    expect(
      db
        .prepare('SELECT name FROM pragma_table_info(?)')
        .all('notes')
        .map((r) => (r as { name: string }).name),
    ).toEqual(['id', 'text', 'author']);
    expect(migrate(db, schema(v1, v2, v3), p)).toEqual({ from: 3, to: 3 });
    db.close();
  });

  it('upgrades a file written by an older version, keeping its rows', () => {
    const p = join(dir, 'old.db');
    const old = openSqlite(p, schema(v1));
    old.prepare('INSERT INTO notes (text) VALUES (?), (?)').run('ann: first', 'no author');
    old.close();
    const db = openSqlite(p, schema(v1, v2, v3));
    expect(schemaVersion(db)).toBe(3);
    expect(db.prepare('SELECT text, author FROM notes ORDER BY id').all()).toEqual([
      { text: 'ann: first', author: 'ann' },
      { text: 'no author', author: '' },
    ]);
    db.close();
  });

  it('takes an unversioned file (user_version 0) whose tables already exist: migration 1 is the old schema, IF NOT EXISTS', () => {
    const p = join(dir, 'unversioned.db');
    const raw = new Database(p);
    raw.exec("CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT NOT NULL); INSERT INTO notes (text) VALUES ('bob: hi');");
    raw.close();
    const db = openSqlite(p, schema(v1, v2, v3));
    expect(schemaVersion(db)).toBe(3);
    expect(db.prepare('SELECT author FROM notes').get()).toEqual({ author: 'bob' });
    db.close();
  });

  it('refuses a file newer than the code, naming it, and leaves it untouched', () => {
    const p = join(dir, 'newer.db');
    openSqlite(p, schema(v1, v2, v3)).close();
    let err: unknown;
    try {
      openSqlite(p, schema(v1, v2));
    } catch (e) {
      err = e;
    }
    expect(err).toMatchObject({
      code: 'STORE_TOO_NEW',
      message: `${p}: note store has schema version 3, newer than this loupe knows (2); it was written by a later release: upgrade loupe to open it`,
    });
    const raw = new Database(p, { readonly: true });
    expect(schemaVersion(raw)).toBe(3);
    raw.close();
  });

  it('a failing migration rolls back whole: the file stays at the last good version', () => {
    const p = join(dir, 'failing.db');
    openSqlite(p, schema(v1)).close();
    const bad = {
      version: 2,
      description: 'half done',
      up: 'ALTER TABLE notes ADD COLUMN x TEXT; CREATE TABLE half (a); INSERT INTO nowhere VALUES (1);',
    };
    expect(() => openSqlite(p, schema(v1, bad))).toThrow(/note store: migration 2 \(half done\) failed: no such table: nowhere/);
    const raw = new Database(p, { readonly: true });
    expect(schemaVersion(raw)).toBe(1);
    expect(raw.prepare("SELECT name FROM sqlite_master WHERE name = 'half'").get()).toBeUndefined();
    expect(
      raw
        .prepare('SELECT name FROM pragma_table_info(?)')
        .all('notes')
        .map((r) => (r as { name: string }).name),
    ).toEqual(['id', 'text']);
    raw.close();
  });

  it('two connections opening one old file apply each migration once', () => {
    const p = join(dir, 'two.db');
    openSqlite(p, schema(v1)).close();
    const a = new Database(p);
    const b = new Database(p);
    const counting = {
      ...v2,
      up: (db: Database.Database) => db.exec(v2.up + ' CREATE TABLE IF NOT EXISTS ran (n); INSERT INTO ran VALUES (1);'),
    };
    migrate(a, schema(v1, counting), p);
    migrate(b, schema(v1, counting), p);
    expect(a.prepare('SELECT COUNT(*) AS n FROM ran').get()).toEqual({ n: 1 });
    a.close();
    b.close();
  });

  it('refuses a migration list with a gap (a programming error)', () => {
    const db = new Database(':memory:');
    expect(() => migrate(db, schema(v1, v3), ':memory:')).toThrow(/migration #1 has version 3, expected 2/);
    db.close();
  });
});
