/**
 * Callers that do not wait: `Prefer: respond-async` on a dialect's generation route and `POST /v1/jobs` with any
 * dialect's body answer 202 with the job; `GET /v1/jobs/{id}` then shows its progress and images. Completion
 * webhooks: a key's settled jobs are POSTed to its URL, signed the Standard Webhooks way, and retried with backoff
 * until the receiver takes them. Over the whole HTTP surface with the real job service (solid-colour provider).
 */
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, test } from "node:test";
import type { LightMyRequestResponse } from "fastify";
import { Webhook } from "standardwebhooks";
import { solidProvider } from "./helpers.ts";
import { type HttpHarness, httpHarness, keyHeaders } from "./http-harness.ts";

const json = (r: LightMyRequestResponse) => r.json() as Record<string, unknown>;

async function until<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 10_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

async function settledJob(h: HttpHarness, key: string, id: string): Promise<Record<string, unknown>> {
  return until(`job ${id} to settle`, async () => {
    const j = json(await h.app.inject({ method: "GET", url: `/v1/jobs/${id}`, headers: keyHeaders(key) }));
    return j.status === "queued" || j.status === "running" ? undefined : j;
  });
}

describe("Prefer: respond-async and POST /v1/jobs", () => {
  let h: HttpHarness;
  let key: string;
  let keyId: string;
  before(async () => {
    h = await httpHarness({ provider: solidProvider({ delayMs: 50 }) });
    const created = await h.admin.create({ name: "async", credits: 10_000_000 });
    key = created.key;
    keyId = created.info.id;
  });
  after(() => h.dispose());

  test("an OpenAI request with Prefer: respond-async answers 202 with the queued job, which then completes", async () => {
    const res = await h.app.inject({
      method: "POST",
      url: "/v1/images/generations",
      headers: { ...keyHeaders(key), prefer: "respond-async, wait=5" },
      payload: { model: "sd15", prompt: "a red square", size: "64x64", n: 2 },
    });
    assert.equal(res.statusCode, 202, res.body);
    const body = json(res);
    assert.match(String(body.id), /^job_/);
    assert.equal(res.headers.location, `/v1/jobs/${body.id}`);
    assert.equal(res.headers["preference-applied"], "respond-async");
    assert.equal(res.headers["x-easel-job-id"], body.id);
    assert.ok(body.status === "queued" || body.status === "running", `status ${body.status}`);
    assert.equal(body.dialect, "openai");
    // 1 credit per 8x8 image at 4 steps (the test pricing): 64 per 64x64 image.
    assert.equal(body.creditsReserved, 128);

    const done = await settledJob(h, key, String(body.id));
    assert.equal(done.status, "succeeded");
    assert.equal(done.creditsCharged, 128);
    assert.deepEqual(done.progress, { step: 2, totalSteps: 2 }, "the run's last reported step is kept");
    const images = done.images as { url: string; width: number }[];
    assert.equal(images.length, 2);
    const file = await h.app.inject({ method: "GET", url: new URL(images[0].url).pathname });
    assert.equal(file.statusCode, 200);
    assert.equal(file.headers["content-type"], "image/png");
    assert.equal(await h.store.balance(keyId), 10_000_000_000 - 128_000, "charged once");
  });

  test("POST /v1/jobs takes any dialect's body: Segmind's (x-api-key) and Playground's", async () => {
    const seg = await h.app.inject({
      method: "POST",
      url: "/v1/jobs",
      headers: { "x-api-key": key },
      payload: { dialect: "segmind", prompt: "a blue circle", samples: 1, seed: 7, num_inference_steps: 20, base64: false },
    });
    assert.equal(seg.statusCode, 202, seg.body);
    const segJob = await settledJob(h, key, String(json(seg).id));
    assert.equal(segJob.status, "succeeded");
    assert.equal(segJob.dialect, "segmind");
    assert.equal(segJob.seed, 7);

    const pg = await h.app.inject({
      method: "POST",
      url: "/v1/jobs",
      headers: { authorization: `Bearer ${key}` },
      payload: { dialect: "playground", prompt: "a green star", width: 64, height: 64, num_images: 1 },
    });
    assert.equal(pg.statusCode, 202, pg.body);
    assert.equal((await settledJob(h, key, String(json(pg).id))).dialect, "playground");
  });

  test("POST /v1/jobs takes an A1111 txt2img body (dialect a1111)", async () => {
    const res = await h.app.inject({
      method: "POST",
      url: "/v1/jobs",
      headers: keyHeaders(key),
      payload: {
        dialect: "a1111",
        prompt: "a purple triangle",
        steps: 4,
        width: 64,
        height: 64,
        seed: 11,
        override_settings: { sd_model_checkpoint: "sd15" },
      },
    });
    assert.equal(res.statusCode, 202, res.body);
    const done = await settledJob(h, key, String(json(res).id));
    assert.equal(done.status, "succeeded");
    assert.equal(done.dialect, "a1111");
    assert.equal(done.seed, 11);
  });

  test("a retry with the same Idempotency-Key answers the same job, charged once", async () => {
    const send = () =>
      h.app.inject({
        method: "POST",
        url: "/v1/jobs",
        headers: { ...keyHeaders(key), "idempotency-key": "async-idem-1" },
        payload: { dialect: "openai", model: "sd15", prompt: "a pink square", size: "64x64" },
      });
    const before = await h.store.balance(keyId);
    const first = await send();
    assert.equal(first.statusCode, 202, first.body);
    await settledJob(h, key, String(json(first).id));
    const second = await send();
    assert.equal(second.statusCode, 202);
    assert.equal(json(second).id, json(first).id);
    assert.equal(json(second).status, "succeeded");
    assert.equal(await h.store.balance(keyId), (before ?? 0) - 64_000);
  });

  test("bad input: an unknown dialect in Easel's shape, a bad body in its dialect's shape; nothing admitted", async () => {
    const jobsBefore = (await h.store.listJobs({ keyId, limit: 100 })).length;
    const unknown = await h.app.inject({ method: "POST", url: "/v1/jobs", headers: keyHeaders(key), payload: { dialect: "dalle", prompt: "x" } });
    assert.equal(unknown.statusCode, 400);
    const e = json(unknown).error as { code: string; param: string; message: string };
    assert.equal(e.code, "E_INPUT_INVALID");
    assert.equal(e.param, "dialect");
    assert.match(e.message, /openai, .*segmind/);

    const missing = await h.app.inject({ method: "POST", url: "/v1/jobs", headers: keyHeaders(key), payload: { prompt: "x" } });
    assert.equal(missing.statusCode, 400);

    const badN = await h.app.inject({
      method: "POST",
      url: "/v1/jobs",
      headers: keyHeaders(key),
      payload: { dialect: "openai", model: "sd15", prompt: "x", n: 0 },
    });
    assert.equal(badN.statusCode, 400);
    const openAiShape = json(badN).error as { type: string; param: string };
    assert.equal(openAiShape.type, "invalid_request_error", "OpenAI's error shape");
    assert.equal(openAiShape.param, "n");

    const noKey = await h.app.inject({ method: "POST", url: "/v1/jobs", payload: { dialect: "openai", prompt: "x" } });
    assert.equal(noKey.statusCode, 401);
    assert.equal((await h.store.listJobs({ keyId, limit: 100 })).length, jobsBefore);
  });

  test("GET on the job shows progress while it runs", async () => {
    const release = (() => {
      let r!: () => void;
      const gate = new Promise<void>((res) => (r = res));
      return { gate, r };
    })();
    const slow = await httpHarness({ provider: solidProvider({ gate: release.gate }) });
    try {
      const k = (await slow.admin.create({ name: "slow" })).key;
      const res = await slow.app.inject({
        method: "POST",
        url: "/v1/images/generations",
        headers: { ...keyHeaders(k), prefer: "respond-async" },
        payload: { model: "sd15", prompt: "a cyan square", size: "64x64" },
      });
      assert.equal(res.statusCode, 202);
      const id = String(json(res).id);
      const running = await until("progress", async () => {
        const j = json(await slow.app.inject({ method: "GET", url: `/v1/jobs/${id}`, headers: keyHeaders(k) }));
        return j.progress ? j : undefined;
      });
      assert.equal(running.status, "running");
      assert.deepEqual(running.progress, { step: 1, totalSteps: 2 });
      release.r();
      assert.equal((await settledJob(slow, k, id)).status, "succeeded");
    } finally {
      release.r();
      await slow.dispose();
    }
  });
});

interface Received {
  headers: IncomingMessage["headers"];
  body: string;
}

/** A loopback receiver that answers each delivery with the next status of `statuses` (then 200). */
async function receiver(statuses: number[] = []): Promise<{ url: string; received: Received[]; close(): Promise<void> }> {
  const received: Received[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      received.push({ headers: req.headers, body: Buffer.concat(chunks).toString("utf8") });
      res.statusCode = statuses.shift() ?? 200;
      res.end();
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}/hooks/easel`, received, close: () => new Promise((r) => server.close(() => r())) };
}

describe("completion webhooks", () => {
  const fast = { webhooks: { pollMs: 20, initialBackoffMs: 60, maxBackoffMs: 1000, timeoutMs: 2000, maxAttempts: 3 } };

  test("a settled job is POSTed once, signed with the key's secret; a failure is retried with the same id", async () => {
    const rx = await receiver([500, 503]);
    const h = await httpHarness({ config: fast });
    try {
      const { key, info } = await h.admin.create({ name: "hooked", credits: 1000 });
      const { secret, info: withHook } = await h.admin.setWebhook(info.id, rx.url);
      assert.match(String(secret), /^whsec_[A-Za-z0-9+/]+=*$/);
      assert.equal(withHook.webhookUrl, rx.url);
      const res = await h.app.inject({
        method: "POST",
        url: "/v1/jobs",
        headers: keyHeaders(key),
        payload: { dialect: "openai", model: "sd15", prompt: "a yellow square", size: "64x64", seed: 5 },
      });
      assert.equal(res.statusCode, 202, res.body);
      const id = String(json(res).id);
      await until("three deliveries", async () => (rx.received.length >= 3 ? true : undefined));
      // Delivered on the third attempt: nothing more comes.
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(rx.received.length, 3);
      assert.deepEqual(
        rx.received.map((r) => r.headers["webhook-id"]),
        [id, id, id],
      );
      const last = rx.received[2];
      const payload = new Webhook(secret!).verify(last.body, {
        "webhook-id": String(last.headers["webhook-id"]),
        "webhook-timestamp": String(last.headers["webhook-timestamp"]),
        "webhook-signature": String(last.headers["webhook-signature"]),
      }) as { type: string; data: { id: string; status: string; seed: number; images: { url: string }[]; creditsCharged: number } };
      assert.equal(payload.type, "job.succeeded");
      assert.equal(payload.data.id, id);
      assert.equal(payload.data.seed, 5);
      assert.equal(payload.data.creditsCharged, 64);
      assert.match(payload.data.images[0].url, /^http:\/\/.+\/v1\/files\//);
      // The signature by its definition: base64 HMAC-SHA256 over "id.timestamp.body" with the secret's bytes.
      const expected = createHmac("sha256", Buffer.from(secret!.slice("whsec_".length), "base64"))
        .update(`${id}.${last.headers["webhook-timestamp"]}.${last.body}`)
        .digest("base64");
      assert.equal(last.headers["webhook-signature"], `v1,${expected}`);
      assert.throws(() => new Webhook(secret!).verify(last.body.replace("succeeded", "failed"), last.headers as Record<string, string>));
    } finally {
      await h.dispose();
      await rx.close();
    }
  });

  test("a failed job sends job.failed; a receiver that never takes it is tried maxAttempts times", async () => {
    const rx = await receiver([500, 500, 500, 500, 500]);
    const h = await httpHarness({ config: fast, provider: solidProvider({ fail: new Error("engine exploded") }) });
    try {
      const { key, info } = await h.admin.create({ name: "hooked" });
      await h.admin.setWebhook(info.id, rx.url);
      const res = await h.app.inject({
        method: "POST",
        url: "/v1/images/generations",
        headers: keyHeaders(key),
        payload: { model: "sd15", prompt: "a red square", size: "64x64" },
      });
      assert.equal(res.statusCode, 500);
      await until("three attempts", async () => (rx.received.length >= 3 ? true : undefined));
      await new Promise((r) => setTimeout(r, 400));
      assert.equal(rx.received.length, 3, "given up after webhooks.maxAttempts");
      assert.equal((JSON.parse(rx.received[0].body) as { type: string }).type, "job.failed");
    } finally {
      await h.dispose();
      await rx.close();
    }
  });

  test("keys without a webhook send nothing; a webhook URL must be http(s) without credentials", async () => {
    const rx = await receiver();
    const h = await httpHarness({ config: fast });
    try {
      const { key, info } = await h.admin.create({ name: "plain" });
      const res = await h.app.inject({
        method: "POST",
        url: "/v1/images/generations",
        headers: keyHeaders(key),
        payload: { model: "sd15", prompt: "a red square", size: "64x64" },
      });
      assert.equal(res.statusCode, 200);
      await new Promise((r) => setTimeout(r, 200));
      assert.equal(rx.received.length, 0);
      for (const bad of ["ftp://example.com/x", "not a url", "http://user:pw@example.com/h"]) {
        await assert.rejects(h.admin.setWebhook(info.id, bad), (e: { code?: string; param?: string }) => e.code === "E_INPUT_INVALID" && e.param === "url");
      }
      const removed = await h.admin.setWebhook(info.id, null);
      assert.equal(removed.secret, null);
      assert.equal(removed.info.webhookUrl, null);
    } finally {
      await h.dispose();
      await rx.close();
    }
  });
});
