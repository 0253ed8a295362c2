/**
 * Runs the queue contract against BullMQ on Redis at 127.0.0.1:6379 (override with EASEL_TEST_REDIS_URL), each
 * queue under its own name, its keys deleted afterwards. Skips, saying why, when no server answers.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { after, test } from "node:test";
import { fileURLToPath } from "node:url";
import { Redis } from "ioredis";
import { openBullmqQueue, redactUrl } from "../../src/queue/bullmq.ts";
import { HandedBack, type JobQueue } from "../../src/queue/queue.ts";
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
  const open = async (name: string, o: { concurrency: number; maxWaiting?: number; leaseMs?: number }) => {
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

  const until = async (ok: () => boolean, what: string, ms = 5000) => {
    const t0 = Date.now();
    while (!ok()) {
      if (Date.now() - t0 > ms) assert.fail(`${what} within ${ms} ms`);
      await new Promise((r) => setTimeout(r, 10));
    }
  };

  test("bullmq queue: lanes: a job goes only to a process that takes its lane, and API nodes see which lanes are served", async () => {
    const name = `${run}-${n++}`;
    const api = await open(name, { concurrency: 1 });
    const onlyA = await open(name, { concurrency: 1 });
    const seen: string[] = [];
    assert.equal(await api.serving!("model-a"), false, "nobody takes model-a yet");
    onlyA.process(async (job) => void seen.push(job.id), { lanes: ["model-a"] });
    await onlyA.whenServing!();
    assert.equal(await api.serving!("model-a"), true);
    assert.equal(await api.serving!("model-b"), false);
    await api.add("for-b", { n: 1 }, { group: "k", lane: "model-b" });
    await api.add("for-a", { n: 2 }, { group: "k", lane: "model-a" });
    await until(() => seen.length === 1, "the model-a job ran");
    await new Promise((r) => setTimeout(r, 200));
    assert.deepEqual(seen, ["for-a"], "the model-b job waits for a process that has model-b");
    assert.equal(await api.has!("for-b", "model-b"), true);
    assert.equal(await api.has!("for-b", "model-a"), false);
    const onlyB = await open(name, { concurrency: 1 });
    onlyB.process(async (job) => void seen.push(job.id), { lanes: ["model-b", "model-c"] });
    await until(() => seen.length === 2, "the model-b job ran once a process took model-b");
    await onlyA.close();
    assert.equal(await api.serving!("model-a"), false, "a closed process stops advertising at once");
    assert.equal(await api.serving!("model-c"), true);
    await onlyB.close();
    await api.close();
  });

  test("bullmq queue: one process's concurrency spans its lanes", async () => {
    const name = `${run}-${n++}`;
    const api = await open(name, { concurrency: 1 });
    const worker = await open(name, { concurrency: 1 });
    let active = 0;
    let peak = 0;
    const done: string[] = [];
    worker.process(
      async (job) => {
        active++;
        peak = Math.max(peak, active);
        await new Promise((r) => setTimeout(r, 30));
        active--;
        done.push(job.id);
      },
      { lanes: ["a", "b", "c"] },
    );
    for (let i = 0; i < 9; i++) await api.add(`j${i}`, { n: i }, { group: "k", lane: ["a", "b", "c"][i % 3] });
    await until(() => done.length === 9, "all nine jobs ran", 10_000);
    assert.equal(peak, 1, "never more than one job at once over three lanes");
    assert.deepEqual([...done].sort(), ["j0", "j1", "j2", "j3", "j4", "j5", "j6", "j7", "j8"]);
    await worker.close();
    await api.close();
  });

  test("bullmq queue: close({ handBack }) hands the running job back: another process takes it at once, not after the lease", async () => {
    const name = `${run}-${n++}`;
    // A 30 s lease: a job that waited for it to run out would not start again within this test's 5 s.
    const api = await open(name, { concurrency: 1, leaseMs: 30_000 });
    const first = await open(name, { concurrency: 1, leaseMs: 30_000 });
    const runs: { who: string; reason?: unknown }[] = [];
    first.process(
      (job) =>
        new Promise<void>((resolve) => {
          const entry: { who: string; reason?: unknown } = { who: "first" };
          runs.push(entry);
          job.signal.addEventListener("abort", () => {
            entry.reason = job.signal.reason;
            resolve();
          });
        }),
      { lanes: ["m"] },
    );
    await api.add("long", { n: 1 }, { group: "k", lane: "m" });
    await until(() => runs.length === 1, "the first process started the job");
    const second = await open(name, { concurrency: 1, leaseMs: 30_000 });
    second.process(async (job) => void runs.push({ who: `second:${job.id}` }), { lanes: ["m"] });
    const t0 = Date.now();
    await first.close({ handBack: true });
    assert.ok(runs[0].reason instanceof HandedBack, "the handler learns its job is handed back, not cancelled");
    await until(() => runs.length === 2, "the second process took the job");
    assert.equal(runs[1].who, "second:long");
    assert.ok(Date.now() - t0 < 5000);
    await second.close();
    await api.close();
  });

  test("bullmq queue: a job whose process died more often than allowed is given up, not run again, and onGivenUp says so", async () => {
    const name = `${run}-${n++}`;
    const api = await open(name, { concurrency: 1 });
    // A process of its own takes the job and is killed with SIGKILL while it holds it (a 1 s lease).
    const driver = fileURLToPath(new URL("../../src/queue/bullmq.ts", import.meta.url));
    const script = `
      const { openBullmqQueue } = await import(${JSON.stringify(driver)});
      const q = await openBullmqQueue({ redisUrl: ${JSON.stringify(url)}, name: ${JSON.stringify(name)}, prefix: ${JSON.stringify(prefix)}, concurrency: 1, leaseMs: 1000 });
      q.process((job) => { console.log("took " + job.id); return new Promise(() => {}); }, { lanes: ["m"] });`;
    const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], { stdio: ["ignore", "pipe", "inherit"] });
    const exited = new Promise((r) => child.once("exit", r));
    const took = new Promise<string>((resolve) => child.stdout!.on("data", (d) => resolve(String(d).trim())));
    await api.add("doomed", { n: 1 }, { group: "k", lane: "m" });
    assert.equal(await took, "took doomed");
    child.kill("SIGKILL");
    await exited;
    // The survivor allows no lost lease at all: the job's first loss is one too many.
    const survivor = await openBullmqQueue<{ n: number }>({ redisUrl: url, name, prefix, concurrency: 1, leaseMs: 1000, maxLeaseLosses: 0 });
    opened.push(survivor);
    const ran: string[] = [];
    const givenUp: string[] = [];
    survivor.process(async (job) => void ran.push(job.id), { lanes: ["m"], onGivenUp: (id) => givenUp.push(id) });
    await until(() => givenUp.length === 1, "the job was given up", 10_000);
    assert.deepEqual(givenUp, ["doomed"]);
    assert.deepEqual(ran, [], "a given-up job does not run again");
    assert.equal(await api.has!("doomed", "m"), false, "the queue no longer holds it");
    await survivor.close();
    await api.close();
  });
}
