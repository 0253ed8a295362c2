/** Backoff: exponential with full jitter under a cap, or the upstream's Retry-After when it is not too long. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { parseRetryAfter } from "../providers/_shared/errors.ts";
import { retryDelayMs, sleep } from "./retry.ts";

const policy = { max: 5, baseDelayMs: 100, maxDelayMs: 1000, maxRetryAfterMs: 5000 };

test("the ceiling doubles per retry up to maxDelayMs; the wait is a uniform draw below it", () => {
  assert.deepEqual(
    [1, 2, 3, 4, 5].map((r) => retryDelayMs(r, policy, () => 0.999999)),
    [100, 200, 400, 800, 1000],
  );
  assert.equal(retryDelayMs(3, policy, () => 0), 0);
  assert.equal(retryDelayMs(3, policy, () => 0.5), 200);
});

test("Retry-After replaces the backoff, and one longer than maxRetryAfterMs is not waited for", () => {
  assert.equal(retryDelayMs(1, policy, () => 0.5, 3000), 3000);
  assert.equal(retryDelayMs(1, policy, () => 0.5, 5001), undefined);
});

test("Retry-After is read as seconds or as an HTTP date", () => {
  const now = Date.parse("2025-01-01T00:00:00Z");
  assert.equal(parseRetryAfter("2", now), 2000);
  assert.equal(parseRetryAfter("0.5", now), 500);
  assert.equal(parseRetryAfter("Wed, 01 Jan 2025 00:00:03 GMT", now), 3000);
  assert.equal(parseRetryAfter("soon", now), undefined);
  assert.equal(parseRetryAfter(null, now), undefined);
});

test("sleep ends early with the signal's reason", async () => {
  const c = new AbortController();
  const t = Date.now();
  const p = sleep(10_000, c.signal);
  c.abort(new Error("gone"));
  await assert.rejects(p, /gone/);
  assert.ok(Date.now() - t < 1000);
});
