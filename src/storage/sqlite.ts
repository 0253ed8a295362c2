/** The embedded metadata store: one SQLite file in WAL mode, opened with better-sqlite3 through Kysely. */
import { chmodSync, closeSync, existsSync, mkdirSync, openSync, statSync } from "node:fs";
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
 * The database holds key hashes, the ledger and every prompt: readable by its owner only. SQLite creates the -wal
 * and -shm files with the database file's permissions, so creating that file 0600 first covers all three; files
 * left by an earlier version with wider permissions are narrowed.
 */
function ownerOnly(file: string): void {
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  closeSync(openSync(file, "a", 0o600));
  for (const f of [file, `${file}-wal`, `${file}-shm`]) {
    if (existsSync(f) && (statSync(f).mode & 0o077) !== 0) chmodSync(f, 0o600);
  }
}

/**
 * Opens (creating if needed, mode 0600) the SQLite file and migrates it. WAL journal + synchronous=FULL: every
 * committed transaction survives kill -9 and power loss, and readers never block the writer.
 */
export async function openSqliteStore(file: string, opts: SqliteStoreOptions = {}): Promise<MetadataStore> {
  if (file !== ":memory:") ownerOnly(file);
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
