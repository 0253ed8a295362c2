/**
 * Backoff between tries of one upstream call: exponential with full jitter (a random wait in [0, min(maxDelay,
 * baseDelay * 2^(retry-1))], so clients that failed together do not retry together), or the upstream's Retry-After
 * when it gave one. Hand-written rather than p-retry: the wait depends on each failure (Retry-After), the circuit
 * breaker is asked before every try, and the wait must end with the job's abort signal.
 */

export interface RetryPolicy {
  max: number;
  baseDelayMs: number;
  maxDelayMs: number;
  /** A Retry-After longer than this is not waited for. */
  maxRetryAfterMs: number;
}

/**
 * How long to wait before retry number `retry` (1 = the first retry); undefined when the upstream asked for a
 * longer wait than the policy allows (the caller fails over instead).
 */
export function retryDelayMs(retry: number, policy: RetryPolicy, random: () => number, retryAfterMs?: number): number | undefined {
  if (retryAfterMs !== undefined) return retryAfterMs <= policy.maxRetryAfterMs ? retryAfterMs : undefined;
  const cap = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (retry - 1));
  return Math.round(random() * cap);
}

/** Resolves after `ms`, or rejects with the signal's reason when it aborts first. */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal.addEventListener("abort", onAbort, { once: true });
  });
}
