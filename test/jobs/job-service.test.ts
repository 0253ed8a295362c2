import assert from "node:assert/strict";
import { test } from "node:test";
import sharp from "sharp";
import type { GenerationEvent } from "../../src/core/types.ts";
import { CREDIT_SCALE } from "../../src/storage/metadata-store.ts";
import { harness } from "./harness.ts";
import { request, settableClock, solidProvider } from "./helpers.ts";

test("50 simultaneous single-image requests with credits for exactly 10 give exactly 10 images", async () => {
  const provider = solidProvider({ delayMs: 5 });
  const h = await harness({ provider, concurrency: 4 });
  try {
    const { key, info } = await h.admin.create({ name: "ten", credits: 10 });
    const principal = await h.svc.authenticate(key);
    assert.equal(principal.remainingCredits, 10);
    const settled = await Promise.allSettled(
      Array.from({ length: 50 }, (_, i) => h.svc.generate(request({ seed: i + 1 }), { dialect: "segmind", principal })),
    );
    const ok = settled.filter((r) => r.status === "fulfilled");
    const refused = settled.filter((r) => r.status === "rejected");
    assert.equal(ok.length, 10);
    assert.equal(refused.length, 40);
    for (const r of refused) assert.equal((r as PromiseRejectedResult).reason.code, "E_CREDITS_INSUFFICIENT");
    assert.equal(ok.reduce((a, r) => a + (r as PromiseFulfilledResult<{ images: unknown[] }>).value.images.length, 0), 10);
    assert.equal(provider.calls, 10, "refused requests never reach the executor");
    assert.equal(await h.svc.remainingCredits(principal), 0);
    const ledger = await h.store.ledger(info.id);
    assert.equal(ledger.reduce((a, e) => a + e.amount, 0), 0);
    assert.equal(ledger.filter((e) => e.kind === "charge").length, 10);
    assert.equal((ok[0] as PromiseFulfilledResult<{ creditsCharged?: number }>).value.creditsCharged, 1);
  } finally {
    await h.dispose();
  }
});

test("a result carries images, seed, signed URL, timings, credits; the job record matches", async () => {
  const h = await harness({ provider: solidProvider({ rgb: [0, 128, 255] }) });
  try {
    const { key } = await h.admin.create({ name: "k", credits: 5 });
    const principal = await h.svc.authenticate(key);
    const events: GenerationEvent["type"][] = [];
    const r = await h.svc.generate(request({ n: 2, seed: 77, output: { format: "jpeg", quality: 80 } }), {
      dialect: "openai",
      principal,
      onEvent: (e) => events.push(e.type),
    });
    assert.equal(r.images.length, 2);
    assert.equal(r.seed, 77);
    assert.deepEqual(r.images.map((i) => i.seed), [77, 78]);
    assert.equal(r.creditsCharged, 2);
    assert.equal(r.remainingCredits, 3);
    const img = r.images[0];
    assert.equal(img.mime, "image/jpeg");
    const meta = await sharp(img.bytes).metadata();
    assert.deepEqual([meta.format, meta.width, meta.height], ["jpeg", 8, 8]);
    const px = await sharp(img.bytes).raw().toBuffer();
    assert.ok(Math.abs(px[0] - 0) <= 8 && Math.abs(px[1] - 128) <= 8 && Math.abs(px[2] - 255) <= 8, "colour survives jpeg");
    assert.match(img.url ?? "", /^\/v1\/files\/[a-f0-9]{64}\.\d+\.[A-Za-z0-9_-]{43}\.jpg$/);
    const opened = await h.svc.openImage(img.url!.slice("/v1/files/".length));
    assert.deepEqual(opened?.bytes, img.bytes);
    assert.equal(opened?.mime, "image/jpeg");
    const bare = img.url!.slice("/v1/files/".length, -".jpg".length);
    assert.deepEqual((await h.svc.openImage(bare))?.bytes, img.bytes, "a URL without the extension (handed out before) opens");
    assert.deepEqual((await h.svc.openImage(`${bare}.jpeg`))?.bytes, img.bytes);
    assert.equal(await h.svc.openImage(`${bare}.png`), undefined, "an extension naming another format opens nothing");
    assert.deepEqual(events.slice(0, 2), ["queued", "progress"]);
    const job = await h.svc.getJob(r.jobId, principal);
    assert.equal(job.status, "succeeded");
    assert.equal(job.dialect, "openai");
    assert.equal(job.seed, 77);
    assert.equal(job.creditsReserved, 2);
    assert.equal(job.creditsCharged, 2);
    assert.deepEqual(job.imageIds, r.images.map((i) => i.id));
    assert.equal(job.params.prompt, "a red square");
    assert.ok(job.startedAt !== null && job.finishedAt !== null && job.finishedAt >= job.startedAt);
    const other = await h.admin.create({ name: "other" });
    await assert.rejects(h.svc.getJob(r.jobId, await h.svc.authenticate(other.key)), { code: "E_NOT_FOUND" });
  } finally {
    await h.dispose();
  }
});

test("Idempotency-Key replays the first result without generating or charging twice; another body is a 409", async () => {
  const provider = solidProvider({ delayMs: 20 });
  const h = await harness({ provider });
  try {
    const { key } = await h.admin.create({ name: "k", credits: 10 });
    const principal = await h.svc.authenticate(key);
    const ctx = { dialect: "openai", principal, idempotencyKey: "req-1", delivery: "bytes" as const };
    const [a, b] = await Promise.all([h.svc.generate(request({ seed: 5 }), ctx), h.svc.generate(request({ seed: 5 }), ctx)]);
    const c = await h.svc.generate(request({ seed: 5 }), ctx);
    assert.equal(provider.calls, 1);
    assert.equal(b.jobId, a.jobId);
    assert.equal(c.jobId, a.jobId);
    assert.deepEqual(c.images[0].bytes, a.images[0].bytes);
    assert.equal(await h.svc.remainingCredits(principal), 9);
    await assert.rejects(h.svc.generate(request({ seed: 6 }), ctx), { code: "E_IDEMPOTENCY_CONFLICT", status: 409 });
    // Another dialect with the same key is another body too.
    await assert.rejects(h.svc.generate(request({ seed: 5 }), { ...ctx, dialect: "segmind" }), { code: "E_IDEMPOTENCY_CONFLICT" });
    assert.equal(provider.calls, 1);
  } finally {
    await h.dispose();
  }
});

test("requests-per-minute window answers 429 with retryAfterSeconds, then lets requests in again", async () => {
  const clock = settableClock();
  const h = await harness({ provider: solidProvider(), clock: clock.now });
  try {
    const { key } = await h.admin.create({ name: "k", rateLimitPerMinute: 2 });
    const principal = await h.svc.authenticate(key);
    const ctx = { dialect: "openai", principal };
    await h.svc.generate(request(), ctx);
    clock.advance(10_000);
    await h.svc.generate(request(), ctx);
    clock.advance(5_000);
    const err = await h.svc.generate(request(), ctx).catch((e) => e);
    assert.equal(err.code, "E_RATE_LIMITED");
    assert.equal(err.status, 429);
    assert.equal(err.details.retryAfterSeconds, 45);
    clock.advance(45_000);
    await h.svc.generate(request(), ctx);
  } finally {
    await h.dispose();
  }
});

test("concurrent-jobs limit answers 429 while a job runs", async () => {
  let open!: () => void;
  const gate = new Promise<void>((r) => (open = r));
  let started!: () => void;
  const running = new Promise<void>((r) => (started = r));
  const h = await harness({ provider: solidProvider({ gate, onStart: () => started() }) });
  try {
    const { key } = await h.admin.create({ name: "k", maxConcurrent: 1 });
    const principal = await h.svc.authenticate(key);
    const first = h.svc.generate(request(), { dialect: "openai", principal });
    await running;
    const err = await h.svc.generate(request(), { dialect: "openai", principal }).catch((e) => e);
    assert.equal(err.code, "E_RATE_LIMITED");
    assert.ok(err.details.retryAfterSeconds >= 1);
    open();
    await first;
    await h.svc.generate(request(), { dialect: "openai", principal });
  } finally {
    await h.dispose();
  }
});

test("authentication: missing, wrong and revoked keys are refused; open mode only without keys", async () => {
  const h = await harness({ provider: solidProvider(), openMode: true });
  try {
    assert.deepEqual(await h.svc.authenticate(undefined), { keyId: null, name: "local", remainingCredits: null });
    assert.deepEqual(await h.svc.authenticate("anything"), { keyId: null, name: "local", remainingCredits: null });
    const { key, info } = await h.admin.create({ name: "k", credits: 3 });
    assert.match(key, /^esk_[A-Za-z0-9_-]{43}$/);
    await assert.rejects(h.svc.authenticate(undefined), { code: "E_AUTH_MISSING", status: 401 });
    await assert.rejects(h.svc.authenticate(`${key}x`), { code: "E_AUTH_INVALID", status: 401 });
    const p = await h.svc.authenticate(key);
    assert.equal(p.keyId, info.id);
    await h.admin.revoke(info.id);
    await assert.rejects(h.svc.authenticate(key), { code: "E_AUTH_INVALID" });
    // A principal authenticated before the revocation cannot start new work either.
    await assert.rejects(h.svc.generate(request(), { dialect: "openai", principal: p }), { code: "E_AUTH_INVALID" });
    // Revoking the last key does not reopen the server.
    await assert.rejects(h.svc.authenticate(undefined), { code: "E_AUTH_MISSING" });
  } finally {
    await h.dispose();
  }
  const closed = await harness({ provider: solidProvider(), openMode: false });
  try {
    await assert.rejects(closed.svc.authenticate(undefined), { code: "E_AUTH_MISSING" });
  } finally {
    await closed.dispose();
  }
});

test("signed URLs expire and forged ones open nothing", async () => {
  const clock = settableClock();
  const h = await harness({ provider: solidProvider(), clock: clock.now });
  try {
    const principal = await h.svc.authenticate((await h.admin.create({ name: "k" })).key);
    const r = await h.svc.generate(request(), { dialect: "openai", principal });
    const token = r.images[0].url!.slice("/v1/files/".length);
    assert.ok(await h.svc.openImage(token));
    const [id, exp, mac] = token.split(".");
    const flipped = mac[0] === "A" ? `B${mac.slice(1)}` : `A${mac.slice(1)}`;
    assert.equal(await h.svc.openImage(`${id}.${exp}.${flipped}`), undefined);
    assert.equal(await h.svc.openImage(`${id}.${Number(exp) + 3600}.${mac}`), undefined, "extending the expiry breaks the MAC");
    assert.equal(await h.svc.openImage("../../etc/passwd"), undefined);
    assert.equal(await h.svc.openImage(""), undefined);
    clock.advance(h.config.images.urlTtlSeconds * 1000 + 1000);
    assert.equal(await h.svc.openImage(token), undefined);
  } finally {
    await h.dispose();
  }
});

test("failure and cancellation release the reservation; the job records why", async () => {
  const failing = await harness({ provider: solidProvider({ fail: new Error("kaboom") }) });
  try {
    const { key } = await failing.admin.create({ name: "k", credits: 2 });
    const principal = await failing.svc.authenticate(key);
    const err = await failing.svc.generate(request(), { dialect: "openai", principal }).catch((e) => e);
    assert.equal(err.code, "E_INTERNAL");
    assert.equal(await failing.svc.remainingCredits(principal), 2);
  } finally {
    await failing.dispose();
  }

  let started!: () => void;
  const running = new Promise<void>((r) => (started = r));
  const h = await harness({ provider: solidProvider({ gate: new Promise(() => {}), onStart: () => started() }), concurrency: 1 });
  try {
    const { key } = await h.admin.create({ name: "k", credits: 2 });
    const principal = await h.svc.authenticate(key);
    const runCtl = new AbortController();
    const waitCtl = new AbortController();
    let runningJob = "";
    let waitingJob = "";
    const a = h.svc.generate(request(), { dialect: "openai", principal, signal: runCtl.signal, onEvent: (e) => void (runningJob ||= e.jobId) });
    const b = h.svc.generate(request(), { dialect: "openai", principal, signal: waitCtl.signal, onEvent: (e) => void (waitingJob ||= e.jobId) });
    await running;
    assert.equal(await h.svc.remainingCredits(principal), 0);
    waitCtl.abort();
    await assert.rejects(b, { code: "E_CANCELLED" });
    runCtl.abort();
    await assert.rejects(a, { code: "E_CANCELLED" });
    assert.equal(await h.svc.remainingCredits(principal), 2);
    assert.equal((await h.svc.getJob(runningJob, principal)).status, "cancelled");
    const w = await h.svc.getJob(waitingJob, principal);
    assert.equal(w.status, "cancelled");
    assert.equal(w.startedAt, null, "a job cancelled while waiting never started");
  } finally {
    await h.dispose();
  }
});

test("retention deletes old images and their rows; previews are encoded and not stored", async () => {
  const clock = settableClock();
  const h = await harness({ provider: solidProvider({ previews: true }), clock: clock.now });
  try {
    const principal = await h.svc.authenticate((await h.admin.create({ name: "k" })).key);
    const previews: GenerationEvent[] = [];
    const r = await h.svc.generate(request({ partialImages: 1 }), {
      dialect: "openai",
      principal,
      onEvent: (e) => e.type === "preview" && previews.push(e),
    });
    await new Promise((res) => setTimeout(res, 50));
    assert.equal(previews.length, 1);
    const pv = previews[0].type === "preview" ? previews[0].image : undefined;
    assert.equal((await sharp(pv!.bytes).metadata()).format, "png");
    assert.equal(pv?.url, undefined);
    const id = r.images[0].id;
    assert.ok(await h.store.getImage(id));
    clock.advance((h.config.images.retentionDays - 1) * 86_400_000);
    assert.equal((await h.svc.runRetention()).images, 0);
    clock.advance(2 * 86_400_000);
    const out = await h.svc.runRetention();
    assert.equal(out.images, 1);
    assert.equal(await h.store.getImage(id), undefined);
    // The job row stays (it is part of the ledger's story).
    assert.deepEqual((await h.svc.getJob(r.jobId, principal)).imageIds, [id]);
  } finally {
    await h.dispose();
  }
});

test("bytes delivery stores nothing unless storeB64; unknown model and bad sizes are coded errors", async () => {
  const h = await harness({ provider: solidProvider() });
  try {
    const principal = await h.svc.authenticate((await h.admin.create({ name: "k" })).key);
    const r = await h.svc.generate(request(), { dialect: "segmind", principal, delivery: "bytes" });
    assert.equal(r.images[0].url, undefined);
    assert.equal(await h.store.getImage(r.images[0].id), undefined);
    await assert.rejects(h.svc.generate(request({ model: "nope" }), { dialect: "openai", principal }), { code: "E_MODEL_NOT_FOUND" });
    await assert.rejects(h.svc.generate(request({ n: 0 }), { dialect: "openai", principal }), { code: "E_INPUT_INVALID", param: "n" });
    await assert.rejects(h.svc.generate(request({ width: 8.5 }), { dialect: "openai", principal }), { code: "E_INPUT_INVALID", param: "width" });
    assert.equal(CREDIT_SCALE, 1000);
  } finally {
    await h.dispose();
  }
});
