/**
 * Recovery over a shared queue (BullMQ on the Redis at 127.0.0.1:6379): an unsettled job is failed, its credits
 * released, only when the queue no longer holds it and it is older than the grace period; a job the queue holds
 * is kept whoever recorded it. Skips, saying why, when Redis does not answer.
 */
import assert from "node:assert/strict";
import { rmSync } from "node:fs";
import { after, test } from "node:test";
import { Redis } from "ioredis";
import { configPaths } from "../../src/config/index.ts";
import { createKeyAdmin } from "../../src/jobs/api-keys.ts";
import { createJobService, LOST_JOB_GRACE_MS } from "../../src/jobs/job-service.ts";
import { openBullmqQueue } from "../../src/queue/bullmq.ts";
import { createFsBlobStore } from "../../src/storage/fs-blob-store.ts";
import { openSqliteStore } from "../../src/storage/sqlite.ts";
import { redisUnreachable, TEST_REDIS_URL } from "../helpers/redis.ts";
import { models, testConfig } from "./helpers.ts";

const url = TEST_REDIS_URL;

const why = await redisUnreachable(url);
if (why !== undefined) {
  test("recovery over a shared queue", { skip: `Redis not reachable at 127.0.0.1:6379: ${why}` }, () => {});
} else {
  const name = `recovery-${process.pid}-${Date.now().toString(36)}`;
  after(async () => {
    const r = new Redis(url);
    for (const pattern of [`easel-test:${name}:*`, `easel-test-fair:${name}:*`]) {
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
}
