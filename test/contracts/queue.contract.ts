/** The JobQueue contract suite: `runQueueContract(name, (concurrency) => makeQueue(concurrency))`. */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { JobQueue } from "../../src/queue/queue.ts";

export function runQueueContract(name: string, makeQueue: (concurrency: number) => Promise<JobQueue<{ n: number }>>): void {
  test(`${name}: FIFO under the concurrency limit, positions, cancel waiting and running, close`, async () => {
    const q = await makeQueue(1);
    const started: string[] = [];
    const release = new Map<string, () => void>();
    const aborted: string[] = [];
    q.process(async (job) => {
      started.push(job.id);
      await new Promise<void>((resolve) => {
        release.set(job.id, resolve);
        job.signal.addEventListener(
          "abort",
          () => {
            aborted.push(job.id);
            resolve();
          },
          { once: true },
        );
      });
    });
    const positions: number[] = [];
    for (const id of ["a", "b", "c", "d"]) positions.push((await q.add(id, { n: 1 })).position);
    assert.equal(positions[0], 0);
    // Later jobs wait behind the earlier ones, one more each.
    assert.deepEqual(positions.slice(1).map((p) => p - positions[1]), [0, 1, 2]);
    await new Promise((r) => setTimeout(r, 10));
    assert.deepEqual(started, ["a"]);
    assert.equal(await q.cancel("c"), "removed");
    assert.equal(await q.cancel("a"), "aborted");
    assert.equal(await q.cancel("zzz"), "unknown");
    await new Promise((r) => setTimeout(r, 10));
    assert.deepEqual(aborted, ["a"]);
    assert.deepEqual(started, ["a", "b"]);
    release.get("b")!();
    await new Promise((r) => setTimeout(r, 10));
    assert.deepEqual(started, ["a", "b", "d"], "c was removed and never ran");
    assert.deepEqual(await q.stats(), { waiting: 0, active: 1 });
    await q.close();
    assert.deepEqual(aborted, ["a", "d"], "close aborts running jobs");
    await assert.rejects(q.add("e", { n: 1 }));
  });

  test(`${name}: runs up to its concurrency at once and survives a throwing handler`, async () => {
    const q = await makeQueue(3);
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
    for (let i = 0; i < 10; i++) await q.add(`j${i}`, { n: i });
    while (done < 10) await new Promise((r) => setTimeout(r, 5));
    assert.equal(peak, 3);
    await q.close();
  });
}
