/**
 * Recovery over a shared queue (BullMQ on the Redis at 127.0.0.1:6379): an unsettled job is failed, its credits
 * released, only when the queue no longer holds it and it is older than the grace period; a job the queue holds
 * is kept whoever recorded it. A job the queue gives up (the processes running it kept dying) is failed at once by the
 * process that finds it, its credits released, without running again. Skips, saying why, when Redis does not answer.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { rmSync } from "node:fs";
import { after, test } from "node:test";
import { fileURLToPath } from "node:url";
import { Redis } from "ioredis";
import { configPaths } from "../../src/config/index.ts";
import { createKeyAdmin } from "../../src/jobs/api-keys.ts";
import { createJobService, LOST_JOB_GRACE_MS } from "../../src/jobs/job-service.ts";
import { openBullmqQueue } from "../../src/queue/bullmq.ts";
import { createFsBlobStore } from "../../src/storage/fs-blob-store.ts";
import { openSqliteStore } from "../../src/storage/sqlite.ts";
import { redisUnreachable, TEST_REDIS_URL } from "../helpers/redis.ts";
import { MODEL, models, testConfig } from "./helpers.ts";

const url = TEST_REDIS_URL;

const why = await redisUnreachable(url);
if (why !== undefined) {
  test("recovery over a shared queue", { skip: `Redis not reachable at 127.0.0.1:6379: ${why}` }, () => {});
} else {
  const name = `recovery-${process.pid}-${Date.now().toString(36)}`;
  after(async () => {
    const r = new Redis(url);
    // Lanes' queues are `<name>@<lane>`.
    for (const pattern of [`easel-test:${name}*`, `easel-test-fair:${name}*`]) {
      const keys = await r.keys(pattern);
      if (keys.length > 0) await r.del(...keys);
    }
    await r.quit();
  });

  test("a shared queue's job is failed only when the queue no longer holds it and the grace period is over", async () => {
    const config = testConfig();
    const store = await openSqliteStore(configPaths(config).dbFile);
    const queue = await openBullmqQueue<{ jobId: string }>({ redisUrl: url, name, prefix: "easel-test", concurrency: 1 });
    let t = Date.now();
    const svc = createJobService({
      config,
      store,
      blobs: createFsBlobStore(configPaths(config).imagesDir),
      executor: () => ({ generate: async () => assert.fail("nothing runs on an API-only node") }),
      models,
      queue,
      runJobs: false,
      clock: () => t,
      // Every other owner counts as alive: only the queue decides here.
      ownerAlive: () => true,
    });
    try {
      const { info } = await createKeyAdmin({ store }).create({ name: "k", credits: 10 });
      const admit = (id: string, at: number) =>
        store.admitJob({ job: { id, keyId: info.id, dialect: "openai", model: "sd15", params: {}, owner: "inst_gone@elsewhere:1:-" }, cost: 1_000, now: at });
      const old = t - LOST_JOB_GRACE_MS - 1;
      await admit("lost", old);
      await admit("held", old);
      await admit("young", t);
      await queue.add("held", { jobId: "held" }, { group: info.id, lane: "sd15" });
      assert.equal(await store.balance(info.id), 7_000);

      const r = await svc.recoverCrashedJobs();
      assert.deepEqual(r.failed, ["lost"]);
      assert.deepEqual([...r.kept].sort(), ["held", "young"]);
      assert.equal((await store.getJob("lost"))?.status, "failed");
      assert.equal(await store.balance(info.id), 8_000, "the lost job's reservation is released");

      // Past the grace period a job nobody queued is lost too; the queued one stays.
      t += LOST_JOB_GRACE_MS + 1;
      assert.deepEqual((await svc.recoverCrashedJobs()).failed, ["young"]);
      assert.equal((await store.getJob("held"))?.status, "queued");
    } finally {
      await svc.close();
      await store.close();
      rmSync(config.dataDir, { recursive: true, force: true });
    }
  });

  test("a job the shared queue gives up after its worker died is failed at once, its credits released, and not run again", async () => {
    const config = testConfig();
    const store = await openSqliteStore(configPaths(config).dbFile);
    const qname = `${name}-given-up`;
    const api = await openBullmqQueue<{ jobId: string }>({ redisUrl: url, name: qname, prefix: "easel-test", concurrency: 1 });
    let svc: ReturnType<typeof createJobService> | undefined;
    try {
      const { info } = await createKeyAdmin({ store }).create({ name: "k", credits: 10 });
      await store.admitJob({ job: { id: "doomed", keyId: info.id, dialect: "openai", model: MODEL.id, params: {}, owner: "inst_gone@elsewhere:1:-" }, cost: 1_000, now: Date.now() });
      await api.add("doomed", { jobId: "doomed" }, { group: info.id, lane: MODEL.id });
      // A worker of its own takes the job and is killed with SIGKILL while it holds it (a 1 s lease).
      const driver = fileURLToPath(new URL("../../src/queue/bullmq.ts", import.meta.url));
      const script = `
        const { openBullmqQueue } = await import(${JSON.stringify(driver)});
        const q = await openBullmqQueue({ redisUrl: ${JSON.stringify(url)}, name: ${JSON.stringify(qname)}, prefix: "easel-test", concurrency: 1, leaseMs: 1000 });
        q.process((job) => { console.log("took " + job.id); return new Promise(() => {}); }, { lanes: [${JSON.stringify(MODEL.id)}] });`;
      const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], { stdio: ["ignore", "pipe", "inherit"] });
      const exited = new Promise((r) => child.once("exit", r));
      assert.equal(await new Promise<string>((resolve) => child.stdout!.on("data", (d) => resolve(String(d).trim()))), "took doomed");
      child.kill("SIGKILL");
      await exited;
      assert.equal(await store.balance(info.id), 9_000);

      // This worker allows no lost lease: the job's first is one too many.
      const queue = await openBullmqQueue<{ jobId: string }>({ redisUrl: url, name: qname, prefix: "easel-test", concurrency: 1, leaseMs: 1000, maxLeaseLosses: 0 });
      svc = createJobService({
        config,
        store,
        blobs: createFsBlobStore(configPaths(config).imagesDir),
        executor: () => ({ generate: async () => assert.fail("a given-up job does not run again") }),
        models,
        queue,
      });
      for (let i = 0; i < 1000 && (await store.getJob("doomed"))?.status === "queued"; i++) await new Promise((r) => setTimeout(r, 20));
      const job = await store.getJob("doomed");
      assert.equal(job?.status, "failed");
      assert.equal(job?.errorCode, "E_INTERNAL");
      assert.match(job?.errorMessage ?? "", /stopped too many times; it was given up/);
      assert.equal(await store.balance(info.id), 10_000, "the reservation is released");
    } finally {
      await svc?.close();
      await api.close();
      await store.close();
      rmSync(config.dataDir, { recursive: true, force: true });
    }
  });
}
