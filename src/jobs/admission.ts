/** What the job service decides about a request before it admits it, and how a queued job is treated. */
import type { Config } from "../config/index.ts";
import { EaselError, ERROR_CATALOG, type ErrorCode, invalidInput } from "../core/errors.ts";
import { checkModelLimits } from "../core/limits.ts";
import type { GenerationRequest, ModelInfo } from "../core/types.ts";
import type { QueueAddOptions } from "../queue/queue.ts";
import type { JobRow } from "../storage/metadata-store.ts";

/**
 * Everything that can be checked before admission is: the model's limits (core/limits.ts, the same check the
 * pipeline makes) and the output format. A refused request leaves no job row, ledger entry or rate-limit use.
 */
export function checkRequest(req: GenerationRequest, model: ModelInfo): void {
  checkModelLimits(req, model.defaults, model.limits, req.initImage !== undefined);
  if (!req.output || !["png", "jpeg", "webp"].includes(req.output.format)) {
    throw invalidInput("output.format", "output format must be png, jpeg or webp");
  }
}

/** Client errors (4xx) are answered again on replay; server errors and cancellations let the client retry. */
export function replayable(job: JobRow): boolean {
  if (job.status === "succeeded") return true;
  if (job.status !== "failed" || !job.errorCode) return false;
  const entry = ERROR_CATALOG[job.errorCode as ErrorCode];
  return entry !== undefined && entry.status < 500 && entry.status !== 499;
}

/**
 * How the queue treats the job: the key is its fairness group, its share comes from limits.priorities, its cost is
 * its work (megapixel-steps, so a key sending 10-image jobs and a key sending 1-image jobs get equal work done),
 * its run time is bounded by queue.jobTimeoutSeconds.
 */
export function queueOptions(config: Config, req: GenerationRequest, model: ModelInfo, keyId: string | null): QueueAddOptions {
  const steps = req.steps ?? model.defaults.steps;
  return {
    group: keyId ?? "",
    priority: keyId === null ? 1 : (config.limits.priorities[keyId] ?? 1),
    cost: Math.max(1e-6, (req.n * req.width * req.height * steps) / 1e6),
    maxWaitingInGroup: config.limits.maxQueuedPerKey,
    // A shared queue gives the job only to processes that have its model.
    lane: model.id,
    ...(config.queue.jobTimeoutSeconds > 0 ? { timeoutMs: config.queue.jobTimeoutSeconds * 1000 } : {}),
  };
}

export const cancelledError = (): EaselError => new EaselError("E_CANCELLED", "The request was cancelled.");

/** Why a job whose signal was aborted stopped: the queue's reason (E_TIMEOUT, E_CANCELLED), else a cancellation. */
export function abortReason(signal: AbortSignal): EaselError {
  return signal.reason instanceof EaselError ? signal.reason : cancelledError();
}
