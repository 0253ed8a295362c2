/**
 * The MetadataStore contract suite. Every driver runs it: `runMetadataStoreContract(() => openMyStore())`, where
 * each call returns a new, empty, migrated store. Amounts are millicredits.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { Admission, MetadataStore, NewKey } from "../../src/storage/metadata-store.ts";

const T0 = 1_700_000_000_000;

function newKey(id: string, over: Partial<NewKey> = {}): NewKey {
  return {
    id,
    name: `name-${id}`,
    prefix: `esk_${id}`.slice(0, 12),
    hash: `hash-${id}`.padEnd(64, "0"),
    createdAt: T0,
    metered: true,
    initialCredits: 10_000,
    rateLimitPerMinute: null,
    maxConcurrent: null,
    ...over,
  };
}

function admission(jobId: string, keyId: string | null, cost: number, now = T0, over: Partial<Admission> = {}): Admission {
  return { job: { id: jobId, keyId, dialect: "openai", model: "sd15", params: { prompt: "a cat", n: 1 } }, cost, now, ...over };
}

export function runMetadataStoreContract(name: string, makeStore: () => Promise<MetadataStore>): void {
  const withStore = (title: string, fn: (s: MetadataStore) => Promise<void>) =>
    test(`${name}: ${title}`, async () => {
      const s = await makeStore();
      try {
        await fn(s);
      } finally {
        await s.close();
      }
    });

  withStore("keys: create, find by hash, list, count, revoke once", async (s) => {
    assert.equal(await s.countKeys(), 0);
    const k = await s.createKey(newKey("k1", { rateLimitPerMinute: 5, maxConcurrent: 2 }));
    assert.equal(k.revokedAt, null);
    assert.deepEqual(await s.getKey("k1"), k);
    const found = await s.findKeyByHash(newKey("k1").hash);
    assert.equal(found?.key.id, "k1");
    assert.equal(found?.hash, newKey("k1").hash);
    assert.equal(found?.key.rateLimitPerMinute, 5);
    assert.equal(found?.key.maxConcurrent, 2);
    assert.equal(await s.findKeyByHash("f".repeat(64)), undefined);
    await s.createKey(newKey("k2", { createdAt: T0 + 1, metered: false }));
    assert.deepEqual((await s.listKeys()).map((x) => x.id), ["k1", "k2"]);
    assert.equal(await s.countKeys(), 2);
    assert.equal((await s.revokeKey("k1", T0 + 5))?.revokedAt, T0 + 5);
    assert.equal((await s.revokeKey("k1", T0 + 9))?.revokedAt, T0 + 5, "revocation time is kept");
    assert.equal(await s.revokeKey("nope", T0), undefined);
    assert.equal(await s.countKeys(), 2, "revoked keys still count");
    await assert.rejects(s.createKey(newKey("k3", { hash: newKey("k1").hash })), "hashes are unique");
  });

  withStore("ledger: balance is the sum of entries; unmetered keys have none", async (s) => {
    await s.createKey(newKey("k1"));
    await s.createKey(newKey("u1", { metered: false, initialCredits: 0 }));
    assert.equal(await s.balance("k1"), 10_000);
    assert.equal(await s.addCredits("k1", 2_500, "top-up", T0 + 1), 12_500);
    assert.equal(await s.addCredits("k1", -500, "correction", T0 + 2), 12_000);
    await assert.rejects(s.addCredits("k1", -20_000, null, T0 + 3), /negative/);
    await assert.rejects(s.addCredits("u1", 5, null, T0 + 3));
    await assert.rejects(s.addCredits("missing", 5, null, T0 + 3));
    assert.equal(await s.balance("u1"), null);
    const l = await s.ledger("k1");
    assert.deepEqual(l.map((e) => [e.kind, e.amount]), [["grant", 10_000], ["grant", 2_500], ["charge", -500]]);
    assert.equal(l.reduce((a, e) => a + e.amount, 0), await s.balance("k1"));
  });

  withStore("admit reserves, success releases and charges, settling twice changes nothing", async (s) => {
    await s.createKey(newKey("k1"));
    const r = await s.admitJob(admission("j1", "k1", 3_000));
    assert.deepEqual(r, { status: "admitted", remaining: 7_000 });
    assert.equal(await s.balance("k1"), 7_000);
    const j = await s.getJob("j1");
    assert.equal(j?.status, "queued");
    assert.equal(j?.creditsReserved, 3_000);
    assert.deepEqual(j?.params, { prompt: "a cat", n: 1 });
    assert.equal(j?.dialect, "openai");
    assert.equal(await s.markJobRunning("j1", T0 + 10), true);
    assert.equal(await s.markJobRunning("j1", T0 + 11), false);
    const img = { id: "a".repeat(64), mime: "image/png", format: "png", width: 8, height: 8, size: 100, createdAt: T0 + 20 };
    const result = { seed: 42, images: [{ id: img.id, mime: "image/png", format: "png", width: 8, height: 8, seed: 42 }], warnings: [] };
    const st = await s.settleJob({ jobId: "j1", status: "succeeded", at: T0 + 20, charged: 3_000, seed: 42, result, images: [img] });
    assert.deepEqual(st, { settled: true, remaining: 7_000 });
    const again = await s.settleJob({ jobId: "j1", status: "failed", at: T0 + 30, charged: 0, error: { code: "E_INTERNAL", message: "x" } });
    assert.equal(again.settled, false);
    const done = await s.getJob("j1");
    assert.equal(done?.status, "succeeded");
    assert.equal(done?.seed, 42);
    assert.equal(done?.creditsCharged, 3_000);
    assert.deepEqual(done?.imageIds, [img.id]);
    assert.deepEqual(done?.result, result);
    assert.equal(done?.startedAt, T0 + 10);
    assert.equal(done?.finishedAt, T0 + 20);
    assert.equal(done?.errorCode, null);
    assert.deepEqual(
      (await s.ledger("k1")).map((e) => [e.kind, e.amount, e.jobId]),
      [["grant", 10_000, null], ["reserve", -3_000, "j1"], ["release", 3_000, "j1"], ["charge", -3_000, "j1"]],
    );
    assert.deepEqual(await s.getImage(img.id), img);
  });

  withStore("job owner: recorded at admission, replaced when marked running, listed with unsettled jobs", async (s) => {
    await s.admitJob(admission("j1", null, 0, T0, { job: { id: "j1", keyId: null, dialect: "openai", model: "sd15", params: {}, owner: "inst_a" } }));
    await s.admitJob(admission("j2", null, 0));
    assert.equal((await s.getJob("j1"))?.owner, "inst_a");
    assert.equal((await s.getJob("j2"))?.owner, null, "no owner given");
    assert.equal(await s.markJobRunning("j1", T0 + 1, "inst_b"), true);
    assert.equal(await s.markJobRunning("j2", T0 + 1), true);
    assert.deepEqual(
      (await s.listUnsettledJobs()).map((j) => [j.id, j.status, j.owner]),
      [["j1", "running", "inst_b"], ["j2", "running", null]],
    );
    // A running job whose owner lost it is taken over; a queued or settled one is not.
    await s.admitJob(admission("j3", null, 0));
    assert.equal(await s.takeOverJob("j3", "inst_c"), false, "queued: not taken over");
    assert.equal(await s.takeOverJob("j1", "inst_c"), true);
    assert.deepEqual([(await s.getJob("j1"))?.owner, (await s.getJob("j1"))?.startedAt], ["inst_c", T0 + 1]);
    await s.settleJob({ jobId: "j1", status: "succeeded", at: T0 + 2, charged: 0 });
    assert.equal((await s.getJob("j1"))?.owner, "inst_c", "the owner stays on the settled record");
    assert.equal(await s.takeOverJob("j1", "inst_d"), false, "settled: not taken over");
  });

  withStore("failure and cancellation release the reservation", async (s) => {
    await s.createKey(newKey("k1"));
    await s.admitJob(admission("j1", "k1", 4_000));
    await s.admitJob(admission("j2", "k1", 4_000));
    assert.equal(await s.balance("k1"), 2_000);
    assert.deepEqual((await s.listUnsettledJobs()).map((j) => j.id).sort(), ["j1", "j2"]);
    await s.settleJob({ jobId: "j1", status: "failed", at: T0 + 1, charged: 999, error: { code: "E_ENGINE_FAILED", message: "boom" } });
    await s.settleJob({ jobId: "j2", status: "cancelled", at: T0 + 1, charged: 0, error: { code: "E_CANCELLED", message: "c" } });
    assert.equal(await s.balance("k1"), 10_000);
    const j1 = await s.getJob("j1");
    assert.equal(j1?.creditsCharged, 0, "a failed job is never charged");
    assert.equal(j1?.errorCode, "E_ENGINE_FAILED");
    assert.equal((await s.getJob("j2"))?.status, "cancelled");
    assert.deepEqual(await s.listUnsettledJobs(), []);
  });

  withStore("insufficient credits, revoked key, open-mode job", async (s) => {
    await s.createKey(newKey("k1", { initialCredits: 1_000 }));
    assert.deepEqual(await s.admitJob(admission("j1", "k1", 1_001)), { status: "insufficient_credits", balance: 1_000, cost: 1_001 });
    assert.equal(await s.getJob("j1"), undefined, "a refused request leaves no job");
    await s.createKey(newKey("k0", { hash: "d".repeat(64), initialCredits: 0 }));
    assert.deepEqual(await s.admitJob(admission("j0", "k0", 0)), { status: "insufficient_credits", balance: 0, cost: 0 }, "an empty key is refused even at cost 0");
    await s.revokeKey("k1", T0);
    assert.deepEqual(await s.admitJob(admission("j2", "k1", 1)), { status: "key_revoked" });
    assert.deepEqual(await s.admitJob(admission("j3", null, 5_000)), { status: "admitted", remaining: null });
    assert.equal((await s.getJob("j3"))?.creditsReserved, 0);
    assert.equal((await s.getJob("j3"))?.keyId, null);
  });

  withStore("50 concurrent admissions with credits for 10 admit exactly 10", async (s) => {
    await s.createKey(newKey("k1", { initialCredits: 10_000 }));
    const results = await Promise.all(Array.from({ length: 50 }, (_, i) => s.admitJob(admission(`j${i}`, "k1", 1_000))));
    assert.equal(results.filter((r) => r.status === "admitted").length, 10);
    assert.equal(results.filter((r) => r.status === "insufficient_credits").length, 40);
    assert.equal(await s.balance("k1"), 0);
    assert.equal((await s.listUnsettledJobs()).length, 10);
  });

  withStore("requests-per-minute window and concurrent-job limit", async (s) => {
    await s.createKey(newKey("k1", { rateLimitPerMinute: 3 }));
    for (let i = 0; i < 3; i++) assert.equal((await s.admitJob(admission(`j${i}`, "k1", 0, T0 + i * 1000))).status, "admitted");
    assert.deepEqual(await s.admitJob(admission("j3", "k1", 0, T0 + 3000)), {
      status: "rate_limited",
      limit: "requests_per_minute",
      retryAfterMs: 57_000,
    });
    assert.equal((await s.admitJob(admission("j4", "k1", 0, T0 + 60_000))).status, "admitted", "the first request left the window");
    assert.equal((await s.admitJob(admission("j5", "k1", 0, T0 + 60_500))).status, "rate_limited");

    await s.createKey(newKey("k2", { hash: "b".repeat(64), maxConcurrent: 2 }));
    assert.equal((await s.admitJob(admission("c1", "k2", 0))).status, "admitted");
    assert.equal((await s.admitJob(admission("c2", "k2", 0))).status, "admitted");
    const third = await s.admitJob(admission("c3", "k2", 0));
    assert.equal(third.status, "rate_limited");
    assert.equal(third.status === "rate_limited" && third.limit, "concurrent_jobs");
    await s.settleJob({ jobId: "c1", status: "succeeded", at: T0 + 1, charged: 0 });
    assert.equal((await s.admitJob(admission("c4", "k2", 0))).status, "admitted");
  });

  withStore("default limits apply to keys without their own; a key's own limit wins", async (s) => {
    const defaultLimits = { requestsPerMinute: 2, maxConcurrent: 1 };
    await s.createKey(newKey("plain"));
    await s.createKey(newKey("own", { hash: "d".repeat(64), rateLimitPerMinute: 3, maxConcurrent: 5 }));
    const admit = (id: string, key: string | null, at: number) => s.admitJob(admission(id, key, 0, at, { defaultLimits }));
    assert.equal((await admit("p1", "plain", T0)).status, "admitted");
    const busy = await admit("p2", "plain", T0 + 1);
    assert.equal(busy.status === "rate_limited" && busy.limit, "concurrent_jobs", "the default concurrency limit (1)");
    await s.settleJob({ jobId: "p1", status: "succeeded", at: T0 + 2, charged: 0 });
    assert.equal((await admit("p3", "plain", T0 + 3)).status, "admitted");
    await s.settleJob({ jobId: "p3", status: "succeeded", at: T0 + 4, charged: 0 });
    const perMin = await admit("p4", "plain", T0 + 5);
    assert.equal(perMin.status === "rate_limited" && perMin.limit, "requests_per_minute", "the default window (2 per minute)");
    for (let i = 0; i < 3; i++) assert.equal((await admit(`o${i}`, "own", T0 + i)).status, "admitted", "own limits: 3/min, 5 at once");
    assert.equal((await admit("o3", "own", T0 + 10)).status, "rate_limited");
    assert.equal((await admit("open1", null, T0)).status, "admitted", "open mode has no key limits");
    assert.equal((await admit("open2", null, T0)).status, "admitted");
  });

  withStore("idempotency: replay, conflict, retry after a server error, purge", async (s) => {
    await s.createKey(newKey("k1"));
    const idem = (bodyHash: string) => ({ idempotency: { key: "abc", bodyHash, replayable: (j: { status: string }) => j.status === "succeeded" } });
    assert.equal((await s.admitJob(admission("j1", "k1", 1_000, T0, idem("h1")))).status, "admitted");
    assert.deepEqual(await s.admitJob(admission("j2", "k1", 1_000, T0, idem("h1"))), { status: "replay", jobId: "j1" }, "in flight");
    assert.deepEqual(await s.admitJob(admission("j3", "k1", 1_000, T0, idem("h2"))), { status: "idempotency_conflict", jobId: "j1" });
    assert.equal(await s.balance("k1"), 9_000, "replays and conflicts reserve nothing");
    await s.settleJob({ jobId: "j1", status: "failed", at: T0 + 1, charged: 0, error: { code: "E_INTERNAL", message: "x" } });
    assert.equal((await s.admitJob(admission("j4", "k1", 1_000, T0 + 2, idem("h1")))).status, "admitted", "not replayable: new attempt");
    await s.settleJob({ jobId: "j4", status: "succeeded", at: T0 + 3, charged: 1_000 });
    assert.deepEqual(await s.admitJob(admission("j5", "k1", 1_000, T0 + 4, idem("h1"))), { status: "replay", jobId: "j4" });
    // The same idempotency key under another key (or open mode) is another scope.
    await s.createKey(newKey("k2", { hash: "c".repeat(64) }));
    assert.equal((await s.admitJob(admission("j6", "k2", 1_000, T0, idem("h9")))).status, "admitted");
    assert.equal((await s.admitJob(admission("j7", null, 0, T0, idem("h9")))).status, "admitted");
    assert.equal(await s.purgeIdempotency(T0 + 1), 2, "only records older than the cut-off");
    assert.equal(await s.purgeIdempotency(T0 + 3), 1);
    assert.equal((await s.admitJob(admission("j8", "k1", 1_000, T0 + 5, idem("h2")))).status, "admitted", "forgotten after purge");
  });

  withStore("listJobs: one key's jobs, newest first, page after page; open mode's jobs apart", async (s) => {
    await s.createKey(newKey("k1"));
    await s.createKey(newKey("k2", { hash: "e".repeat(64) }));
    // j2 and j3 share a millisecond: the id breaks the tie.
    const times: [string, string | null, number][] = [
      ["j1", "k1", T0 + 1],
      ["j3", "k1", T0 + 2],
      ["j2", "k1", T0 + 2],
      ["j4", "k1", T0 + 3],
      ["x1", "k2", T0 + 4],
      ["o1", null, T0 + 5],
      ["j5", "k1", T0 + 6],
    ];
    for (const [id, key, at] of times) assert.equal((await s.admitJob(admission(id, key, 10, at))).status, "admitted");
    await s.settleJob({ jobId: "j4", status: "failed", at: T0 + 7, charged: 0, error: { code: "E_ENGINE_FAILED", message: "x" } });
    const ids = async (q: Parameters<MetadataStore["listJobs"]>[0]) => (await s.listJobs(q)).map((j) => j.id);
    assert.deepEqual(await ids({ keyId: "k1", limit: 10 }), ["j5", "j4", "j3", "j2", "j1"]);
    const first = await s.listJobs({ keyId: "k1", limit: 2 });
    assert.deepEqual(first.map((j) => j.id), ["j5", "j4"]);
    assert.equal(first[1].status, "failed", "rows are whole job rows");
    assert.equal(first[1].errorCode, "E_ENGINE_FAILED");
    const last = first[first.length - 1];
    assert.deepEqual(await ids({ keyId: "k1", limit: 2, before: { createdAt: last.createdAt, id: last.id } }), ["j3", "j2"]);
    assert.deepEqual(await ids({ keyId: "k1", limit: 2, before: { createdAt: T0 + 2, id: "j3" } }), ["j2", "j1"]);
    assert.deepEqual(await ids({ keyId: "k1", limit: 2, before: { createdAt: T0 + 1, id: "j1" } }), []);
    assert.deepEqual(await ids({ keyId: "k2", limit: 10 }), ["x1"]);
    assert.deepEqual(await ids({ keyId: null, limit: 10 }), ["o1"]);
    assert.deepEqual(await ids({ keyId: "nobody", limit: 10 }), []);
  });

  withStore("deleteJob: forgets the job and its idempotency record; images another job shares stay", async (s) => {
    await s.createKey(newKey("k1"));
    const idem = { idempotency: { key: "i1", bodyHash: "h1", replayable: (j: { status: string }) => j.status === "succeeded" } };
    await s.admitJob(admission("j1", "k1", 10, T0, idem));
    await s.admitJob(admission("j2", "k1", 10, T0 + 1));
    const a = { id: "a".repeat(64), mime: "image/png", format: "png", width: 4, height: 4, size: 10, createdAt: T0 };
    const b = { ...a, id: "b".repeat(64) };
    const result = (...rows: (typeof a)[]) => ({ seed: 1, warnings: [], images: rows.map((r) => ({ ...r, seed: 1 })) });
    await s.settleJob({ jobId: "j1", status: "succeeded", at: T0 + 2, charged: 10, images: [a, b], result: result(a, b) });
    await s.settleJob({ jobId: "j2", status: "succeeded", at: T0 + 3, charged: 10, images: [a], result: result(a) });
    const balance = await s.balance("k1");
    assert.deepEqual(await s.deleteJob("j1"), { deleted: true, orphanedImageIds: [b.id] });
    assert.equal(await s.getJob("j1"), undefined);
    assert.deepEqual((await s.listJobs({ keyId: "k1", limit: 10 })).map((j) => j.id), ["j2"]);
    assert.equal((await s.getImage(a.id))?.id, a.id, "j2 still shows these bytes");
    assert.equal(await s.getImage(b.id), undefined);
    assert.equal(await s.balance("k1"), balance, "the ledger is untouched");
    assert.equal((await s.admitJob(admission("j3", "k1", 10, T0 + 4, idem))).status, "admitted", "the key is free again");
    assert.deepEqual(await s.deleteJob("j1"), { deleted: false, orphanedImageIds: [] });
    assert.deepEqual(await s.deleteJob("j2"), { deleted: true, orphanedImageIds: [a.id] });
  });

  withStore("images: rows refresh on re-store, listed by age, deleted", async (s) => {
    await s.admitJob(admission("j1", null, 0));
    await s.admitJob(admission("j2", null, 0));
    const a = { id: "a".repeat(64), mime: "image/png", format: "png", width: 4, height: 4, size: 10, createdAt: T0 };
    const b = { ...a, id: "b".repeat(64), createdAt: T0 + 100 };
    await s.settleJob({ jobId: "j1", status: "succeeded", at: T0, charged: 0, images: [a, b] });
    assert.deepEqual((await s.listImagesBefore(T0 + 50, 10)).map((r) => r.id), [a.id]);
    await s.settleJob({ jobId: "j2", status: "succeeded", at: T0 + 200, charged: 0, images: [{ ...a, createdAt: T0 + 200 }] });
    assert.equal((await s.getImage(a.id))?.createdAt, T0 + 200, "the same bytes stored again are young again");
    assert.deepEqual((await s.listImagesBefore(T0 + 1000, 10)).map((r) => r.id), [b.id, a.id]);
    await s.deleteImages([a.id]);
    assert.equal(await s.getImage(a.id), undefined);
    assert.equal((await s.getImage(b.id))?.id, b.id);
  });

  withStore("progress: recorded while running, kept after, ignored when not running", async (s) => {
    await s.admitJob(admission("j1", null, 0));
    await s.setJobProgress("j1", 1, 4);
    assert.equal((await s.getJob("j1"))?.progress, null, "a queued job has no progress yet");
    await s.markJobRunning("j1", T0 + 1);
    await s.setJobProgress("j1", 2, 4);
    assert.deepEqual((await s.getJob("j1"))?.progress, { step: 2, totalSteps: 4 });
    await s.settleJob({ jobId: "j1", status: "failed", at: T0 + 2, charged: 0, error: { code: "E_X", message: "x" } });
    await s.setJobProgress("j1", 3, 4);
    assert.deepEqual((await s.getJob("j1"))?.progress, { step: 2, totalSteps: 4 });
  });

  withStore("webhooks: settling a job of a key with a webhook queues one delivery, claimed by one caller at a time", async (s) => {
    await s.createKey(newKey("k1"));
    await s.createKey(newKey("k2"));
    assert.equal((await s.setKeyWebhook("k1", { url: "http://127.0.0.1:9/hook", secret: "whsec_abc" }))?.webhookUrl, "http://127.0.0.1:9/hook");
    assert.equal(await s.setKeyWebhook("nobody", null), undefined);
    await s.admitJob(admission("j1", "k1", 10));
    await s.admitJob(admission("j2", "k2", 10));
    assert.equal(await s.claimWebhookDelivery(T0 + 10, 1000), undefined, "nothing settled yet");
    await s.settleJob({ jobId: "j1", status: "failed", at: T0 + 5, charged: 0, error: { code: "E_X", message: "x" } });
    await s.settleJob({ jobId: "j2", status: "failed", at: T0 + 5, charged: 0, error: { code: "E_X", message: "x" } });
    // Settling twice changes nothing, so the event is queued once.
    await s.settleJob({ jobId: "j1", status: "failed", at: T0 + 6, charged: 0, error: { code: "E_X", message: "x" } });
    const d = await s.claimWebhookDelivery(T0 + 10, 1000);
    assert.deepEqual(d, { jobId: "j1", keyId: "k1", attempts: 0, createdAt: T0 + 5, url: "http://127.0.0.1:9/hook", secret: "whsec_abc" });
    assert.equal(await s.claimWebhookDelivery(T0 + 20, 1000), undefined, "claimed: no one else gets it, and k2 has no webhook");
    assert.equal((await s.claimWebhookDelivery(T0 + 1011, 1000))?.jobId, "j1", "a claim that ran out (its holder died) is taken again");
    await s.finishWebhookDelivery("j1", { retryAt: T0 + 5000, at: T0 + 1012, error: "HTTP 500" });
    assert.equal(await s.claimWebhookDelivery(T0 + 4999, 1000), undefined, "not due before its retry time");
    assert.equal((await s.claimWebhookDelivery(T0 + 5000, 1000))?.attempts, 1);
    await s.finishWebhookDelivery("j1", { deliveredAt: T0 + 5001 });
    assert.equal(await s.claimWebhookDelivery(T0 + 99_999, 1000), undefined, "delivered: never again");
    await s.setKeyWebhook("k1", null);
    assert.equal((await s.getKey("k1"))?.webhookUrl, null);
  });

  withStore("webhooks: a delivery given up is never due again", async (s) => {
    await s.createKey(newKey("k1"));
    await s.setKeyWebhook("k1", { url: "https://example.test/h", secret: "whsec_x" });
    await s.admitJob(admission("j1", "k1", 10));
    await s.settleJob({ jobId: "j1", status: "cancelled", at: T0, charged: 0, error: { code: "E_CANCELLED", message: "c" } });
    assert.equal((await s.claimWebhookDelivery(T0, 1000))?.jobId, "j1");
    await s.finishWebhookDelivery("j1", { retryAt: null, at: T0 + 1, error: "HTTP 404" });
    assert.equal(await s.claimWebhookDelivery(T0 + 1e9, 1000), undefined);
  });
}
