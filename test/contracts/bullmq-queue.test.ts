/**
 * Runs the queue contract against BullMQ on Redis at 127.0.0.1:6379 (override with EASEL_TEST_REDIS_URL), each
 * queue under its own name, its keys deleted afterwards. Skips, saying why, when no server answers.
 */
import assert from "node:assert/strict";
import { after, test } from "node:test";
import { Redis } from "ioredis";
import { openBullmqQueue, redactUrl } from "../../src/queue/bullmq.ts";
import type { JobQueue } from "../../src/queue/queue.ts";
import { redisUnreachable, TEST_REDIS_URL } from "../helpers/redis.ts";
import { runQueueContract } from "./queue.contract.ts";

const url = TEST_REDIS_URL;

const why = await redisUnreachable(url);
if (why !== undefined) {
  test("bullmq queue contract", { skip: `Redis not reachable at ${redactUrl(url)}: ${why}` }, () => {});
} else {
  const run = `contract-${process.pid}-${Date.now().toString(36)}`;
  let n = 0;
  const prefix = "easel-test";
  // Every queue is closed before its keys go, also after a failed assertion (open connections would hold the run).
  const opened: JobQueue<{ n: number }>[] = [];
  const open = async (name: string, o: { concurrency: number; maxWaiting?: number }) => {
    const q = await openBullmqQueue<{ n: number }>({ ...o, redisUrl: url, name, prefix });
    opened.push(q);
    return q;
  };
  after(async () => {
    for (const q of opened) await q.close();
    const r = new Redis(url);
    for (const pattern of [`${prefix}:${run}-*`, `${prefix}-fair:${run}-*`]) {
      const found = await r.keys(pattern);
      if (found.length > 0) await r.del(...found);
    }
    await r.quit();
  });
  // Workers take jobs over the network: the contract waits longer for a started job to show.
  runQueueContract("bullmq queue", (opts) => open(`${run}-${n++}`, opts), { settleMs: 60 });

  test("bullmq queue: a job added on one node runs on another, which a cancel from the first reaches", async () => {
    const name = `${run}-${n++}`;
    const api = await open(name, { concurrency: 1 });
    const worker = await open(name, { concurrency: 1 });
    const seen: { id: string; n: number; reason?: string }[] = [];
    worker.process(async (job) => {
      const entry: { id: string; n: number; reason?: string } = { id: job.id, n: job.payload.n };
      seen.push(entry);
      await new Promise<void>((resolve) => job.signal.addEventListener("abort", () => resolve(), { once: true }));
      entry.reason = (job.signal.reason as { code?: string }).code;
    });
    await api.add("held", { n: 7 }, { group: "k" });
    for (let i = 0; i < 100 && seen.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
    assert.deepEqual(seen, [{ id: "held", n: 7 }]);
    assert.deepEqual(await api.stats("k"), { waiting: 0, active: 1, groupWaiting: 0 });
    assert.equal(await api.cancel("held"), "aborted");
    for (let i = 0; i < 100 && !seen[0].reason; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(seen[0].reason, "E_CANCELLED");
    await worker.close();
    await api.close();
  });
}
