/** The embedded metadata store: one SQLite file in WAL mode, opened with better-sqlite3 through Kysely. */
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import SqliteDatabase from "better-sqlite3";
import { Kysely, SqliteDialect } from "kysely";
import type { MetadataStore } from "./metadata-store.ts";
import { type Database, migrateToLatest } from "./sql-schema.ts";
import { createSqlMetadataStore } from "./sql-store.ts";

export interface SqliteStoreOptions {
  /** How long a writer waits for another process's write lock (the CLI and the server share the file). */
  busyTimeoutMs?: number;
}

/**
 * Opens (creating if needed) the SQLite file and migrates it. WAL journal + synchronous=FULL: every committed
 * transaction survives kill -9 and power loss, and readers never block the writer.
 */
export async function openSqliteStore(file: string, opts: SqliteStoreOptions = {}): Promise<MetadataStore> {
  if (file !== ":memory:") mkdirSync(dirname(file), { recursive: true });
  const sqlite = new SqliteDatabase(file);
  sqlite.pragma("journal_mode = WAL");
  sqlite.pragma("synchronous = FULL");
  sqlite.pragma("foreign_keys = ON");
  sqlite.pragma(`busy_timeout = ${Math.max(0, Math.floor(opts.busyTimeoutMs ?? 10_000))}`);
  const db = new Kysely<Database>({ dialect: new SqliteDialect({ database: sqlite }) });
  try {
    await migrateToLatest(db, "sqlite");
  } catch (e) {
    await db.destroy();
    throw e;
  }
  return createSqlMetadataStore(db, "sqlite");
}
