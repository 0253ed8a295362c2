/**
 * The job service's housekeeping: failing the jobs nobody will settle any more (crash recovery, per lease over a shared
 * queue) and deleting what is past its retention (images, orphaned blobs, idempotency records).
 */
import type { Config } from "../config/index.ts";
import type { JobQueue } from "../queue/queue.ts";
import type { BlobStore } from "../storage/blob-store.ts";
import type { MetadataStore } from "../storage/metadata-store.ts";

/** Idempotency records are kept this long (then the same key starts a new request). */
export const IDEMPOTENCY_TTL_MS = 24 * 3600 * 1000;
/**
 * A shared queue's job younger than this is never taken for lost: the node that recorded it may not have queued it
 * yet.
 */
export const LOST_JOB_GRACE_MS = 60_000;

export interface RecoveryDeps {
  store: MetadataStore;
  queue: JobQueue<unknown>;
  now: () => number;
  instanceId: string;
  ownerAlive: (owner: string) => boolean;
  /** Jobs this process admitted and still waits on (never failed here). */
  isPending: (jobId: string) => boolean;
}

/**
 * Fails the unsettled jobs whose owner is gone, releasing their reservations. Over a shared queue (one with `has`) a
 * job is kept while the queue holds it or for LOST_JOB_GRACE_MS after it was recorded, whoever its owner.
 */
export async function recoverCrashedJobs(d: RecoveryDeps): Promise<{ failed: string[]; kept: string[] }> {
  const { store, queue, now } = d;
  const failed: string[] = [];
  const kept: string[] = [];
  for (const job of await store.listUnsettledJobs()) {
    if (d.isPending(job.id)) continue;
    if (queue.has) {
      // A shared queue: the job is alive while the queue holds it (a dead worker's job is handed out again when
      // its lease runs out), whoever recorded it.
      if (now() - job.createdAt < LOST_JOB_GRACE_MS || (await queue.has(job.id, job.model))) {
        kept.push(job.id);
        continue;
      }
    } else if (job.owner !== null && job.owner !== d.instanceId && d.ownerAlive(job.owner)) {
      kept.push(job.id);
      continue;
    }
    const r = await store.settleJob({
      jobId: job.id,
      status: "failed",
      at: now(),
      charged: 0,
      error: { code: "E_INTERNAL", message: "The server stopped while this job was running." },
    });
    if (r.settled) failed.push(job.id);
  }
  return { failed, kept };
}

/** Deletes images (blobs and rows) older than images.retentionDays and expired idempotency records. */
export async function runRetention(d: { store: MetadataStore; blobs: BlobStore; config: Config; now: () => number }): Promise<{
  images: number;
  orphans: number;
  idempotency: number;
}> {
  const { store, blobs, config, now } = d;
  const out = { images: 0, orphans: 0, idempotency: await store.purgeIdempotency(now() - IDEMPOTENCY_TTL_MS) };
  if (config.images.retentionDays <= 0) return out;
  const cutoff = now() - config.images.retentionDays * 86_400_000;
  for (;;) {
    const batch = await store.listImagesBefore(cutoff, 200);
    if (batch.length === 0) break;
    // Blobs first: a crash in between leaves rows whose bytes are gone (openImage answers 404), never orphans.
    for (const r of batch) await blobs.delete(r.id);
    await store.deleteImages(batch.map((r) => r.id));
    out.images += batch.length;
  }
  // Blobs whose row never got written (a crash between put and settle).
  for await (const b of blobs.list()) {
    if (b.modifiedAt < cutoff && !(await store.getImage(b.key))) {
      await blobs.delete(b.key);
      out.orphans++;
    }
  }
  return out;
}
