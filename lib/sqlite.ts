import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';

/**
 * A cloud-side SQLite database as loupe's stores open it: folder created, WAL (readers never
 * block the loop's writer), a 10 s busy timeout for CLI commands beside a running loop, and
 * `synchronous = FULL` where a commit must survive power loss (registry, fleet, loop state).
 */
export function openSqlite(path: string, schema: string, opts: { durable?: boolean } = {}): Database.Database {
  mkdirSync(dirname(path), { recursive: true });
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  if (opts.durable) db.pragma('synchronous = FULL');
  db.pragma('busy_timeout = 10000');
  db.exec(schema);
  return db;
}
