import type Database from 'better-sqlite3';
import { LoupeError } from './errors.js';

/**
 * Versioned SQLite schemas: each database file kind has one ordered list of forward
 * migrations, and the file records how far it got in `PRAGMA user_version` (0 = written before
 * loupe versioned its stores, or new). Opening a file applies the missing migrations in order,
 * each in its own IMMEDIATE transaction together with the version bump, so a crash leaves the
 * file at the last whole step and two processes opening it at once never apply a step twice.
 * A file newer than the code is refused: an older loupe must not write to a schema it does not
 * know.
 *
 * Written here rather than taken from a library: the npm migration runners either want their
 * own bookkeeping table and file layout (umzug, knex, postgrator) or bring an ORM; loupe needs
 * ~40 lines over better-sqlite3's synchronous transactions and SQLite's own version field.
 * Migration 1 of every list is the schema as the previous, unversioned release created it, with
 * `IF NOT EXISTS` throughout, so it is safe on a file that release wrote.
 */
export interface Migration {
  /** 1, 2, 3, ... in order, no gaps. */
  version: number;
  description: string;
  up: string | ((db: Database.Database) => void);
}

export interface SqliteSchema {
  /** What the file is, for messages: "loop store", "label store", ... */
  name: string;
  migrations: readonly Migration[];
}

/**
 * For a migration that adds a column: files written by builds between two releases may have it
 * already (they added it in place before the store was versioned).
 */
export function addColumnIfMissing(db: Database.Database, table: string, column: string, decl: string): void {
  const cols = db.prepare(`SELECT name FROM pragma_table_info(?)`).all(table) as { name: string }[];
  if (!cols.some((c) => c.name === column)) db.exec(`ALTER TABLE ${table} ADD COLUMN ${column} ${decl}`);
}

export function schemaVersion(db: Database.Database): number {
  return db.pragma('user_version', { simple: true }) as number;
}

export function latestVersion(schema: SqliteSchema): number {
  return schema.migrations.length;
}

/** Bring `db` to the schema's latest version. `input` names the file in errors. */
export function migrate(db: Database.Database, schema: SqliteSchema, input: string): { from: number; to: number } {
  schema.migrations.forEach((m, i) => {
    if (m.version !== i + 1) throw new Error(`${schema.name}: migration #${i} has version ${m.version}, expected ${i + 1}`);
  });
  const latest = latestVersion(schema);
  const from = schemaVersion(db);
  if (from > latest) {
    throw new LoupeError(
      'STORE_TOO_NEW',
      `${schema.name} has schema version ${from}, newer than this loupe knows (${latest}); it was written by a later release: upgrade loupe to open it`,
      { input },
    );
  }
  for (const m of schema.migrations) {
    if (m.version <= from) continue;
    db.transaction(() => {
      // Re-read inside the write lock: another process may have applied it meanwhile.
      if (schemaVersion(db) >= m.version) return;
      try {
        if (typeof m.up === 'string') db.exec(m.up);
        else m.up(db);
      } catch (e) {
        throw new LoupeError(
          'STORE_MIGRATION',
          `${schema.name}: migration ${m.version} (${m.description}) failed: ${(e as Error).message}`,
          { input, cause: e },
        );
      }
      db.pragma(`user_version = ${m.version}`);
    }).immediate();
  }
  return { from, to: schemaVersion(db) };
}
