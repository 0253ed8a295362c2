/**
 * The JobQueue contract suite: `runQueueContract(name, (opts) => makeQueue(opts))`. Every driver runs it.
 * Timing: handlers are released by the tests, and `settle()` gives a driver time to start the next job (a driver
 * that starts jobs over the network, as BullMQ's workers do, asks for more with `settleMs`).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { JobQueue, QueueLimits } from "../../src/queue/queue.ts";

export interface QueueFactoryOptions extends QueueLimits {
  concurrency: number;
}

type Queue = JobQueue<{ n: number }>;

let settleMs = 10;
const settle = (ms = settleMs) => new Promise((r) => setTimeout(r, ms));

/** A handler that records starts and holds each job until released or aborted. */
function holding(q: Queue) {
  const started: string[] = [];
  const release = new Map<string, () => void>();
  const aborted: { id: string; reason: unknown; afterMs: number }[] = [];
  q.process(async (job) => {
    started.push(job.id);
    const t0 = Date.now();
    await new Promise<void>((resolve) => {
      release.set(job.id, resolve);
      job.signal.addEventListener(
        "abort",
        () => {
          aborted.push({ id: job.id, reason: job.signal.reason, afterMs: Date.now() - t0 });
          resolve();
        },
        { once: true },
      );
    });
  });
  /** Releases the job started last and waits for the next one to start. */
  const next = async () => {
    release.get(started[started.length - 1])!();
    await settle();
  };
  return { started, release, aborted, next };
}

export function runQueueContract(name: string, makeQueue: (opts: QueueFactoryOptions) => Promise<Queue>, opts: { settleMs?: number } = {}): void {
  settleMs = opts.settleMs ?? 10;
  test(`${name}: FIFO within a group under the concurrency limit, positions, cancel waiting and running, close`, async () => {
    const q = await makeQueue({ concurrency: 1 });
    const { started, release, aborted } = holding(q);
    const positions: number[] = [(await q.add("a", { n: 1 }, { group: "k1" })).position];
    assert.equal(positions[0], 0);
    // Positions count the jobs waiting when a job is added: "a" has started before the others come.
    await settle();
    for (const id of ["b", "c", "d"]) positions.push((await q.add(id, { n: 1 }, { group: "k1" })).position);
    // Later jobs wait behind the earlier ones, one more each.
    assert.deepEqual(positions.slice(1).map((p) => p - positions[1]), [0, 1, 2]);
    assert.deepEqual(started, ["a"]);
    assert.equal(await q.cancel("c"), "removed");
    assert.equal(await q.cancel("a"), "aborted");
    assert.equal(await q.cancel("zzz"), "unknown");
    await settle();
    assert.deepEqual(aborted.map((a) => a.id), ["a"]);
    assert.equal((aborted[0].reason as { code?: string }).code, "E_CANCELLED");
    assert.deepEqual(started, ["a", "b"]);
    release.get("b")!();
    await settle();
    assert.deepEqual(started, ["a", "b", "d"], "c was removed and never ran");
    assert.deepEqual(await q.stats(), { waiting: 0, active: 1 });
    await q.close();
    assert.deepEqual(aborted.map((a) => a.id), ["a", "d"], "close aborts running jobs");
    await assert.rejects(q.add("e", { n: 1 }, { group: "k1" }));
  });

  test(`${name}: runs up to its concurrency at once and survives a throwing handler`, async () => {
    const q = await makeQueue({ concurrency: 3 });
    let active = 0;
    let peak = 0;
    let done = 0;
    q.process(async (job) => {
      active++;
      peak = Math.max(peak, active);
      await new Promise((r) => setTimeout(r, 5));
      active--;
      done++;
      if (job.payload.n % 2 === 0) throw new Error("handler failure");
    });
    for (let i = 0; i < 10; i++) await q.add(`j${i}`, { n: i }, { group: `k${i % 2}` });
    while (done < 10) await settle(5);
    assert.equal(peak, 3);
    await q.close();
  });

  test(`${name}: groups take turns: a second group's job starts before the first group's backlog`, async () => {
    const q = await makeQueue({ concurrency: 1 });
    const { started, next } = holding(q);
    for (let i = 0; i < 6; i++) await q.add(`a${i}`, { n: i }, { group: "flood" });
    assert.equal((await q.add("b0", { n: 0 }, { group: "small" })).position, 0, "the other group is next");
    await settle();
    for (let i = 0; i < 3; i++) await next();
    await q.add("b1", { n: 1 }, { group: "small" });
    while (started.length < 8) await next();
    assert.deepEqual(started, ["a0", "b0", "a1", "a2", "b1", "a3", "a4", "a5"]);
    assert.deepEqual(await q.stats("small"), { waiting: 0, active: 1, groupWaiting: 0 });
    await q.close();
  });

  test(`${name}: priority and cost weight the turns`, async () => {
    const q = await makeQueue({ concurrency: 1 });
    const { started, next } = holding(q);
    await q.add("x", { n: 0 }, { group: "x" });
    for (let i = 0; i < 8; i++) await q.add(`a${i}`, { n: i }, { group: "a", priority: 2 });
    for (let i = 0; i < 8; i++) await q.add(`b${i}`, { n: i }, { group: "b" });
    await settle();
    while (started.length < 10) await next();
    const first9 = started.slice(1, 10);
    assert.equal(first9.filter((id) => id.startsWith("a")).length, 6, `priority 2 gets two turns per turn of priority 1: ${first9}`);
    await q.close();

    const q2 = await makeQueue({ concurrency: 1 });
    const h2 = holding(q2);
    await q2.add("x", { n: 0 }, { group: "x" });
    for (let i = 0; i < 3; i++) await q2.add(`big${i}`, { n: i }, { group: "big", cost: 4 });
    for (let i = 0; i < 10; i++) await q2.add(`small${i}`, { n: i }, { group: "small", cost: 1 });
    await settle();
    while (h2.started.length < 11) await h2.next();
    const order = h2.started.slice(1, 11);
    assert.equal(order.filter((id) => id.startsWith("big")).length, 2, `one job of cost 4 per four of cost 1: ${order}`);
    await q2.close();
  });

  test(`${name}: bounds on waiting jobs, per group and in all; refusals add nothing and say when to retry`, async () => {
    const q = await makeQueue({ concurrency: 1, maxWaiting: 3 });
    const { started, next } = holding(q);
    const opts = (group: string) => ({ group, maxWaitingInGroup: 2 });
    await q.add("run", { n: 0 }, opts("k1"));
    await settle();
    await q.add("k1-a", { n: 1 }, opts("k1"));
    await q.add("k1-b", { n: 2 }, opts("k1"));
    const perGroup = await q.add("k1-c", { n: 3 }, opts("k1")).catch((e) => e);
    assert.equal(perGroup.code, "E_RATE_LIMITED");
    assert.equal(perGroup.details.limit, "queued_jobs");
    assert.ok(Number.isInteger(perGroup.details.retryAfterSeconds) && perGroup.details.retryAfterSeconds >= 1);
    await assert.rejects(q.checkCapacity(opts("k1")), { code: "E_RATE_LIMITED" });
    await q.checkCapacity(opts("k2"));
    await q.add("k2-a", { n: 4 }, opts("k2"));
    const full = await q.add("k3-a", { n: 5 }, opts("k3")).catch((e) => e);
    assert.equal(full.code, "E_OVERLOADED");
    assert.ok(Number.isInteger(full.details.retryAfterSeconds) && full.details.retryAfterSeconds >= 1);
    await assert.rejects(q.checkCapacity(opts("k3")), { code: "E_OVERLOADED" });
    assert.deepEqual(await q.stats("k1"), { waiting: 3, active: 1, groupWaiting: 2 });
    // A place frees when a waiting job starts; the refused ids can then be added as new jobs.
    await next();
    await q.add("k3-a", { n: 5 }, opts("k3"));
    while (started.length < 5) await next();
    assert.deepEqual([...started].sort(), ["k1-a", "k1-b", "k2-a", "k3-a", "run"]);
    assert.ok(!started.includes("k1-c"), "a refused job never runs");
    await q.close();
  });

  test(`${name}: a job that runs past its time limit has its signal aborted with E_TIMEOUT`, async () => {
    const q = await makeQueue({ concurrency: 2 });
    const { started, aborted, release } = holding(q);
    await q.add("slow", { n: 0 }, { group: "k", timeoutMs: 60 });
    await q.add("untimed", { n: 1 }, { group: "k" });
    await settle(200);
    assert.deepEqual(started, ["slow", "untimed"]);
    assert.deepEqual(aborted.map((a) => a.id), ["slow"]);
    assert.equal((aborted[0].reason as { code?: string }).code, "E_TIMEOUT");
    assert.ok(aborted[0].afterMs >= 55, `aborted after ${aborted[0].afterMs} ms`);
    // The slot is free again: a third job starts while "untimed" still runs.
    await q.add("third", { n: 2 }, { group: "k", timeoutMs: 10_000 });
    await settle();
    assert.deepEqual(started, ["slow", "untimed", "third"]);
    release.get("third")!();
    await settle(30);
    assert.deepEqual(aborted.map((a) => a.id), ["slow"], "a job that finishes in time is not aborted later");
    await q.close();
  });
}
