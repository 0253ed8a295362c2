import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { rmSync } from "node:fs";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { configPaths } from "../../src/config/index.ts";
import { createKeyAdmin } from "../../src/jobs/api-keys.ts";
import { createJobService } from "../../src/jobs/job-service.ts";
import { createFsBlobStore } from "../../src/storage/fs-blob-store.ts";
import { openSqliteStore } from "../../src/storage/sqlite.ts";
import { models, solidProvider, testConfig } from "./helpers.ts";

test("a process killed mid-generation leaves a job that restart marks failed, with its reservation released", async () => {
  const config = testConfig();
  const paths = configPaths(config);
  try {
    let store = await openSqliteStore(paths.dbFile);
    const admin = createKeyAdmin({ store });
    const { info } = await admin.create({ name: "crash", credits: 10 });
    const bystander = await admin.create({ name: "bystander", credits: 4 });
    await store.close();

    const child = spawn(process.execPath, ["--import", "tsx", fileURLToPath(new URL("./crash-child.ts", import.meta.url)), paths.dataDir, info.id], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    const jobId = await new Promise<string>((resolve, reject) => {
      let out = "";
      child.stdout.on("data", (d) => {
        out += d;
        const m = /RUNNING (job_\w+)/.exec(out);
        if (m) resolve(m[1]);
      });
      child.on("exit", (code) => reject(new Error(`child exited early with ${code}: ${out}`)));
    });
    const exited = new Promise((r) => child.on("exit", r));
    child.kill("SIGKILL");
    await exited;

    store = await openSqliteStore(paths.dbFile);
    const before = await store.getJob(jobId);
    assert.equal(before?.status, "running", "the dead process left its job running");
    assert.equal(await store.balance(info.id), 7_000, "3 credits were reserved");

    const svc = createJobService({ config, store, blobs: createFsBlobStore(paths.imagesDir), executor: () => solidProvider(), models });
    const { failed } = await svc.recoverCrashedJobs();
    assert.deepEqual(failed, [jobId]);
    const job = await store.getJob(jobId);
    assert.equal(job?.status, "failed");
    assert.equal(job?.errorCode, "E_INTERNAL");
    assert.equal(job?.creditsCharged, 0);
    assert.ok(job?.finishedAt);
    assert.equal(await store.balance(info.id), 10_000);
    assert.deepEqual(
      (await store.ledger(info.id)).map((e) => [e.kind, e.amount]),
      [["grant", 10_000], ["reserve", -3_000], ["release", 3_000]],
    );
    assert.equal(await store.balance(bystander.info.id), 4_000, "nothing else changed");
    assert.deepEqual(await store.listUnsettledJobs(), []);
    assert.deepEqual((await svc.recoverCrashedJobs()).failed, [], "recovery is idempotent");
    await svc.close();
    await store.close();
  } finally {
    rmSync(paths.dataDir, { recursive: true, force: true });
  }
});
