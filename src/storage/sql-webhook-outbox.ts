/**
 * The completion-webhook outbox of the SQL metadata store: settleJob queues a row in its own transaction
 * (queueWebhookDelivery); every node claims due rows one at a time and records the outcome.
 */
import { type Kysely, sql } from "kysely";
import type { MetadataStore } from "./metadata-store.ts";
import type { Database } from "./sql-schema.ts";

const num = (v: unknown): number => Number(v);

/** Inside the settling transaction: the event commits with the settlement, so it survives any process dying after. */
export async function queueWebhookDelivery(trx: Kysely<Database>, jobId: string, keyId: string, at: number): Promise<void> {
  await trx
    .insertInto("webhook_deliveries")
    .values({
      job_id: jobId,
      key_id: keyId,
      created_at: at,
      attempts: 0,
      next_attempt_at: at,
      claimed_until: 0,
      delivered_at: null,
      gave_up_at: null,
      last_error: null,
    })
    .onConflict((oc) => oc.column("job_id").doNothing())
    .execute();
}

export function createSqlWebhookOutbox(db: Kysely<Database>): Pick<MetadataStore, "claimWebhookDelivery" | "finishWebhookDelivery"> {
  return {
    async claimWebhookDelivery(now, leaseMs) {
      for (let tries = 0; tries < 3; tries++) {
        const due = await db
          .selectFrom("webhook_deliveries")
          .select(["job_id", "claimed_until"])
          .where("delivered_at", "is", null)
          .where("gave_up_at", "is", null)
          .where("next_attempt_at", "<=", now)
          .where("claimed_until", "<=", now)
          .orderBy("next_attempt_at")
          .limit(1)
          .executeTakeFirst();
        if (!due) return undefined;
        // Compare-and-set on claimed_until: of several processes that saw the row due, exactly one claims it.
        const upd = await db
          .updateTable("webhook_deliveries")
          .set({ claimed_until: now + leaseMs })
          .where("job_id", "=", due.job_id)
          .where("claimed_until", "=", due.claimed_until)
          .where("delivered_at", "is", null)
          .executeTakeFirst();
        if (Number(upd.numUpdatedRows) !== 1) continue;
        const r = await db
          .selectFrom("webhook_deliveries as d")
          .leftJoin("api_keys as k", "k.id", "d.key_id")
          .select(["d.job_id", "d.key_id", "d.attempts", "d.created_at", "k.webhook_url", "k.webhook_secret"])
          .where("d.job_id", "=", due.job_id)
          .executeTakeFirstOrThrow();
        return {
          jobId: r.job_id,
          keyId: r.key_id,
          attempts: num(r.attempts),
          createdAt: num(r.created_at),
          url: r.webhook_url ?? null,
          secret: r.webhook_secret ?? null,
        };
      }
      return undefined;
    },

    async finishWebhookDelivery(jobId, outcome) {
      const set =
        "deliveredAt" in outcome
          ? { delivered_at: outcome.deliveredAt, claimed_until: 0, attempts: sql<number>`attempts + 1` }
          : outcome.retryAt === null
            ? // Given up: kept for the record, never due again.
              { gave_up_at: outcome.at, claimed_until: 0, last_error: outcome.error.slice(0, 500), attempts: sql<number>`attempts + 1` }
            : { next_attempt_at: outcome.retryAt, claimed_until: 0, last_error: outcome.error.slice(0, 500), attempts: sql<number>`attempts + 1` };
      await db.updateTable("webhook_deliveries").set(set).where("job_id", "=", jobId).execute();
    },
  };
}
