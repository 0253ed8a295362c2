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

export async function openPostgresStore(opts: PostgresStoreOptions): Promise<MetadataStore> {
  const { schema, ...poolOpts } = opts;
  if (schema !== undefined && !/^[a-z_][a-z0-9_]*$/.test(schema)) {
    throw new Error(`invalid PostgreSQL schema name ${JSON.stringify(schema)}`);
  }
  if (schema) {
    const c = new pg.Client(poolOpts);
    await c.connect();
    try {
      await c.query(`create schema if not exists ${schema}`);
    } finally {
      await c.end();
    }
  }
  const pool = new pg.Pool({
    ...poolOpts,
    types,
    ...(schema ? { options: `-c search_path=${schema}` } : {}),
  });
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  try {
    await migrateToLatest(db, "postgres", schema);
  } catch (e) {
    await db.destroy();
    throw e;
  }
  return createSqlMetadataStore(db, "postgres");
}
