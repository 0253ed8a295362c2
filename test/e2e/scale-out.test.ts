/**
 * Scaled out on real servers: an API-only node (`easel serve --workers 0`) and `easel worker` processes sharing
 * PostgreSQL (a fresh database), Redis (a queue of its own) and one image directory, each a separate process on
 * loopback, with the micro SD1.5 checkpoint. A worker is killed with SIGKILL while it runs a job; the job is handed
 * to another worker once its lease runs out, the waiting HTTP caller gets its images, and the ledger holds one
 * reservation, one release and one charge. A job submitted without waiting shows the worker's progress on the API
 * node, and its completion webhook is delivered once. The crash trials (many jobs, many kills, S3, an API node killed) are in
 * crash-trials.test.ts. Skips, saying why, when PostgreSQL or Redis does not answer.
 *
 * A second cluster of its own (test/helpers/cluster.ts, 30 s leases) checks that workers advertise their models (an
 * API node refuses a model no live worker has, and admits it once one starts) and that SIGTERM on a worker, or on an
 * `easel serve` that runs jobs, hands the running job back to the queue: another worker finishes it long before the
 * lease would have run out.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { after, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { Redis } from "ioredis";
import OpenAI from "openai";
import pg from "pg";
import { Webhook } from "standardwebhooks";
import { createKeyAdmin } from "../../src/jobs/api-keys.ts";
import { openPostgresStore } from "../../src/storage/postgres.ts";
import { startCluster } from "../helpers/cluster.ts";
import { redisUnreachable } from "../helpers/redis.ts";

const BIN = fileURLToPath(new URL("../../bin/easel.js", import.meta.url));
const REDIS_URL = process.env.EASEL_TEST_REDIS_URL ?? "redis://127.0.0.1:6379/0";
const PG_ADMIN: pg.ClientConfig = { host: "127.0.0.1", port: 5432, database: "postgres", user: process.env.PGUSER ?? "postgres" };

async function unavailable(): Promise<string | undefined> {
  const c = new pg.Client({ ...PG_ADMIN, connectionTimeoutMillis: 2000 });
  try {
    await c.connect();
  } catch (e) {
    return `PostgreSQL not reachable at 127.0.0.1:5432: ${(e as Error).message}`;
  } finally {
    await c.end().catch(() => undefined);
  }
  const redis = await redisUnreachable(REDIS_URL);
  return redis === undefined ? undefined : `Redis not reachable at 127.0.0.1:6379: ${redis}`;
}

const why = await unavailable();
if (why !== undefined) {
  test("scale-out: API node and workers over PostgreSQL and Redis", { skip: why }, () => {});
} else {
  const run = `${process.pid}_${Date.now().toString(36)}`;
  const database = `easel_e2e_${run}`;
  const queueName = `e2e-${run}`;
  const root = mkdtempSync(join(tmpdir(), "easel-scale-"));
  const dataDir = join(root, "data");
  mkdirSync(join(dataDir, "models"), { recursive: true });
  symlinkSync(resolve("test/fixtures/models/sd15"), join(dataDir, "models", "sd15"));
  const databaseUrl = `postgres://${PG_ADMIN.user}@127.0.0.1:5432/${database}`;
  const children: ChildProcess[] = [];
  const stores: { close(): Promise<void> }[] = [];
  /** The API node and key of the first test, used again by the next. */
  let shared: { url: string; key: string; keyId: string; store: Awaited<ReturnType<typeof openPostgresStore>> } | undefined;

  const admin = new pg.Client(PG_ADMIN);
  await admin.connect();
  await admin.query(`create database ${database}`);

  after(async () => {
    const alive = children.filter((c) => c.exitCode === null && c.signalCode === null);
    for (const c of alive) c.kill("SIGKILL");
    await Promise.all(alive.map((c) => new Promise((r) => (c.exitCode === null && c.signalCode === null ? c.once("exit", r) : r(undefined)))));
    for (const s of stores) await s.close().catch(() => undefined);
    // Without FORCE: terminating a session this process is still closing would surface as an uncaught error here.
    // The killed processes' sessions end within moments.
    for (let i = 0; i < 100; i++) {
      const dropped = await admin.query(`drop database if exists ${database}`).then(
        () => true,
        () => false,
      );
      if (dropped) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    await admin.end();
    const r = new Redis(REDIS_URL);
    for (const pattern of [`easel:${queueName}:*`, `easel-fair:${queueName}:*`, `easel-events:${queueName}:*`]) {
      const keys = await r.keys(pattern);
      if (keys.length > 0) await r.del(...keys);
    }
    await r.quit();
    rmSync(root, { recursive: true, force: true });
  });

  /** Starts `easel <args>` sharing the database, queue and data directory; each process has its own graph cache. */
  function start(
    args: string[],
    ready: RegExp,
    name: string,
    cache = name,
  ): Promise<{ child: ChildProcess; match: RegExpExecArray; log: () => string }> {
    const env = {
      ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("EASEL_"))),
      EASEL_DATA_DIR: dataDir,
      EASEL_CACHE_DIR: join(root, `cache-${cache}`),
      EASEL_DATABASE_URL: databaseUrl,
      EASEL_REDIS_URL: REDIS_URL,
      EASEL_QUEUE_NAME: queueName,
      EASEL_QUEUE_LEASE_SECONDS: "2",
      EASEL_URL_SECRET: "scale-out-e2e-url-signing-secret-0123456789",
      EASEL_THREADS: "2",
    };
    const child = spawn(process.execPath, [BIN, ...args], { env, stdio: ["ignore", "ignore", "pipe"] });
    children.push(child);
    let err = "";
    return new Promise((resolvePromise, reject) => {
      child.stderr!.on("data", (d) => {
        err += d;
        const m = ready.exec(err);
        if (m) resolvePromise({ child, match: m, log: () => err });
      });
      child.on("exit", (code, signal) => reject(new Error(`${name} exited (${code ?? signal}) before it was ready: ${err}`)));
    });
  }

  test("a worker killed mid-job: the job finishes on another worker, the caller gets its images, one charge", { timeout: 240_000 }, async () => {
    // A metered key, created before the API node starts (with keys in the store it requires one).
    const store = await openPostgresStore({ connectionString: databaseUrl, max: 2 });
    stores.push(store);
    const { key, info } = await createKeyAdmin({ store }).create({ name: "scale-out", credits: 100 });

    const api = await start(["serve", "--workers", "0", "--port", "0"], /easel listening on (http:\/\/\S+)/, "api");
    const url = api.match[1];
    shared = { url, key, keyId: info.id, store };
    const workerA = await start(["worker"], /easel worker (\S+) ready/, "worker-a");

    // Enough steps that the job is still running when worker A is killed.
    const answer = fetch(`${url}/v1/images/generations`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${key}` },
      body: JSON.stringify({ model: "sd15", prompt: "a lighthouse", size: "64x64", steps: 60, n: 1, response_format: "url" }),
    });

    // Wait until worker A holds the job (its instance id, with its pid, is the running job's owner).
    let jobId: string | undefined;
    for (let i = 0; i < 3000 && !jobId; i++) {
      const jobs = await store.listJobs({ keyId: info.id, limit: 5 });
      const running = jobs.find((j) => j.status === "running" && j.owner === workerA.match[1]);
      if (running) jobId = running.id;
      else await new Promise((r) => setTimeout(r, 20));
    }
    assert.ok(jobId, `worker A never ran the job: ${workerA.log()}`);
    workerA.child.kill("SIGKILL");
    await new Promise((r) => workerA.child.once("exit", r));
    assert.equal((await store.getJob(jobId))?.status, "running", "the job was still running when its worker died");

    const workerB = await start(["worker"], /easel worker (\S+) ready/, "worker-b");
    const res = await answer;
    const text = await res.text();
    assert.equal(res.status, 200, text);
    assert.equal(res.headers.get("x-easel-job-id"), jobId);
    const data = (JSON.parse(text) as { data: { url: string }[] }).data;
    assert.equal(data.length, 1);
    const image = await fetch(data[0].url);
    assert.equal(image.status, 200, "the API node serves the image the other worker stored");
    assert.deepEqual([...Buffer.from(await image.arrayBuffer()).subarray(0, 4)], [0x89, 0x50, 0x4e, 0x47]);

    const job = await store.getJob(jobId);
    assert.equal(job?.status, "succeeded");
    assert.equal(job?.owner, workerB.match[1], "worker B finished it");
    assert.ok(job && job.creditsCharged > 0 && job.creditsCharged === job.creditsReserved);
    const ledger = (await store.ledger(info.id)).filter((e) => e.jobId === jobId);
    assert.deepEqual(ledger.map((e) => e.kind).sort(), ["charge", "release", "reserve"], "reserved once, released once, charged once");
    assert.equal(await store.balance(info.id), 100_000 - job.creditsCharged);
    assert.deepEqual(await store.listUnsettledJobs(), [], "nothing left queued or running");
  });

  test("OpenAI streaming on the API node: partial images of a job that runs on a worker arrive over Redis, then the image", { timeout: 120_000 }, async (t) => {
    if (!shared) return t.skip("needs the API node and worker of the previous test");
    const client = new OpenAI({ apiKey: shared.key, baseURL: `${shared.url}/v1`, maxRetries: 0 });
    const params = { model: "sd15", prompt: "a lighthouse", size: "64x64", stream: true, partial_images: 2, steps: 4 } as unknown as OpenAI.ImageGenerateParamsStreaming;
    const types: string[] = [];
    let final = "";
    for await (const ev of await client.images.generate(params)) {
      types.push(ev.type);
      if (ev.type === "image_generation.completed") final = ev.b64_json;
    }
    assert.deepEqual(types, ["image_generation.partial_image", "image_generation.partial_image", "image_generation.completed"]);
    assert.deepEqual([...Buffer.from(final, "base64").subarray(0, 4)], [0x89, 0x50, 0x4e, 0x47]);
  });

  test("a cancel on the API node reaches the worker running the job: cancelled between steps, nothing charged", { timeout: 120_000 }, async (t) => {
    if (!shared) return t.skip("needs the API node and worker of the first test");
    const { store, keyId, key, url } = shared;
    const auth = { authorization: `Bearer ${key}` };
    const answer = fetch(`${url}/v1/images/generations`, {
      method: "POST",
      headers: { "content-type": "application/json", ...auth },
      // Euler: valid at any step count here (the checkpoint's PNDM is not defined at 1000 steps).
      body: JSON.stringify({ model: "sd15", prompt: "cancel me", size: "64x64", steps: 500, scheduler: "euler", n: 1, response_format: "url" }),
    });
    let jobId: string | undefined;
    for (let i = 0; i < 3000 && !jobId; i++) {
      const job = (await store.listJobs({ keyId, limit: 5 })).find((j) => j.params.prompt === "cancel me");
      if (job?.status === "running") jobId = job.id;
      else await new Promise((r) => setTimeout(r, 10));
    }
    assert.ok(jobId, "the job started on a worker");
    const cancelled = await fetch(`${url}/v1/jobs/${jobId}/cancel`, { method: "POST", headers: auth });
    assert.equal(cancelled.status, 200, await cancelled.text());
    const res = await answer;
    assert.notEqual(res.status, 200, "the caller is told its job was cancelled");
    const job = await store.getJob(jobId);
    assert.equal(job?.status, "cancelled", `job ended ${job?.status}: ${job?.errorCode} ${job?.errorMessage}`);
    assert.equal(job?.creditsCharged, 0);
    assert.deepEqual(
      (await store.ledger(keyId)).filter((e) => e.jobId === jobId).map((e) => e.kind).sort(),
      ["release", "reserve"],
      "the reservation is released, nothing charged",
    );
  });

  test("not waiting, on the API node: 202 at once, progress and images from the worker, one signed webhook though every process drains the outbox", { timeout: 120_000 }, async (t) => {
    if (!shared) return t.skip("needs the API node and worker of the first test");
    const { store, keyId, key, url } = shared;
    const received: { headers: Record<string, string>; body: string }[] = [];
    const receiver = createServer((req, res) => {
      let body = "";
      req.on("data", (c) => (body += c));
      req.on("end", () => {
        received.push({ headers: req.headers as Record<string, string>, body });
        res.end();
      });
    });
    await new Promise<void>((r) => receiver.listen(0, "127.0.0.1", r));
    t.after(() => new Promise<void>((r) => receiver.close(() => r())));
    const admin = createKeyAdmin({ store });
    const { secret } = await admin.setWebhook(keyId, `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`);
    t.after(() => admin.setWebhook(keyId, null));

    const auth = { authorization: `Bearer ${key}` };
    const res = await fetch(`${url}/v1/jobs`, {
      method: "POST",
      headers: { "content-type": "application/json", ...auth },
      body: JSON.stringify({ dialect: "openai", model: "sd15", prompt: "async lighthouse", size: "64x64", steps: 40, scheduler: "euler" }),
    });
    assert.equal(res.status, 202, await res.clone().text());
    const { id } = (await res.json()) as { id: string };
    let sawProgress = false;
    let job: { status: string; progress: { step: number } | null; images: { url: string }[] } | undefined;
    for (let i = 0; i < 6000; i++) {
      job = (await (await fetch(`${url}/v1/jobs/${id}`, { headers: auth })).json()) as typeof job;
      if (job?.status === "running" && job.progress && job.progress.step > 0) sawProgress = true;
      if (job?.status !== "queued" && job?.status !== "running") break;
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.equal(job?.status, "succeeded");
    assert.ok(sawProgress, "the API node showed the progress the worker wrote");
    assert.equal((await fetch(job.images[0].url)).status, 200);

    for (let i = 0; i < 500 && received.length === 0; i++) await new Promise((r) => setTimeout(r, 20));
    // Both processes poll the outbox every second: long enough for a second delivery, if there were one.
    await new Promise((r) => setTimeout(r, 2500));
    assert.equal(received.length, 1, "delivered once");
    const event = new Webhook(secret!).verify(received[0].body, received[0].headers) as { type: string; data: { id: string } };
    assert.deepEqual([event.type, event.data.id, received[0].headers["webhook-id"]], ["job.succeeded", id, id]);
  });

  describe("model advertising and SIGTERM hand-back (30 s leases)", async () => {
    const SD15 = "test/fixtures/models/sd15";
    const cluster = await startCluster({ models: { sd15: SD15, sdxl: "test/fixtures/models/sdxl" }, leaseSeconds: 30, label: "handback" });
    after(() => cluster.close());
    const { store } = cluster;
    const { key, info } = await createKeyAdmin({ store }).create({ name: "handback", credits: 100 });
    const api = await cluster.apiNode("hb-api");
    const generate = (model: string, prompt: string, steps = 4, headers: Record<string, string> = {}, size = "64x64") =>
      fetch(`${api.url}/v1/images/generations`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${key}`, ...headers },
        body: JSON.stringify({ model, prompt, size, steps, scheduler: "euler", n: 1, response_format: "url" }),
      });
    /** The job of `prompt` once it runs (its owner is the process running it). */
    const running = async (prompt: string) => {
      for (let i = 0; i < 3000; i++) {
        const job = (await store.listJobs({ keyId: info.id, limit: 10 })).find((j) => j.params.prompt === prompt);
        if (job?.status === "running" && job.owner) return job;
        await new Promise((r) => setTimeout(r, 10));
      }
      assert.fail(`the job of "${prompt}" never ran`);
    };

    test("workers advertise their models: a model no live worker has is refused before admission, and admitted once one starts", { timeout: 120_000 }, async (t) => {
      const sd15Worker = await cluster.worker("hb-sd15", { models: { sd15: SD15 } });
      t.after(() => sd15Worker.kill("SIGKILL"));
      const balance = await store.balance(info.id);
      const refused = await generate("sdxl", "nobody has sdxl");
      const body = await refused.text();
      assert.equal(refused.status, 503, body);
      assert.match((JSON.parse(body) as { error: { message: string } }).error.message, /^No worker that has model "sdxl" is running/);
      assert.ok(Number(refused.headers.get("retry-after")) >= 1, "the caller is told when to retry");
      assert.equal((await store.listJobs({ keyId: info.id, limit: 10 })).length, 0, "nothing recorded");
      assert.equal(await store.balance(info.id), balance, "nothing reserved");

      const ok = await generate("sd15", "sd15 is served");
      assert.equal(ok.status, 200, await ok.text());
      assert.equal((await store.getJob(ok.headers.get("x-easel-job-id")!))?.owner, sd15Worker.instanceId);

      const sdxlWorker = await cluster.worker("hb-sdxl", { models: { sdxl: "test/fixtures/models/sdxl" } });
      t.after(() => sdxlWorker.kill("SIGKILL"));
      const idem = { "idempotency-key": `sdxl-${process.pid}` };
      const now = await generate("sdxl", "sdxl is served now", 4, idem);
      assert.equal(now.status, 200, await now.text());
      assert.equal((await store.getJob(now.headers.get("x-easel-job-id")!))?.owner, sdxlWorker.instanceId, "run by the worker that has sdxl");
      await sdxlWorker.kill("SIGTERM");
      assert.equal(sdxlWorker.child.exitCode, 0);
      assert.equal((await generate("sdxl", "sdxl gone again")).status, 503, "a stopped worker withdraws its models at once");
      // The retry of a settled job is answered whatever runs now; a new request with a key of its own is failed at once.
      const replay = await generate("sdxl", "sdxl is served now", 4, idem);
      assert.equal(replay.status, 200, await replay.text());
      assert.equal(replay.headers.get("x-easel-job-id"), now.headers.get("x-easel-job-id"));
      const before = await store.balance(info.id);
      const keyed = await generate("sdxl", "sdxl gone, with a key", 4, { "idempotency-key": `sdxl-new-${process.pid}` });
      assert.equal(keyed.status, 503, await keyed.text());
      const failed = (await store.listJobs({ keyId: info.id, limit: 10 })).find((j) => j.params.prompt === "sdxl gone, with a key");
      assert.equal(failed?.status, "failed", "recorded failed, never queued");
      assert.equal(failed?.errorCode, "E_OVERLOADED");
      assert.equal(await store.balance(info.id), before, "nothing charged");
      await sd15Worker.kill("SIGTERM");
    });

    test("SIGTERM on a worker mid-job: it exits, another worker takes the job at once (not after the 30 s lease), the caller gets its images, one charge", { timeout: 120_000 }, async (t) => {
      const workers = await Promise.all(["hb-a", "hb-b"].map((name) => cluster.worker(name, { models: { sd15: SD15 } })));
      for (const w of workers) t.after(() => w.kill("SIGKILL"));
      const answer = generate("sd15", "handed back", 600);
      answer.catch(() => undefined);
      const job = await running("handed back");
      const first = workers.find((w) => w.instanceId === job.owner)!;
      const second = workers.find((w) => w !== first)!;
      assert.ok(first, `run by one of the two workers: ${job.owner}`);
      const t0 = Date.now();
      await first.kill("SIGTERM");
      assert.equal(first.child.exitCode, 0, first.log());
      const res = await answer;
      const text = await res.text();
      assert.equal(res.status, 200, text);
      const seconds = (Date.now() - t0) / 1000;
      assert.ok(seconds < 20, `answered ${seconds.toFixed(1)} s after the SIGTERM: the job waited for its lease`);
      const done = await store.getJob(job.id);
      assert.equal(done?.status, "succeeded");
      assert.equal(done?.owner, second.instanceId, "the second worker finished it");
      assert.deepEqual(
        (await store.ledger(info.id)).filter((e) => e.jobId === job.id).map((e) => e.kind).sort(),
        ["charge", "release", "reserve"],
      );
      await second.kill("SIGTERM");
      assert.equal(second.child.exitCode, 0, "an idle worker stops at once too");
    });

    test("SIGTERM on easel serve --workers 1 mid-job: the job goes back to the queue, a worker finishes it, the caller on another node gets its images", { timeout: 240_000 }, async (t) => {
      const both = await cluster.apiNode("hb-serve-1", { workers: 1 });
      t.after(() => both.kill("SIGKILL"));
      // Only the serving node runs jobs until it stops. The job (1000 steps at 192x192, about 12 s on one thread) must
      // outlast the start of the worker (3-4 s, several times that on a loaded machine): at 64x64 it took about 3 s
      // and was sometimes finished by the serving node before the SIGTERM.
      const answer = generate("sd15", "served then handed back", 1000, {}, "192x192");
      answer.catch(() => undefined);
      const job = await running("served then handed back");
      const worker = await cluster.worker("hb-after", { models: { sd15: SD15 }, cache: "hb" });
      t.after(() => worker.kill("SIGKILL"));
      assert.ok(job.owner?.includes(`:${both.child.pid}:`), `run by the serving node: ${job.owner}`);
      assert.equal((await store.getJob(job.id))?.status, "running", "still running on the serving node when it is stopped");
      await both.kill("SIGTERM");
      assert.equal(both.child.exitCode, 0, both.log());
      const res = await answer;
      assert.equal(res.status, 200, await res.text());
      const done = await store.getJob(job.id);
      assert.equal(done?.status, "succeeded");
      assert.equal(done?.owner, worker.instanceId);
      await worker.kill("SIGTERM");
    });
  });
}
