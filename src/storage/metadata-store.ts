/**
 * The metadata store contract: API keys, the append-only credits ledger, job records, image rows and idempotency
 * records. Every driver (SQLite now, PostgreSQL when scaled out) implements it and runs
 * test/contracts/metadata-store.contract.ts.
 *
 * Credits are integers in thousandths of a credit ("millicredits", CREDIT_SCALE) so that ledger sums never drift.
 * Times are milliseconds since the epoch.
 */
import type { RouteRecord, Warning } from "../core/types.ts";

/** One credit is 1000 millicredits: prices are rounded to 0.001 credit. */
export const CREDIT_SCALE = 1000;

export interface KeyRecord {
  id: string;
  name: string;
  /** The first characters of the secret, for recognising a key in listings; never enough to use it. */
  prefix: string;
  createdAt: number;
  revokedAt: number | null;
  /** False: the key has no balance limit (its ledger stays empty). */
  metered: boolean;
  rateLimitPerMinute: number | null;
  maxConcurrent: number | null;
  /** Where the key's job-completion events are sent (set by the operator, never by a request); null: none. */
  webhookUrl: string | null;
}

export interface NewKey extends Omit<KeyRecord, "revokedAt" | "webhookUrl"> {
  /** sha256 hex of the secret. */
  hash: string;
  /** Opening grant in millicredits (metered keys only). */
  initialCredits: number;
}

export type LedgerKind = "grant" | "reserve" | "release" | "charge";

export interface LedgerEntry {
  keyId: string;
  jobId: string | null;
  kind: LedgerKind;
  /** Signed millicredits: grant and release are positive, reserve and charge negative. */
  amount: number;
  note: string | null;
  createdAt: number;
}

export type JobStatus = "queued" | "running" | "succeeded" | "failed" | "cancelled";

export interface StoredImage {
  id: string;
  mime: string;
  format: string;
  width: number;
  height: number;
  seed: number;
}

/** What is needed to answer the request again (idempotent replay) without the image bytes. */
export interface StoredResult {
  seed: number;
  images: StoredImage[];
  warnings: Warning[];
  /** How the gateway served the job: provider, upstream model, attempts, latency, final target. */
  route?: RouteRecord;
}

export interface JobRow {
  id: string;
  keyId: string | null;
  dialect: string;
  model: string;
  params: Record<string, unknown>;
  seed: number | null;
  status: JobStatus;
  errorCode: string | null;
  errorMessage: string | null;
  creditsReserved: number;
  creditsCharged: number;
  createdAt: number;
  startedAt: number | null;
  finishedAt: number | null;
  imageIds: string[];
  result: StoredResult | null;
  idempotencyKey: string | null;
  /**
   * The server instance that holds the job: the one that admitted it into its queue, then the one running it.
   * Crash recovery fails only jobs whose owner is gone. Null on jobs recorded before owners were.
   */
  owner: string | null;
  /** The last step its run reported, while running and after; null before the first. */
  progress: { step: number; totalSteps: number } | null;
}

/** A due completion webhook, claimed by one process for a while (claimWebhookDelivery). */
export interface WebhookDelivery {
  jobId: string;
  keyId: string;
  /** Attempts made before this one. */
  attempts: number;
  createdAt: number;
  /** The key's webhook now (it may have changed since the job settled); null when it was removed. */
  url: string | null;
  secret: string | null;
}

export interface ImageRow {
  /** sha256 hex of the encoded bytes; also the blob key. */
  id: string;
  mime: string;
  format: string;
  width: number;
  height: number;
  size: number;
  createdAt: number;
}

export interface Admission {
  job: { id: string; keyId: string | null; dialect: string; model: string; params: Record<string, unknown>; owner?: string };
  /** Millicredits to reserve (ignored for unmetered keys and open mode). */
  cost: number;
  now: number;
  /** Limits for keys that have none of their own (the server's configured defaults). */
  defaultLimits?: { requestsPerMinute?: number; maxConcurrent?: number };
  idempotency?: {
    key: string;
    bodyHash: string;
    /** Whether a settled earlier job is answered again (true) or superseded by a new attempt (false). */
    replayable: (job: JobRow) => boolean;
  };
}

export type AdmitResult =
  | { status: "admitted"; remaining: number | null }
  | { status: "replay"; jobId: string }
  | { status: "idempotency_conflict"; jobId: string }
  | { status: "rate_limited"; limit: "requests_per_minute" | "concurrent_jobs"; retryAfterMs: number }
  | { status: "insufficient_credits"; balance: number; cost: number }
  | { status: "key_revoked" };

export interface Settlement {
  jobId: string;
  status: "succeeded" | "failed" | "cancelled";
  at: number;
  /** Millicredits charged (succeeded only; 0 otherwise). */
  charged: number;
  seed?: number | null;
  result?: StoredResult;
  error?: { code: string; message: string };
  /** Image rows inserted (or refreshed) in the same transaction. */
  images?: ImageRow[];
}

/** One page of a key's jobs, newest first. */
export interface JobListQuery {
  /** Whose jobs: an API key's, or null for the jobs of open mode. */
  keyId: string | null;
  limit: number;
  /** Continue after this job: only jobs older than it (created earlier, or at the same time with a smaller id). */
  before?: { createdAt: number; id: string };
}

export interface MetadataStore {
  readonly driver: string;

  createKey(k: NewKey): Promise<KeyRecord>;
  getKey(id: string): Promise<KeyRecord | undefined>;
  /** The key whose secret hashes to `hash`, with that stored hash (for a constant-time comparison). */
  findKeyByHash(hash: string): Promise<{ key: KeyRecord; hash: string } | undefined>;
  listKeys(): Promise<KeyRecord[]>;
  /** Keys ever created, revoked ones included. */
  countKeys(): Promise<number>;
  /** Sets revokedAt once; undefined when the key does not exist. */
  revokeKey(id: string, at: number): Promise<KeyRecord | undefined>;
  /** Sets (or, null, removes) the key's webhook URL and signing secret; undefined when the key does not exist. */
  setKeyWebhook(id: string, webhook: { url: string; secret: string } | null): Promise<KeyRecord | undefined>;
  /** Appends a grant (positive) or a debit (negative) to a metered key; returns the new balance. */
  addCredits(id: string, amount: number, note: string | null, at: number): Promise<number>;
  /** Sum of the key's ledger; null for unmetered keys. */
  balance(keyId: string): Promise<number | null>;
  ledger(keyId: string): Promise<LedgerEntry[]>;

  /**
   * In one transaction: idempotency lookup, rate limits, balance check, the job row (status queued) and the
   * reservation. Concurrent admissions for one key are serialised, so balances never go below zero. A metered
   * key whose balance is 0 is refused (insufficient_credits) whatever the cost, 0 included.
   */
  admitJob(a: Admission): Promise<AdmitResult>;
  getJob(id: string): Promise<JobRow | undefined>;
  /** queued -> running, recording `owner` (when given) as the job's owner; false when the job is no longer queued. */
  markJobRunning(id: string, at: number, owner?: string): Promise<boolean>;
  /**
   * A running job handed to another owner (a shared queue's worker whose lease on it ran out): the owner is replaced
   * and the start time kept; false, changing nothing, when the job is not running.
   */
  takeOverJob(id: string, owner: string): Promise<boolean>;
  /**
   * Settles a queued or running job exactly once: status, result, ledger (release the reservation, charge
   * what was used), image rows. Returns settled false, changing nothing, when it was already settled.
   */
  settleJob(s: Settlement): Promise<{ settled: boolean; remaining: number | null }>;
  /** Records the step a running job has reached (ignored once it is no longer running). */
  setJobProgress(id: string, step: number, totalSteps: number): Promise<void>;
  /**
   * Takes one due webhook delivery (settleJob queues one per settled job of a key with a webhook) for `leaseMs`:
   * no other caller gets it until then, so a process that dies mid-delivery only delays it.
   */
  claimWebhookDelivery(now: number, leaseMs: number): Promise<WebhookDelivery | undefined>;
  /** Records a delivery's outcome: delivered, retried at `retryAt`, or given up at `at` (retryAt null). */
  finishWebhookDelivery(jobId: string, outcome: { deliveredAt: number } | { retryAt: number | null; at: number; error: string }): Promise<void>;
  /** Jobs still queued or running (after a crash: the ones to fail, when their owner is gone). */
  listUnsettledJobs(): Promise<JobRow[]>;
  /** A key's jobs, newest first (created_at descending, then id descending), at most `limit`. */
  listJobs(q: JobListQuery): Promise<JobRow[]>;
  /**
   * Forgets a job: its row and the idempotency records that point at it (ledger entries stay: the ledger is
   * append-only). Answers whether it existed and which of its images no remaining job refers to; those image rows
   * are deleted too, and the caller deletes their blobs.
   */
  deleteJob(id: string): Promise<{ deleted: boolean; orphanedImageIds: string[] }>;

  getImage(id: string): Promise<ImageRow | undefined>;
  /** Image rows created before `before`, oldest first. */
  listImagesBefore(before: number, limit: number): Promise<ImageRow[]>;
  deleteImages(ids: string[]): Promise<void>;
  /** Forgets idempotency records created before `before`. */
  purgeIdempotency(before: number): Promise<number>;

  close(): Promise<void>;
}
