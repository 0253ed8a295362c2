/**
 * Table types and migrations of the SQL metadata store, shared by SQLite (better-sqlite3) and PostgreSQL (pg)
 * through Kysely. Migrations live in code (no files read at run time) and only ever get appended to.
 */
import { type Generated, type Kysely, type Migration, type MigrationProvider, Migrator, sql } from "kysely";
import { EaselError } from "../core/errors.ts";

export type SqlDialect = "sqlite" | "postgres";

export interface Database {
  api_keys: {
    id: string;
    name: string;
    key_hash: string;
    prefix: string;
    created_at: number;
    revoked_at: number | null;
    metered: number;
    rate_limit_per_min: number | null;
    max_concurrent: number | null;
    webhook_url: string | null;
    webhook_secret: string | null;
  };
  credit_ledger: {
    id: Generated<number>;
    key_id: string;
    job_id: string | null;
    kind: string;
    amount: number;
    note: string | null;
    created_at: number;
  };
  jobs: {
    id: string;
    key_id: string | null;
    dialect: string;
    model: string;
    params: string;
    seed: number | null;
    status: string;
    error_code: string | null;
    error_message: string | null;
    credits_reserved: number;
    credits_charged: number;
    created_at: number;
    started_at: number | null;
    finished_at: number | null;
    image_ids: string;
    result: string | null;
    idempotency_key: string | null;
    owner: string | null;
    progress_step: number | null;
    progress_total: number | null;
  };
  images: {
    id: string;
    mime: string;
    format: string;
    width: number;
    height: number;
    size: number;
    created_at: number;
  };
  /** The outbox of completion webhooks: one row per settled job of a key with a webhook, until delivered. */
  webhook_deliveries: {
    job_id: string;
    key_id: string;
    created_at: number;
    attempts: number;
    next_attempt_at: number;
    claimed_until: number;
    delivered_at: number | null;
    gave_up_at: number | null;
    last_error: string | null;
  };
  idempotency_keys: {
    scope: string;
    idem_key: string;
    body_hash: string;
    job_id: string;
    created_at: number;
  };
}

function migrations(dialect: SqlDialect): Record<string, Migration> {
  return {
    "001_initial": {
      async up(db: Kysely<unknown>) {
        await db.schema
          .createTable("api_keys")
          .addColumn("id", "text", (c) => c.primaryKey())
          .addColumn("name", "text", (c) => c.notNull())
          .addColumn("key_hash", "text", (c) => c.notNull().unique())
          .addColumn("prefix", "text", (c) => c.notNull())
          .addColumn("created_at", "bigint", (c) => c.notNull())
          .addColumn("revoked_at", "bigint")
          .addColumn("metered", "integer", (c) => c.notNull())
          .addColumn("rate_limit_per_min", "integer")
          .addColumn("max_concurrent", "integer")
          .execute();
        // Append-only: rows are inserted, never updated or deleted. The id orders entries.
        await db.schema
          .createTable("credit_ledger")
          .addColumn("id", dialect === "postgres" ? "bigserial" : "integer", (c) =>
            dialect === "postgres" ? c.primaryKey() : c.primaryKey().autoIncrement(),
          )
          .addColumn("key_id", "text", (c) => c.notNull().references("api_keys.id"))
          .addColumn("job_id", "text")
          .addColumn("kind", "text", (c) => c.notNull())
          .addColumn("amount", "bigint", (c) => c.notNull())
          .addColumn("note", "text")
          .addColumn("created_at", "bigint", (c) => c.notNull())
          .execute();
        await db.schema.createIndex("credit_ledger_key").on("credit_ledger").column("key_id").execute();
        await db.schema
          .createTable("jobs")
          .addColumn("id", "text", (c) => c.primaryKey())
          .addColumn("key_id", "text")
          .addColumn("dialect", "text", (c) => c.notNull())
          .addColumn("model", "text", (c) => c.notNull())
          .addColumn("params", "text", (c) => c.notNull())
          .addColumn("seed", "bigint")
          .addColumn("status", "text", (c) => c.notNull())
          .addColumn("error_code", "text")
          .addColumn("error_message", "text")
          .addColumn("credits_reserved", "bigint", (c) => c.notNull())
          .addColumn("credits_charged", "bigint", (c) => c.notNull())
          .addColumn("created_at", "bigint", (c) => c.notNull())
          .addColumn("started_at", "bigint")
          .addColumn("finished_at", "bigint")
          .addColumn("image_ids", "text", (c) => c.notNull())
          .addColumn("result", "text")
          .addColumn("idempotency_key", "text")
          .execute();
        await db.schema.createIndex("jobs_key_created").on("jobs").columns(["key_id", "created_at"]).execute();
        await db.schema.createIndex("jobs_status").on("jobs").column("status").execute();
        await db.schema
          .createTable("images")
          .addColumn("id", "text", (c) => c.primaryKey())
          .addColumn("mime", "text", (c) => c.notNull())
          .addColumn("format", "text", (c) => c.notNull())
          .addColumn("width", "integer", (c) => c.notNull())
          .addColumn("height", "integer", (c) => c.notNull())
          .addColumn("size", "bigint", (c) => c.notNull())
          .addColumn("created_at", "bigint", (c) => c.notNull())
          .execute();
        await db.schema.createIndex("images_created").on("images").column("created_at").execute();
        await db.schema
          .createTable("idempotency_keys")
          .addColumn("scope", "text", (c) => c.notNull())
          .addColumn("idem_key", "text", (c) => c.notNull())
          .addColumn("body_hash", "text", (c) => c.notNull())
          .addColumn("job_id", "text", (c) => c.notNull())
          .addColumn("created_at", "bigint", (c) => c.notNull())
          .addPrimaryKeyConstraint("idempotency_keys_pk", ["scope", "idem_key"])
          .execute();
      },
      async down(db: Kysely<unknown>) {
        for (const t of ["idempotency_keys", "images", "jobs", "credit_ledger", "api_keys"]) {
          await db.schema.dropTable(t).ifExists().execute();
        }
      },
    },
    // The server instance holding a job (crash recovery fails only jobs whose owner is gone).
    "002_job_owner": {
      async up(db: Kysely<unknown>) {
        await db.schema.alterTable("jobs").addColumn("owner", "text").execute();
      },
      async down(db: Kysely<unknown>) {
        await db.schema.alterTable("jobs").dropColumn("owner").execute();
      },
    },
    // Job progress readable from any node, and completion webhooks per key with their delivery outbox.
    "003_progress_webhooks": {
      async up(db: Kysely<unknown>) {
        await db.schema.alterTable("jobs").addColumn("progress_step", "integer").execute();
        await db.schema.alterTable("jobs").addColumn("progress_total", "integer").execute();
        await db.schema.alterTable("api_keys").addColumn("webhook_url", "text").execute();
        await db.schema.alterTable("api_keys").addColumn("webhook_secret", "text").execute();
        await db.schema
          .createTable("webhook_deliveries")
          .addColumn("job_id", "text", (c) => c.primaryKey())
          .addColumn("key_id", "text", (c) => c.notNull())
          .addColumn("created_at", "bigint", (c) => c.notNull())
          .addColumn("attempts", "integer", (c) => c.notNull())
          .addColumn("next_attempt_at", "bigint", (c) => c.notNull())
          .addColumn("claimed_until", "bigint", (c) => c.notNull())
          .addColumn("delivered_at", "bigint")
          .addColumn("gave_up_at", "bigint")
          .addColumn("last_error", "text")
          .execute();
        await db.schema.createIndex("webhook_deliveries_due").on("webhook_deliveries").columns(["delivered_at", "next_attempt_at"]).execute();
      },
      async down(db: Kysely<unknown>) {
        await db.schema.dropTable("webhook_deliveries").ifExists().execute();
        for (const c of ["webhook_secret", "webhook_url"]) await db.schema.alterTable("api_keys").dropColumn(c).execute();
        for (const c of ["progress_total", "progress_step"]) await db.schema.alterTable("jobs").dropColumn(c).execute();
      },
    },
  };
}

/** Brings the schema up to the latest migration; throws E_INTERNAL naming the migration that failed. */
export async function migrateToLatest(db: Kysely<Database>, dialect: SqlDialect, schema?: string): Promise<void> {
  const provider: MigrationProvider = { getMigrations: async () => migrations(dialect) };
  // The migration bookkeeping tables live beside the data (Kysely otherwise looks them up in any schema).
  const migrator = new Migrator({ db, provider, ...(schema ? { migrationTableSchema: schema } : {}) });
  const { error, results } = await migrator.migrateToLatest();
  if (error) {
    const failed = results?.find((r) => r.status === "Error")?.migrationName ?? "(unknown)";
    throw new EaselError("E_INTERNAL", `database migration ${failed} failed: ${(error as Error).message}`, {
      cause: error,
    });
  }
}

/** Names of the applied migrations, oldest first (for `easel` diagnostics and tests). */
export async function appliedMigrations(db: Kysely<Database>): Promise<string[]> {
  const rows = await sql<{ name: string }>`select name from kysely_migration order by name`.execute(db);
  return rows.rows.map((r) => r.name);
}
