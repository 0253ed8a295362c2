/** The circuit breaker's states on a stepped clock: closed -> open after N failures -> half-open (one probe) -> closed or open. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { CircuitBreaker } from "./breaker.ts";

function breaker(threshold = 3, resetMs = 1000) {
  let t = 0;
  const changes: string[] = [];
  const b = new CircuitBreaker({ failureThreshold: threshold, resetMs, clock: () => t, onChange: (f, to) => changes.push(`${f}->${to}`) });
  return { b, changes, advance: (ms: number) => (t += ms) };
}

test("opens after failureThreshold failures in a row; a success in between resets the count", () => {
  const { b, changes } = breaker(3);
  b.failure();
  b.failure();
  b.success();
  b.failure();
  b.failure();
  assert.equal(b.state, "closed");
  assert.ok(b.tryAcquire());
  b.failure();
  assert.equal(b.state, "open");
  assert.equal(b.tryAcquire(), false);
  assert.deepEqual(changes, ["closed->open"]);
});

test("after resetMs one probe goes through; its success closes the circuit", () => {
  const { b, advance, changes } = breaker(1, 1000);
  b.failure();
  advance(999);
  assert.equal(b.tryAcquire(), false);
  assert.equal(b.retryAfterMs, 1);
  advance(1);
  assert.equal(b.state, "half_open");
  assert.ok(b.tryAcquire(), "the probe");
  assert.equal(b.tryAcquire(), false, "only one probe at a time");
  b.success();
  assert.equal(b.state, "closed");
  assert.ok(b.tryAcquire() && b.tryAcquire());
  assert.deepEqual(changes, ["closed->open", "open->half_open", "half_open->closed"]);
});

test("a failed probe opens the circuit again for another resetMs; a cancelled probe frees the slot", () => {
  const { b, advance } = breaker(2, 500);
  b.failure();
  b.failure();
  advance(500);
  assert.ok(b.tryAcquire());
  b.release();
  assert.ok(b.tryAcquire(), "a cancelled probe says nothing: the next request probes");
  b.failure();
  assert.equal(b.state, "open");
  advance(499);
  assert.equal(b.tryAcquire(), false);
  advance(1);
  assert.ok(b.tryAcquire());
});

test("a request sent before the circuit opened that fails later does not extend the open time", () => {
  const { b, advance } = breaker(1, 1000);
  b.failure();
  advance(600);
  b.failure();
  advance(400);
  assert.equal(b.state, "half_open");
});
