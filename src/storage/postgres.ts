/** The scaled-out metadata store: PostgreSQL through pg + Kysely, same queries as SQLite. */
import { Kysely, PostgresDialect } from "kysely";
import pg from "pg";
import type { MetadataStore } from "./metadata-store.ts";
import { type Database, migrateToLatest } from "./sql-schema.ts";
import { createSqlMetadataStore } from "./sql-store.ts";

export interface PostgresStoreOptions extends pg.PoolConfig {
  /** Schema to create (if missing) and use through search_path; default the server's default. */
  schema?: string;
}

// int8 (bigint) and numeric (sum) arrive as strings by default; every value Easel keeps fits a double exactly.
const INT8 = 20;
const NUMERIC = 1700;
const types = {
  getTypeParser: ((oid: number, format?: "text" | "binary") =>
    oid === INT8 || oid === NUMERIC ? (v: string) => Number(v) : pg.types.getTypeParser(oid, format as "text")) as typeof pg.types.getTypeParser,
};

/** Key of the session advisory lock held around migrations (any int8; "easel" + a digit in ASCII). */
const MIGRATION_LOCK_KEY = 0x656173656c31n;

/**
 * Opens the store, creating `schema` and migrating to the latest version first. Several nodes may start at once:
 * one PostgreSQL session advisory lock serialises them, so the first migrates and the others find the work done
 * (Kysely's own migration lock does not cover creating the schema and its bookkeeping tables, which race).
 */
export async function openPostgresStore(opts: PostgresStoreOptions): Promise<MetadataStore> {
  const { schema, ...poolOpts } = opts;
  if (schema !== undefined && !/^[a-z_][a-z0-9_]*$/.test(schema)) {
    throw new Error(`invalid PostgreSQL schema name ${JSON.stringify(schema)}`);
  }
  const lock = new pg.Client(poolOpts);
  await lock.connect();
  const pool = new pg.Pool({
    ...poolOpts,
    types,
    ...(schema ? { options: `-c search_path=${schema}` } : {}),
  });
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  try {
    await lock.query("select pg_advisory_lock($1)", [MIGRATION_LOCK_KEY.toString()]);
    if (schema) await lock.query(`create schema if not exists ${schema}`);
    await migrateToLatest(db, "postgres", schema);
  } catch (e) {
    await db.destroy();
    throw e;
  } finally {
    // Ending the session drops the lock too; unlock first so the next node need not wait for the socket to close.
    await lock.query("select pg_advisory_unlock($1)", [MIGRATION_LOCK_KEY.toString()]).catch(() => undefined);
    await lock.end().catch(() => undefined);
  }
  return createSqlMetadataStore(db, "postgres");
}
