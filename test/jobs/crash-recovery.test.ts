import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { rmSync } from "node:fs";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { configPaths } from "../../src/config/index.ts";
import { createKeyAdmin } from "../../src/jobs/api-keys.ts";
import { createJobService } from "../../src/jobs/job-service.ts";
import { createFsBlobStore } from "../../src/storage/fs-blob-store.ts";
import { openSqliteStore } from "../../src/storage/sqlite.ts";
import { models, solidProvider, testConfig } from "./helpers.ts";

test("a job of a live process is kept by recovery; once that process is killed, restart marks it failed and releases its reservation", async () => {
  const config = testConfig();
  const paths = configPaths(config);
  let spawned: ChildProcess | undefined;
  try {
    let store = await openSqliteStore(paths.dbFile);
    const admin = createKeyAdmin({ store });
    const { info } = await admin.create({ name: "crash", credits: 10 });
    const bystander = await admin.create({ name: "bystander", credits: 4 });
    await store.close();

    const child = spawn(process.execPath, ["--import", "tsx", fileURLToPath(new URL("./crash-child.ts", import.meta.url)), paths.dataDir, info.id], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    spawned = child;
    const jobId = await new Promise<string>((resolve, reject) => {
      let out = "";
      child.stdout.on("data", (d) => {
        out += d;
        const m = /RUNNING (job_\w+)/.exec(out);
        if (m) resolve(m[1]);
      });
      child.on("exit", (code) => reject(new Error(`child exited early with ${code}: ${out}`)));
    });
    store = await openSqliteStore(paths.dbFile);
    const owner = (await store.getJob(jobId))?.owner;
    assert.match(owner ?? "", new RegExp(`^inst_[0-9a-f]+@.+:${child.pid}:`), "the running job names its owner");
    const svc = createJobService({ config, store, blobs: createFsBlobStore(paths.imagesDir), executor: () => solidProvider(), models });
    assert.deepEqual(await svc.recoverCrashedJobs(), { failed: [], kept: [jobId] }, "the owner still runs: its job is left alone");
    assert.equal((await store.getJob(jobId))?.status, "running");

    const exited = new Promise((r) => child.on("exit", r));
    child.kill("SIGKILL");
    await exited;

    const before = await store.getJob(jobId);
    assert.equal(before?.status, "running", "the dead process left its job running");
    assert.equal(await store.balance(info.id), 7_000, "3 credits were reserved");

    const { failed, kept } = await svc.recoverCrashedJobs();
    assert.deepEqual(failed, [jobId]);
    assert.deepEqual(kept, []);
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
    // A failed assertion must not leave the child running (it would keep this test process alive).
    if (spawned && spawned.exitCode === null && spawned.signalCode === null) spawned.kill("SIGKILL");
    rmSync(paths.dataDir, { recursive: true, force: true });
  }
});
