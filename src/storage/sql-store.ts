/**
 * MetadataStore over Kysely, one implementation for SQLite and PostgreSQL. The only dialect differences are the
 * write transaction (SQLite: BEGIN IMMEDIATE, which takes the database write lock up front so a read-then-write
 * transaction never fails to upgrade; PostgreSQL: a row lock on the key with SELECT ... FOR UPDATE).
 */
import { type Kysely, type Selectable, sql } from "kysely";
import { EaselError } from "../core/errors.ts";
import type {
  Admission,
  AdmitResult,
  ImageRow,
  JobRow,
  JobStatus,
  KeyRecord,
  LedgerEntry,
  LedgerKind,
  MetadataStore,
  NewKey,
  Settlement,
  StoredResult,
} from "./metadata-store.ts";
import type { Database, SqlDialect } from "./sql-schema.ts";
import { createSqlWebhookOutbox, queueWebhookDelivery } from "./sql-webhook-outbox.ts";

const UNSETTLED: JobStatus[] = ["queued", "running"];
const WINDOW_MS = 60_000;

type KeyRowT = Selectable<Database["api_keys"]>;
type JobRowT = Selectable<Database["jobs"]>;

const num = (v: unknown): number => Number(v);
const numOrNull = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v));

function toKey(r: KeyRowT): KeyRecord {
  return {
    id: r.id,
    name: r.name,
    prefix: r.prefix,
    createdAt: num(r.created_at),
    revokedAt: numOrNull(r.revoked_at),
    metered: num(r.metered) === 1,
    rateLimitPerMinute: numOrNull(r.rate_limit_per_min),
    maxConcurrent: numOrNull(r.max_concurrent),
    webhookUrl: r.webhook_url ?? null,
  };
}

function toJob(r: JobRowT): JobRow {
  return {
    id: r.id,
    keyId: r.key_id,
    dialect: r.dialect,
    model: r.model,
    params: JSON.parse(r.params) as Record<string, unknown>,
    seed: numOrNull(r.seed),
    status: r.status as JobStatus,
    errorCode: r.error_code,
    errorMessage: r.error_message,
    creditsReserved: num(r.credits_reserved),
    creditsCharged: num(r.credits_charged),
    createdAt: num(r.created_at),
    startedAt: numOrNull(r.started_at),
    finishedAt: numOrNull(r.finished_at),
    imageIds: JSON.parse(r.image_ids) as string[],
    result: r.result === null ? null : (JSON.parse(r.result) as StoredResult),
    idempotencyKey: r.idempotency_key,
    owner: r.owner,
    progress: r.progress_step === null || r.progress_total === null ? null : { step: num(r.progress_step), totalSteps: num(r.progress_total) },
  };
}

function toImage(r: Selectable<Database["images"]>): ImageRow {
  return {
    id: r.id,
    mime: r.mime,
    format: r.format,
    width: num(r.width),
    height: num(r.height),
    size: num(r.size),
    createdAt: num(r.created_at),
  };
}

export function createSqlMetadataStore(db: Kysely<Database>, dialect: SqlDialect): MetadataStore {
  async function writeTx<T>(fn: (trx: Kysely<Database>) => Promise<T>): Promise<T> {
    if (dialect === "postgres") return db.transaction().execute(fn);
    return db.connection().execute(async (conn) => {
      await sql`begin immediate`.execute(conn);
      try {
        const out = await fn(conn);
        await sql`commit`.execute(conn);
        return out;
      } catch (e) {
        await sql`rollback`.execute(conn).catch(() => undefined);
        throw e;
      }
    });
  }

  /** Serialises writers of one key's balance (PostgreSQL; SQLite already holds the database write lock). */
  async function lockKey(trx: Kysely<Database>, keyId: string): Promise<KeyRowT | undefined> {
    let q = trx.selectFrom("api_keys").selectAll().where("id", "=", keyId);
    if (dialect === "postgres") q = q.forUpdate();
    return q.executeTakeFirst();
  }

  async function sumLedger(trx: Kysely<Database>, keyId: string): Promise<number> {
    const r = await trx
      .selectFrom("credit_ledger")
      .select((eb) => eb.fn.coalesce(eb.fn.sum<number>("amount"), sql<number>`0`).as("total"))
      .where("key_id", "=", keyId)
      .executeTakeFirstOrThrow();
    return num(r.total);
  }

  async function appendLedger(
    trx: Kysely<Database>,
    keyId: string,
    jobId: string | null,
    kind: LedgerKind,
    amount: number,
    note: string | null,
    at: number,
  ): Promise<void> {
    await trx
      .insertInto("credit_ledger")
      .values({ key_id: keyId, job_id: jobId, kind, amount, note, created_at: at })
      .execute();
  }

  async function admitLocked(trx: Kysely<Database>, a: Admission): Promise<AdmitResult> {
    const keyId = a.job.keyId;
    const key = keyId === null ? undefined : await lockKey(trx, keyId);
    if (keyId !== null && (!key || key.revoked_at !== null)) return { status: "key_revoked" };

    const scope = keyId ?? "";
    let supersede = false;
    if (a.idempotency) {
      const prior = await trx
        .selectFrom("idempotency_keys")
        .selectAll()
        .where("scope", "=", scope)
        .where("idem_key", "=", a.idempotency.key)
        .executeTakeFirst();
      if (prior) {
        if (prior.body_hash !== a.idempotency.bodyHash) return { status: "idempotency_conflict", jobId: prior.job_id };
        const job = await trx.selectFrom("jobs").selectAll().where("id", "=", prior.job_id).executeTakeFirst();
        if (job && (UNSETTLED.includes(job.status as JobStatus) || a.idempotency.replayable(toJob(job)))) {
          return { status: "replay", jobId: prior.job_id };
        }
        supersede = true;
      }
    }

    if (key) {
      const perMin = numOrNull(key.rate_limit_per_min) ?? a.defaultLimits?.requestsPerMinute ?? null;
      if (perMin !== null) {
        const recent = await trx
          .selectFrom("jobs")
          .select("created_at")
          .where("key_id", "=", key.id)
          .where("created_at", ">", a.now - WINDOW_MS)
          .orderBy("created_at", "asc")
          .execute();
        if (recent.length >= perMin) {
          // The window frees a slot when the oldest request that keeps it full turns a minute old.
          const freeing = num(recent[recent.length - perMin].created_at);
          return { status: "rate_limited", limit: "requests_per_minute", retryAfterMs: freeing + WINDOW_MS - a.now };
        }
      }
      const maxConc = numOrNull(key.max_concurrent) ?? a.defaultLimits?.maxConcurrent ?? null;
      if (maxConc !== null) {
        const r = await trx
          .selectFrom("jobs")
          .select((eb) => eb.fn.countAll<number>().as("n"))
          .where("key_id", "=", key.id)
          .where("status", "in", UNSETTLED)
          .executeTakeFirstOrThrow();
        if (num(r.n) >= maxConc) return { status: "rate_limited", limit: "concurrent_jobs", retryAfterMs: 1000 };
      }
    }

    const metered = key !== undefined && num(key.metered) === 1;
    let remaining: number | null = null;
    if (metered && key) {
      const balance = await sumLedger(trx, key.id);
      // A key with nothing left is refused even for a request priced at 0 (pricing never prices one so).
      if (balance < a.cost || balance <= 0) return { status: "insufficient_credits", balance, cost: a.cost };
      remaining = balance - a.cost;
    }
    await trx
      .insertInto("jobs")
      .values({
        id: a.job.id,
        key_id: keyId,
        dialect: a.job.dialect,
        model: a.job.model,
        params: JSON.stringify(a.job.params),
        seed: null,
        status: "queued",
        error_code: null,
        error_message: null,
        credits_reserved: metered ? a.cost : 0,
        credits_charged: 0,
        created_at: a.now,
        started_at: null,
        finished_at: null,
        image_ids: "[]",
        result: null,
        idempotency_key: a.idempotency?.key ?? null,
        owner: a.job.owner ?? null,
      })
      .execute();
    if (metered && key && a.cost > 0) await appendLedger(trx, key.id, a.job.id, "reserve", -a.cost, null, a.now);
    if (a.idempotency) {
      if (supersede) {
        await trx
          .updateTable("idempotency_keys")
          .set({ job_id: a.job.id, created_at: a.now })
          .where("scope", "=", scope)
          .where("idem_key", "=", a.idempotency.key)
          .execute();
      } else {
        await trx
          .insertInto("idempotency_keys")
          .values({
            scope,
            idem_key: a.idempotency.key,
            body_hash: a.idempotency.bodyHash,
            job_id: a.job.id,
            created_at: a.now,
          })
          .execute();
      }
    }
    return { status: "admitted", remaining };
  }

  return {
    driver: dialect,

    async createKey(k: NewKey) {
      return writeTx(async (trx) => {
        await trx
          .insertInto("api_keys")
          .values({
            id: k.id,
            name: k.name,
            key_hash: k.hash,
            prefix: k.prefix,
            created_at: k.createdAt,
            revoked_at: null,
            metered: k.metered ? 1 : 0,
            rate_limit_per_min: k.rateLimitPerMinute,
            max_concurrent: k.maxConcurrent,
          })
          .execute();
        if (k.metered && k.initialCredits > 0) {
          await appendLedger(trx, k.id, null, "grant", k.initialCredits, "initial credits", k.createdAt);
        }
        const { hash: _hash, initialCredits: _c, ...rest } = k;
        return { ...rest, revokedAt: null, webhookUrl: null };
      });
    },

    async getKey(id) {
      const r = await db.selectFrom("api_keys").selectAll().where("id", "=", id).executeTakeFirst();
      return r ? toKey(r) : undefined;
    },

    async findKeyByHash(hash) {
      const r = await db.selectFrom("api_keys").selectAll().where("key_hash", "=", hash).executeTakeFirst();
      return r ? { key: toKey(r), hash: r.key_hash } : undefined;
    },

    async listKeys() {
      const rows = await db.selectFrom("api_keys").selectAll().orderBy("created_at", "asc").orderBy("id").execute();
      return rows.map(toKey);
    },

    async countKeys() {
      const r = await db
        .selectFrom("api_keys")
        .select((eb) => eb.fn.countAll<number>().as("n"))
        .executeTakeFirstOrThrow();
      return num(r.n);
    },

    async revokeKey(id, at) {
      return writeTx(async (trx) => {
        await trx.updateTable("api_keys").set({ revoked_at: at }).where("id", "=", id).where("revoked_at", "is", null).execute();
        const r = await trx.selectFrom("api_keys").selectAll().where("id", "=", id).executeTakeFirst();
        return r ? toKey(r) : undefined;
      });
    },

    async setKeyWebhook(id, webhook) {
      await db
        .updateTable("api_keys")
        .set({ webhook_url: webhook?.url ?? null, webhook_secret: webhook?.secret ?? null })
        .where("id", "=", id)
        .execute();
      const r = await db.selectFrom("api_keys").selectAll().where("id", "=", id).executeTakeFirst();
      return r ? toKey(r) : undefined;
    },

    async addCredits(id, amount, note, at) {
      return writeTx(async (trx) => {
        const key = await lockKey(trx, id);
        if (!key) throw new EaselError("E_NOT_FOUND", `no API key with id ${id}`, { param: "id" });
        if (num(key.metered) !== 1) {
          throw new EaselError("E_INPUT_INVALID", `key ${id} has unlimited credits; create a key with --credits`, {
            param: "credits",
          });
        }
        const balance = await sumLedger(trx, id);
        if (balance + amount < 0) {
          throw new EaselError("E_INPUT_INVALID", `balance of key ${id} would become negative`, {
            param: "credits",
            details: { balance, amount },
          });
        }
        await appendLedger(trx, id, null, amount >= 0 ? "grant" : "charge", amount, note, at);
        return balance + amount;
      });
    },

    async balance(keyId) {
      const key = await db.selectFrom("api_keys").select("metered").where("id", "=", keyId).executeTakeFirst();
      if (!key || num(key.metered) !== 1) return null;
      return sumLedger(db, keyId);
    },

    async ledger(keyId) {
      const rows = await db.selectFrom("credit_ledger").selectAll().where("key_id", "=", keyId).orderBy("id").execute();
      return rows.map(
        (r): LedgerEntry => ({
          keyId: r.key_id,
          jobId: r.job_id,
          kind: r.kind as LedgerKind,
          amount: num(r.amount),
          note: r.note,
          createdAt: num(r.created_at),
        }),
      );
    },

    admitJob: (a) => writeTx((trx) => admitLocked(trx, a)),

    async getJob(id) {
      const r = await db.selectFrom("jobs").selectAll().where("id", "=", id).executeTakeFirst();
      return r ? toJob(r) : undefined;
    },

    async markJobRunning(id, at, owner) {
      const r = await db
        .updateTable("jobs")
        .set({ status: "running", started_at: at, ...(owner === undefined ? {} : { owner }) })
        .where("id", "=", id)
        .where("status", "=", "queued")
        .executeTakeFirst();
      return Number(r.numUpdatedRows) === 1;
    },

    async takeOverJob(id, owner) {
      const r = await db.updateTable("jobs").set({ owner }).where("id", "=", id).where("status", "=", "running").executeTakeFirst();
      return Number(r.numUpdatedRows) === 1;
    },

    async settleJob(s: Settlement) {
      return writeTx(async (trx) => {
        const job = await trx.selectFrom("jobs").selectAll().where("id", "=", s.jobId).executeTakeFirst();
        if (!job) return { settled: false, remaining: null };
        const key = job.key_id === null ? undefined : await lockKey(trx, job.key_id);
        const metered = key !== undefined && num(key.metered) === 1;
        const remainingNow = async () => (metered && key ? sumLedger(trx, key.id) : null);
        const charged = s.status === "succeeded" ? s.charged : 0;
        const upd = await trx
          .updateTable("jobs")
          .set({
            status: s.status,
            finished_at: s.at,
            credits_charged: metered ? charged : 0,
            seed: s.seed ?? job.seed,
            error_code: s.error?.code ?? null,
            error_message: s.error?.message ?? null,
            result: s.result ? JSON.stringify(s.result) : null,
            image_ids: JSON.stringify(s.result?.images.map((i) => i.id) ?? []),
          })
          .where("id", "=", s.jobId)
          .where("status", "in", UNSETTLED)
          .executeTakeFirst();
        if (Number(upd.numUpdatedRows) !== 1) return { settled: false, remaining: await remainingNow() };
        const reserved = num(job.credits_reserved);
        if (metered && key) {
          if (reserved > 0) await appendLedger(trx, key.id, s.jobId, "release", reserved, null, s.at);
          if (metered && charged > 0) await appendLedger(trx, key.id, s.jobId, "charge", -charged, null, s.at);
        }
        if (key?.webhook_url) {
          // The outbox row commits with the settlement, so the event survives any process dying after this.
          await queueWebhookDelivery(trx, s.jobId, key.id, s.at);
        }
        for (const img of s.images ?? []) {
          await trx
            .insertInto("images")
            .values({
              id: img.id,
              mime: img.mime,
              format: img.format,
              width: img.width,
              height: img.height,
              size: img.size,
              created_at: img.createdAt,
            })
            .onConflict((oc) => oc.column("id").doUpdateSet({ created_at: img.createdAt }))
            .execute();
        }
        return { settled: true, remaining: await remainingNow() };
      });
    },

    async setJobProgress(id, step, totalSteps) {
      await db.updateTable("jobs").set({ progress_step: step, progress_total: totalSteps }).where("id", "=", id).where("status", "=", "running").execute();
    },

    ...createSqlWebhookOutbox(db),

    async listUnsettledJobs() {
      const rows = await db.selectFrom("jobs").selectAll().where("status", "in", UNSETTLED).orderBy("created_at").execute();
      return rows.map(toJob);
    },

    async listJobs(q) {
      // Served by the jobs_key_created index (key_id, created_at), scanned backwards from the cursor: the cursor
      // is written as `created_at <= c AND (created_at < c OR id < i)` so that created_at bounds the index range
      // (PostgreSQL then sorts only jobs created in the same millisecond by id).
      let query = db.selectFrom("jobs").selectAll();
      query = q.keyId === null ? query.where("key_id", "is", null) : query.where("key_id", "=", q.keyId);
      const before = q.before;
      if (before) {
        query = query
          .where("created_at", "<=", before.createdAt)
          .where((eb) => eb.or([eb("created_at", "<", before.createdAt), eb("id", "<", before.id)]));
      }
      const rows = await query.orderBy("created_at", "desc").orderBy("id", "desc").limit(q.limit).execute();
      return rows.map(toJob);
    },

    async deleteJob(id) {
      return writeTx(async (trx) => {
        const row = await trx.selectFrom("jobs").select("image_ids").where("id", "=", id).executeTakeFirst();
        if (!row) return { deleted: false, orphanedImageIds: [] };
        await trx.deleteFrom("idempotency_keys").where("job_id", "=", id).execute();
        await trx.deleteFrom("jobs").where("id", "=", id).execute();
        // Images are content-addressed (sha256), so another job that made the same bytes shares the row. image_ids
        // is a JSON array of hex ids, so a quoted id matches only that id; the scan is over this store's jobs.
        const orphanedImageIds: string[] = [];
        for (const imageId of new Set(JSON.parse(row.image_ids) as string[])) {
          const other = await trx.selectFrom("jobs").select("id").where("image_ids", "like", `%"${imageId}"%`).limit(1).executeTakeFirst();
          if (!other) orphanedImageIds.push(imageId);
        }
        if (orphanedImageIds.length > 0) await trx.deleteFrom("images").where("id", "in", orphanedImageIds).execute();
        return { deleted: true, orphanedImageIds };
      });
    },

    async getImage(id) {
      const r = await db.selectFrom("images").selectAll().where("id", "=", id).executeTakeFirst();
      return r ? toImage(r) : undefined;
    },

    async listImagesBefore(before, limit) {
      const rows = await db
        .selectFrom("images")
        .selectAll()
        .where("created_at", "<", before)
        .orderBy("created_at")
        .limit(limit)
        .execute();
      return rows.map(toImage);
    },

    async deleteImages(ids) {
      if (ids.length === 0) return;
      await db.deleteFrom("images").where("id", "in", ids).execute();
    },

    async purgeIdempotency(before) {
      const r = await db.deleteFrom("idempotency_keys").where("created_at", "<", before).executeTakeFirst();
      return Number(r.numDeletedRows);
    },

    close: () => db.destroy(),
  };
}
