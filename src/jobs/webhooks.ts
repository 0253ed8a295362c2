/**
 * Completion webhooks. When a job of a key with a webhook settles, the store queues a delivery in the same
 * transaction (an outbox row); every process that runs a job service drains the outbox: it claims a due delivery
 * for a while (so two nodes never send one event at once, and a node that dies mid-delivery only delays it), POSTs
 * the event, and records the outcome. A failure is retried with exponential backoff until `maxAttempts`.
 *
 * The event is signed the Standard Webhooks way (standardwebhooks): `webhook-id` (the job id: the same on every
 * retry, so a receiver can drop duplicates), `webhook-timestamp`, and `webhook-signature` = `v1,` + base64
 * HMAC-SHA256 over `id.timestamp.body` with the key's `whsec_` secret.
 */
import { Webhook } from "standardwebhooks";
import type { Config } from "../config/index.ts";
import type { JobRecord } from "../core/image-service.ts";
import type { MetadataStore } from "../storage/metadata-store.ts";

/** The event a receiver gets: `type` is `job.succeeded`, `job.failed` or `job.cancelled`. */
export interface WebhookEvent {
  type: string;
  timestamp: string;
  data: {
    id: string;
    status: JobRecord["status"];
    dialect: string;
    model: string;
    seed: number | null;
    error: JobRecord["error"];
    images: { url: string | null; seed: number; width: number; height: number; format: string }[];
    creditsCharged: number;
    warnings: JobRecord["warnings"];
    createdAt: string;
    finishedAt: string | null;
  };
}

export interface WebhookSenderDeps {
  store: MetadataStore;
  config: Config;
  /** The job as its owner sees it (signed image paths), or undefined once it was deleted. */
  describe: (jobId: string) => Promise<JobRecord | undefined>;
  fetch?: typeof fetch;
  clock?: () => number;
}

export interface WebhookSender {
  /** Delivers at most one due event; false when none was due. */
  deliverOne(): Promise<boolean>;
  /** Polls every `webhooks.pollMs` until stop(). */
  start(): void;
  stop(): Promise<void>;
}

const iso = (t: number | null): string | null => (t === null ? null : new Date(t).toISOString());

/** Wait before attempt `attempt + 1`, after `attempt` failures (1-based): initial × 2^(attempt-1), capped. */
export function backoffMs(attempt: number, cfg: Config["webhooks"]): number {
  return Math.min(cfg.maxBackoffMs, cfg.initialBackoffMs * 2 ** Math.max(0, attempt - 1));
}

/** Base of absolute image URLs in events: the configured public URL, else the address the server listens on. */
function baseUrl(config: Config): string {
  const configured = config.server.publicBaseUrl;
  if (configured) return configured.replace(/\/+$/, "");
  const host = config.server.host.includes(":") ? `[${config.server.host}]` : config.server.host;
  return `http://${host}:${config.server.port}`;
}

export function webhookEvent(job: JobRecord, base: string, at: number): WebhookEvent {
  return {
    type: `job.${job.status}`,
    timestamp: new Date(at).toISOString(),
    data: {
      id: job.id,
      status: job.status,
      dialect: job.dialect,
      model: job.model,
      seed: job.seed,
      error: job.error,
      images: job.images.map((i) => ({ url: i.url ? `${base}${i.url}` : null, seed: i.seed, width: i.width, height: i.height, format: i.format })),
      creditsCharged: job.creditsCharged,
      warnings: job.warnings,
      createdAt: iso(job.createdAt)!,
      finishedAt: iso(job.finishedAt),
    },
  };
}

export function createWebhookSender(deps: WebhookSenderDeps): WebhookSender {
  const { store, config } = deps;
  const cfg = config.webhooks;
  const now = deps.clock ?? Date.now;
  const doFetch = deps.fetch ?? fetch;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  let stopped = false;

  async function send(url: string, secret: string, jobId: string, body: string): Promise<string | undefined> {
    const at = new Date(now());
    const signature = new Webhook(secret).sign(jobId, at, body);
    try {
      const res = await doFetch(url, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          "user-agent": "Easel-Webhooks/1",
          "webhook-id": jobId,
          "webhook-timestamp": String(Math.floor(at.getTime() / 1000)),
          "webhook-signature": signature,
        },
        body,
        redirect: "manual",
        signal: AbortSignal.timeout(cfg.timeoutMs),
      });
      // The answer's body is not needed; reading it frees the connection.
      await res.arrayBuffer().catch(() => undefined);
      return res.ok ? undefined : `HTTP ${res.status}`;
    } catch (e) {
      return (e as Error).name === "TimeoutError" ? `no answer within ${cfg.timeoutMs} ms` : String((e as Error).message ?? e);
    }
  }

  async function deliverOne(): Promise<boolean> {
    // Held long enough for one attempt; a process that dies holding it releases it when the claim runs out.
    const d = await store.claimWebhookDelivery(now(), cfg.timeoutMs * 2 + 5000);
    if (!d) return false;
    const attempt = d.attempts + 1;
    const job = await deps.describe(d.jobId);
    if (!d.url || !d.secret || !job) {
      await store.finishWebhookDelivery(d.jobId, { retryAt: null, at: now(), error: job ? "the key's webhook was removed" : "the job was deleted" });
      return true;
    }
    const body = JSON.stringify(webhookEvent(job, baseUrl(config), now()));
    const error = await send(d.url, d.secret, d.jobId, body);
    if (error === undefined) await store.finishWebhookDelivery(d.jobId, { deliveredAt: now() });
    else {
      const retryAt = attempt >= cfg.maxAttempts ? null : now() + backoffMs(attempt, cfg);
      await store.finishWebhookDelivery(d.jobId, { retryAt, at: now(), error });
    }
    return true;
  }

  async function drain(): Promise<void> {
    while (!stopped && (await deliverOne())) {
      // Due events are sent one after another until none is left.
    }
  }

  return {
    deliverOne,
    start() {
      if (timer) return;
      stopped = false;
      timer = setInterval(() => {
        // One drain at a time: a slow receiver delays the next poll instead of stacking drains.
        if (running) return;
        running = drain()
          .catch(() => undefined)
          .finally(() => {
            running = undefined;
          });
      }, cfg.pollMs);
      timer.unref();
    },
    async stop() {
      stopped = true;
      clearInterval(timer);
      timer = undefined;
      await running;
    },
  };
}
