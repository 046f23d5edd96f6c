import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { LoupeError } from './errors.js';
import { migrate, type SqliteSchema } from './migrate.js';

/**
 * A SQLite database as loupe's stores open it: folder created, WAL (readers never block the
 * loop's writer), a 10 s busy timeout for CLI commands beside a running loop, `synchronous =
 * FULL` where a commit must survive power loss (registry, fleet, loop state), and the schema
 * brought to its latest version (lib/migrate.ts).
 */
export function openSqlite(path: string, schema: SqliteSchema, opts: { durable?: boolean } = {}): Database.Database {
  if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
  let db: Database.Database;
  try {
    db = new Database(path);
  } catch (e) {
    throw new LoupeError('STORE_OPEN', `cannot open the ${schema.name} (${(e as Error).message})`, { input: path, cause: e });
  }
  try {
    db.pragma('journal_mode = WAL');
    if (opts.durable) db.pragma('synchronous = FULL');
    db.pragma('busy_timeout = 10000');
    migrate(db, schema, path);
  } catch (e) {
    db.close();
    throw e;
  }
  return db;
}
