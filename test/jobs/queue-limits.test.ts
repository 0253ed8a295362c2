/**
 * The job service under load: keys take turns (one key's flood does not starve another), the queue is bounded
 * server-wide and per key (refusals carry Retry-After and leave nothing behind), and a job that runs too long is
 * stopped in its executor and answered E_TIMEOUT with its credits released.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import Database from "better-sqlite3";
import { configPaths } from "../../src/config/index.ts";
import type { GenerationRequest } from "../../src/core/types.ts";
import type { ImageProvider, ProviderGenerateOptions } from "../../src/providers/spec.ts";
import { harness } from "./harness.ts";
import { request, solidProvider, testConfig } from "./helpers.ts";
import { httpHarness, keyHeaders } from "./http-harness.ts";

const tick = (ms = 10) => new Promise((r) => setTimeout(r, ms));

/** Waits until `cond` holds, failing (instead of hanging) after 10 s. */
async function until(cond: () => boolean | Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await tick(2);
  }
}

test("a second key's small job starts before the tail of another key's flood", { timeout: 60_000 }, async (t) => {
  const starts: { prompt: string; at: number }[] = [];
  const provider = solidProvider({ delayMs: 15, onStart: (req) => starts.push({ prompt: req.prompt, at: performance.now() }) });
  const config = testConfig({ limits: { maxQueuedPerKey: 50 } });
  const h = await harness({ provider, config, concurrency: 1 });
  try {
    const flooder = await h.svc.authenticate((await h.admin.create({ name: "flood" })).key);
    const other = await h.svc.authenticate((await h.admin.create({ name: "small" })).key);
    const t0 = performance.now();
    const flood = Array.from({ length: 20 }, (_, i) => h.svc.generate(request({ n: 10, prompt: `flood ${i}` }), { dialect: "openai", principal: flooder }));
    await until(() => starts.length > 0, "the flood runs");
    const submitted = performance.now();
    const small = await h.svc.generate(request({ n: 1, prompt: "small" }), { dialect: "openai", principal: other });
    const answered = performance.now();
    await Promise.all(flood);
    const done = performance.now();
    const order = starts.map((s) => s.prompt);
    const at = order.indexOf("small");
    t.diagnostic(
      `small job: start #${at + 1} of ${order.length}, started ${(starts[at].at - submitted).toFixed(0)} ms after it was sent, ` +
        `answered in ${(answered - submitted).toFixed(0)} ms; the flood took ${(done - t0).toFixed(0)} ms`,
    );
    assert.equal(order.length, 21);
    assert.equal(at, 1, `the small job starts right after the flood job that was running: ${order.join(", ")}`);
    assert.deepEqual(order.filter((p) => p !== "small"), Array.from({ length: 20 }, (_, i) => `flood ${i}`), "one key's jobs keep their order");
    assert.equal(small.images.length, 1);
  } finally {
    await h.dispose();
  }
});

/** Rows in the jobs table for a key (refused requests must leave none). */
function jobRows(dbFile: string, keyId: string): number {
  const db = new Database(dbFile, { readonly: true });
  try {
    return (db.prepare("select count(*) as n from jobs where key_id = ?").get(keyId) as { n: number }).n;
  } finally {
    db.close();
  }
}

test("queue bounds: per key 429 and server-wide 503, each with Retry-After, nothing charged or recorded", { timeout: 60_000 }, async () => {
  let open!: () => void;
  const gate = new Promise<void>((r) => (open = r));
  let running = 0;
  const provider = solidProvider({ gate, onStart: () => running++ });
  // Two run at once (the harness's concurrency), one may wait in all, one per key; a request costs 64 credits.
  const h = await httpHarness({ provider, config: { queue: { maxQueued: 1 }, limits: { maxQueuedPerKey: 1 } } });
  try {
    const a = await h.admin.create({ name: "a", credits: 1000 });
    const b = await h.admin.create({ name: "b", credits: 100, rateLimitPerMinute: 1 });
    const body = { model: "sd15", prompt: "a lighthouse", size: "64x64", response_format: "b64_json" };
    const send = (key: string) => h.app.inject({ method: "POST", url: "/v1/images/generations", headers: keyHeaders(key), payload: body });
    const inFlight = [send(a.key), send(a.key)];
    await until(() => running === 2, "two jobs run");
    inFlight.push(send(a.key));
    await until(async () => (await h.store.listUnsettledJobs()).length === 3, "a third job waits");
    const balanceA = await h.svc.remainingCredits({ keyId: a.info.id, name: "a", remainingCredits: null });
    const dbFile = configPaths(h.config).dbFile;

    const perKey = await send(a.key);
    assert.equal(perKey.statusCode, 429, perKey.body);
    assert.equal(perKey.headers["x-easel-error-code"], "E_RATE_LIMITED");
    assert.ok(Number(perKey.headers["retry-after"]) >= 1, `Retry-After: ${perKey.headers["retry-after"]}`);
    assert.equal(JSON.parse(perKey.body).error.code, "rate_limit_exceeded");
    assert.equal(await h.svc.remainingCredits({ keyId: a.info.id, name: "a", remainingCredits: null }), balanceA, "nothing reserved");
    assert.equal(jobRows(dbFile, a.info.id), 3, "the refused request left no job");

    const serverWide = await send(b.key);
    assert.equal(serverWide.statusCode, 503, serverWide.body);
    assert.equal(serverWide.headers["x-easel-error-code"], "E_OVERLOADED");
    assert.ok(Number(serverWide.headers["retry-after"]) >= 1, `Retry-After: ${serverWide.headers["retry-after"]}`);
    assert.equal(jobRows(dbFile, b.info.id), 0);
    assert.deepEqual((await h.store.ledger(b.info.id)).map((e) => e.kind), ["grant"], "no reservation, no charge");
    assert.equal(h.provider.calls, 2);

    open();
    for (const r of await Promise.all(inFlight)) assert.equal(r.statusCode, 200, r.body);
    // B's limit is 1 request per minute: the refusal did not use it.
    const later = await send(b.key);
    assert.equal(later.statusCode, 200, later.body);
    assert.equal(jobRows(dbFile, b.info.id), 1);
    assert.deepEqual(await h.store.listUnsettledJobs(), []);
  } finally {
    await h.dispose();
  }
});

test("a job past queue.jobTimeoutSeconds is cancelled in its executor and settles E_TIMEOUT, credits released", { timeout: 60_000 }, async () => {
  const seen: { reason?: unknown } = {};
  // Stands in for the engine: runs until its signal aborts, then rejects as the engine does.
  const provider: Pick<ImageProvider, "generate"> = {
    generate: (_req: GenerationRequest, o: ProviderGenerateOptions) =>
      new Promise((_, reject) => {
        o.signal?.addEventListener("abort", () => {
          seen.reason = o.signal?.reason;
          reject(Object.assign(new Error("generation cancelled"), { name: "AbortError" }));
        });
      }),
  };
  const h = await harness({ provider, config: testConfig({ queue: { jobTimeoutSeconds: 0.2 } }) });
  try {
    const { key, info } = await h.admin.create({ name: "k", credits: 3 });
    const principal = await h.svc.authenticate(key);
    let jobId = "";
    const err = await h.svc.generate(request(), { dialect: "openai", principal, onEvent: (e) => void (jobId ||= e.jobId) }).catch((e) => e);
    assert.equal(err.code, "E_TIMEOUT");
    assert.equal(err.status, 504);
    assert.equal((seen.reason as { code?: string }).code, "E_TIMEOUT", "the executor's signal was aborted with the timeout");
    const job = await h.svc.getJob(jobId, principal);
    assert.ok(job.finishedAt! - job.createdAt >= 200, `stopped ${job.finishedAt! - job.createdAt} ms after admission`);
    assert.equal(job.status, "failed");
    assert.equal(job.error?.code, "E_TIMEOUT");
    assert.equal(job.creditsCharged, 0);
    assert.equal(await h.svc.remainingCredits(principal), 3);
    assert.deepEqual((await h.store.ledger(info.id)).map((e) => e.kind), ["grant", "reserve", "release"]);
  } finally {
    await h.dispose();
  }
});

test("limits.requestsPerMinute applies to keys created without a rate limit of their own (maxConcurrent likewise, in the store contract)", async () => {
  const h = await harness({ provider: solidProvider(), config: testConfig({ limits: { requestsPerMinute: 1, maxConcurrent: 1 } }) });
  try {
    const plain = await h.svc.authenticate((await h.admin.create({ name: "plain" })).key);
    const own = await h.svc.authenticate((await h.admin.create({ name: "own", rateLimitPerMinute: 5 })).key);
    await h.svc.generate(request(), { dialect: "openai", principal: plain });
    const err = await h.svc.generate(request(), { dialect: "openai", principal: plain }).catch((e) => e);
    assert.equal(err.code, "E_RATE_LIMITED");
    assert.equal(err.details.limit, "requests_per_minute");
    assert.ok(err.details.retryAfterSeconds >= 1);
    for (let i = 0; i < 3; i++) await h.svc.generate(request(), { dialect: "openai", principal: own });
  } finally {
    await h.dispose();
  }
});
