/**
 * Runs the metadata contract against PostgreSQL at 127.0.0.1:5432, database `test` (override with
 * EASEL_TEST_PG_URL), each store in its own fresh schema. Skips, saying why, when no server answers.
 */
import assert from "node:assert/strict";
import { after, test } from "node:test";
import pg from "pg";
import { openPostgresStore } from "../../src/storage/postgres.ts";
import { runMetadataStoreContract } from "./metadata-store.contract.ts";

const conn: pg.ClientConfig = process.env.EASEL_TEST_PG_URL
  ? { connectionString: process.env.EASEL_TEST_PG_URL }
  : { host: "127.0.0.1", port: 5432, database: "test", user: process.env.PGUSER ?? "postgres" };

async function reachable(): Promise<string | undefined> {
  const c = new pg.Client({ ...conn, connectionTimeoutMillis: 2000 });
  try {
    await c.connect();
    await c.query("select 1");
    return undefined;
  } catch (e) {
    return (e as Error).message;
  } finally {
    await c.end().catch(() => undefined);
  }
}

const why = await reachable();
if (why !== undefined) {
  test("postgres metadata store contract", { skip: `PostgreSQL not reachable at 127.0.0.1:5432/test: ${why}` }, () => {});
} else {
  const schemas: string[] = [];
  const run = `easel_contract_${process.pid}_${Date.now().toString(36)}`;
  after(async () => {
    const c = new pg.Client(conn);
    await c.connect();
    for (const s of schemas) await c.query(`drop schema if exists ${s} cascade`);
    await c.end();
  });
  runMetadataStoreContract("postgres", async () => {
    const schema = `${run}_${schemas.length}`;
    schemas.push(schema);
    return openPostgresStore({ ...conn, schema, max: 8 });
  });

  test("postgres: nodes starting at once on a new schema migrate it once and all open", async () => {
    const schema = `${run}_${schemas.length}`;
    schemas.push(schema);
    const stores = await Promise.all(Array.from({ length: 6 }, () => openPostgresStore({ ...conn, schema, max: 2 })));
    const c = new pg.Client(conn);
    await c.connect();
    try {
      const applied = await c.query(`select name from ${schema}.kysely_migration order by name`);
      assert.deepEqual(
        applied.rows.map((r) => r.name),
        ["001_initial", "002_job_owner", "003_progress_webhooks"],
      );
    } finally {
      await c.end();
    }
    for (const s of stores) assert.equal(s.driver, "postgres");
    await Promise.all(stores.map((s) => s.close()));
  });
}
