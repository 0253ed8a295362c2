/**
 * Failures against a real upstream Easel on loopback (real HTTP server, dialects, keys and credits) with a small
 * proxy in front of it that answers statuses, drops connections or delays, request by request: every error mapping
 * of every provider type (401 bad key, out of credits as 429/406/402, 400 bad field, 404 unknown model, 500, dropped
 * connections, timeouts), retries then success, Retry-After, fallback to a local model when the upstream is down,
 * the circuit breaker open and half-open, and a key that never appears in logs, job rows or answers.
 */
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import sharp from "sharp";
import { bearer, closedPort, type FaultProxy, type Gateway, post, startFastUpstream, startGateway, startProxy, type Upstream, warningsOf } from "./harness.ts";

const BAD_KEY = "esk_this-key-was-never-issued-0123456789";
const FAST_RETRIES = { max: 2, baseDelayMs: 10, maxDelayMs: 40 };

let up: Upstream;
let px: FaultProxy;
let pBad: FaultProxy;
let pPoor: FaultProxy;
let pFlaky: FaultProxy;
let pSlow: FaultProxy;
let gw: Gateway;
/** Every answer body the gateway sent, to look for keys in at the end. */
const answers: string[] = [];

before(async () => {
  up = await startFastUpstream({ gw: 1000, poor: 0 });
  [px, pBad, pPoor, pFlaky, pSlow] = await Promise.all([up.url, up.url, up.url, up.url, up.url].map(startProxy));
  const oa = (baseUrl: string, apiKey: string, extra: object = {}) => ({ type: "openai" as const, baseUrl: `${baseUrl}/v1`, apiKey, easelExtensions: true, retries: FAST_RETRIES, ...extra });
  gw = await startGateway({
    providers: {
      oa: oa(px.url, up.keys.gw),
      bad: oa(pBad.url, BAD_KEY),
      "oa-poor": oa(pPoor.url, up.keys.poor),
      "seg-poor": { type: "segmind", baseUrl: pPoor.url, apiKey: up.keys.poor, retries: FAST_RETRIES },
      "mon-poor": { type: "monica", baseUrl: pPoor.url, apiKey: up.keys.poor, retries: FAST_RETRIES },
      "pg-poor": { type: "playground", baseUrl: pPoor.url, apiKey: up.keys.poor, retries: FAST_RETRIES },
      mon: { type: "monica", baseUrl: up.url, apiKey: up.keys.gw },
      pg: { type: "playground", baseUrl: up.url, apiKey: up.keys.gw },
      "seg-wrong-url": { type: "segmind", baseUrl: `${up.url}/nothing-here`, apiKey: up.keys.gw },
      down: oa(await closedPort(), up.keys.gw),
      "down-too": oa(await closedPort(), up.keys.gw, { breaker: { failureThreshold: 2, resetMs: 60_000 } }),
      flaky: oa(pFlaky.url, up.keys.gw, { retries: { max: 0 }, breaker: { failureThreshold: 2, resetMs: 500 } }),
      slow: oa(pSlow.url, up.keys.gw, { retries: { max: 0 }, timeouts: { totalMs: 300 } }),
    },
    models: {
      entries: {
        remote: { provider: "oa", upstreamModel: "sd15" },
        badkey: { provider: "bad", upstreamModel: "sd15", fallbacks: ["sd15"], aliases: ["Playground_v2.5"] },
        "poor-oa": { provider: "oa-poor", upstreamModel: "sd15" },
        "poor-seg": { provider: "seg-poor", upstreamModel: "playground-v2.5", aliases: ["playground-v2.5"] },
        "poor-mon": { provider: "mon-poor", upstreamModel: "sdxl" },
        "poor-pg": { provider: "pg-poor", upstreamModel: "Playground_v2.5" },
        "poor-fb": { provider: "seg-poor", upstreamModel: "playground-v2.5", fallbacks: ["remote"] },
        missing: { provider: "oa", upstreamModel: "no-such-model" },
        "seg-404": { provider: "seg-wrong-url", upstreamModel: "playground-v2.5" },
        "mon-404": { provider: "mon", upstreamModel: "sd3_5" },
        "pg-404": { provider: "pg", upstreamModel: "Playground_v3" },
        "mon-sdxl": { provider: "mon", upstreamModel: "sdxl" },
        "down-fb": { provider: "down", upstreamModel: "sd15", fallbacks: ["sd15"] },
        balanced: {
          targets: [
            { provider: "down-too", upstreamModel: "sd15", weight: 1 },
            { provider: "oa", upstreamModel: "sd15", weight: 1 },
          ],
        },
        flaky: { provider: "flaky", upstreamModel: "sd15" },
        slow: { provider: "slow", upstreamModel: "sd15" },
      },
    },
  });
});
after(async () => {
  await gw.close();
  await Promise.all([px, pBad, pPoor, pFlaky, pSlow].map((p) => p.close()));
  await up.close();
});

interface Answer {
  status: number;
  body: Record<string, unknown> & { error?: { message: string; code: string | null; param: string | null; type: string } };
  res: Response;
  ms: number;
}

async function gen(extra: Record<string, unknown>, path = "/v1/images/generations", headers?: Record<string, string>): Promise<Answer> {
  const t = Date.now();
  const auth = headers ?? bearer(gw.key);
  const res = await post(gw.url, path, path === "/v1/images/generations" ? { prompt: "a lighthouse", size: "64x64", response_format: "b64_json", ...extra } : extra, auth);
  const text = await res.text();
  answers.push(text);
  return { status: res.status, body: JSON.parse(text), res, ms: Date.now() - t };
}

async function job(id: string | null): Promise<Record<string, unknown> & { route: { target: Record<string, string>; fallback: boolean; attempts: Record<string, unknown>[] } }> {
  const text = await (await fetch(`${gw.url}/v1/jobs/${id}`, { headers: bearer(gw.key) })).text();
  answers.push(text);
  return JSON.parse(text);
}

async function newestJob(): Promise<{ status: string; error: { code: string; message: string } | null; route?: unknown }> {
  const text = await (await fetch(`${gw.url}/v1/jobs?limit=1`, { headers: bearer(gw.key) })).text();
  answers.push(text);
  return JSON.parse(text).data[0];
}

/** Runs f and says how many requests each proxy received meanwhile. */
async function counted<T>(p: FaultProxy, f: () => Promise<T>): Promise<[T, number]> {
  const n = p.seen.length;
  const out = await f();
  return [out, p.seen.length - n];
}

describe("answers that are final: in the client's dialect, with the upstream's message, not retried, not failed over", () => {
  test("401: the upstream refused the gateway's key (OpenAI and Playground shapes), one request each, the fallback unused", async () => {
    const [oa, n] = await counted(pBad, () => gen({ model: "badkey" }));
    assert.equal(oa.status, 401);
    assert.equal(oa.body.error?.code, "invalid_api_key");
    assert.match(oa.body.error?.message ?? "", /provider "bad" answered 401: .+/);
    assert.equal(n, 1, "not retried");
    const failed = await newestJob();
    assert.equal(failed.status, "failed");
    assert.equal(failed.error?.code, "E_AUTH_INVALID");
    const [pg, m] = await counted(pBad, () => gen({ prompt: "x", filter_model: "Playground_v2.5", width: 64, height: 64 }, "/api/models/external/v1", bearer(gw.key)));
    assert.equal(pg.status, 401);
    assert.equal((pg.body as { code?: string }).code, "UNAUTHORIZED");
    assert.match(String((pg.body as { error?: string }).error), /provider "bad" answered 401/);
    assert.equal(m, 1);
  });

  test("400: a field the upstream refuses comes back naming it, with its message (openai and monica)", async () => {
    const [a, n] = await counted(px, () => gen({ model: "remote", clip_skip: 20 }));
    assert.equal(a.status, 400);
    assert.equal(a.body.error?.param, "clip_skip");
    assert.match(a.body.error?.message ?? "", /provider "oa" answered 400: .*clip_skip/);
    assert.equal(n, 1);
    const long = await gen({ model: "mon-sdxl", size: "1024x1024", prompt: "x".repeat(4001) });
    assert.equal(long.status, 400);
    assert.equal(long.body.error?.param, "prompt");
    assert.match(long.body.error?.message ?? "", /provider "mon" answered 400/);
  });

  test("404: an unknown model or URL on every provider type is the client's 404 with the upstream's message", async () => {
    for (const [model, size] of [["missing", "64x64"], ["seg-404", "1024x1024"], ["mon-404", "1024x1024"], ["pg-404", "64x64"]]) {
      const a = await gen({ model, size });
      assert.equal(a.status, 404, `${model}: ${JSON.stringify(a.body)}`);
      assert.equal(a.body.error?.code, "model_not_found");
      assert.match(a.body.error?.message ?? "", /answered 404/);
    }
  });
});

describe("out of credits upstream: not retried, failed over; without a fallback a 502 that says so", () => {
  test("openai 429 insufficient_quota, segmind 406, monica 429, playground 402", async () => {
    for (const [model, size, status] of [["poor-oa", "64x64", 429], ["poor-seg", "1024x1024", 406], ["poor-mon", "1024x1024", 429], ["poor-pg", "64x64", 402]] as const) {
      const [a, n] = await counted(pPoor, () => gen({ model, size }));
      assert.equal(a.status, 502, `${model}: ${JSON.stringify(a.body)}`);
      assert.equal(a.body.error?.code, "upstream_failed");
      assert.match(a.body.error?.message ?? "", new RegExp(`answered ${status}`));
      assert.equal(n, 1, `${model}: not retried`);
    }
  });

  test("the Segmind dialect answers it with its own 500", async () => {
    const a = await gen({ prompt: "x", samples: 1, num_inference_steps: 20, base64: true }, "/v1/playground-v2.5", { "x-api-key": gw.key });
    assert.equal(a.status, 500);
    assert.match(String(a.body.error), /answered 406/);
    assert.equal(a.res.headers.get("x-easel-error-code"), "E_UPSTREAM_FAILED");
  });

  test("with a fallback, the fallback answers and the warning names it", async () => {
    const a = await gen({ model: "poor-fb", size: "1024x1024" });
    assert.equal(a.status, 200, JSON.stringify(a.body));
    const w = warningsOf(a.res).find((x) => x.code === "W_FALLBACK");
    assert.ok(w && /"remote"/.test(w.message) && /406/.test(w.message), JSON.stringify(warningsOf(a.res)));
    const j = await job(a.res.headers.get("x-easel-job-id"));
    assert.equal(j.route.target.model, "remote");
    assert.equal(j.route.fallback, true);
  });
});

describe("retries", () => {
  test("a 500 is retried and the second try answers; the job records both attempts", async () => {
    px.queue.push({ type: "status", status: 500 });
    const [a, n] = await counted(px, () => gen({ model: "remote" }));
    assert.equal(a.status, 200, JSON.stringify(a.body));
    assert.equal(n, 2);
    const j = await job(a.res.headers.get("x-easel-job-id"));
    assert.deepEqual(
      j.route.attempts.map((x) => [x.attempt, x.outcome, x.status ?? null, x.reason ?? null]),
      [
        [1, "failed", 500, "server"],
        [2, "ok", 200, null],
      ],
    );
    assert.deepEqual(j.route.target, { model: "remote", provider: "oa", providerType: "openai", upstreamModel: "sd15" });
  });

  test("500 on every try: retries.max retries, then a 502 naming the provider and the attempts", async () => {
    px.otherwise = { type: "status", status: 503 };
    try {
      const [a, n] = await counted(px, () => gen({ model: "remote" }));
      assert.equal(a.status, 502);
      assert.match(a.body.error?.message ?? "", /provider "oa" answered 503.*\(3 attempts\)/);
      assert.equal(n, 3);
    } finally {
      px.otherwise = { type: "pass" };
    }
  });

  test("a connection dropped before the upstream saw the request is retried", async () => {
    px.queue.push({ type: "drop" });
    const [a, n] = await counted(px, () => gen({ model: "remote" }));
    assert.equal(a.status, 200, JSON.stringify(a.body));
    assert.equal(n, 2);
    const j = await job(a.res.headers.get("x-easel-job-id"));
    assert.equal(j.route.attempts[0].reason, "connection");
  });

  test("a connection dropped after the upstream ran it: the retry carries the same Idempotency-Key, so it runs and charges once", async () => {
    const ran = up.generations.length;
    const balance = await up.balance("gw");
    px.queue.push({ type: "drop-after" });
    const [a, n] = await counted(px, () => gen({ model: "remote", seed: 77 }));
    assert.equal(a.status, 200, JSON.stringify(a.body));
    assert.equal(n, 2);
    assert.equal(up.generations.length - ran, 1, "the upstream generated once");
    const spent = (balance ?? 0) - ((await up.balance("gw")) ?? 0);
    const jobs = (await (await fetch(`${up.url}/v1/jobs?limit=2`, { headers: bearer(up.keys.gw) })).json()) as { data: { creditsCharged: number; params: { seed: number } }[] };
    assert.equal(jobs.data[0].params.seed, 77);
    assert.ok(Math.abs(spent - jobs.data[0].creditsCharged) < 1e-9 && spent > 0, `charged once upstream: spent ${spent}, one job costs ${jobs.data[0].creditsCharged}`);
    assert.equal((a.body.data as { seed: number }[])[0].seed, 77);
  });

  test("a 429 with Retry-After is waited for, then retried", async () => {
    px.queue.push({ type: "status", status: 429, headers: { "retry-after": "1" }, body: JSON.stringify({ error: { message: "slow down", type: "requests", code: "rate_limit_exceeded" } }) });
    const a = await gen({ model: "remote" });
    assert.equal(a.status, 200, JSON.stringify(a.body));
    assert.ok(a.ms >= 950, `waited ${a.ms} ms`);
    const j = await job(a.res.headers.get("x-easel-job-id"));
    assert.equal(j.route.attempts[0].reason, "rate_limited");
  });

  test("no answer within the total timeout is a 504", async () => {
    pSlow.queue.push({ type: "delay", ms: 1500 });
    const a = await gen({ model: "slow" });
    assert.equal(a.status, 504, JSON.stringify(a.body));
    assert.match(a.body.error?.message ?? "", /did not answer within 300 ms/);
    assert.ok(a.ms < 1400, `gave up after ${a.ms} ms`);
  });
});

describe("fallback to a local model when the upstream is down", () => {
  test("connection refused on every try: the local sd15 answers, the warning names it, the key pays once", async () => {
    const before = (await (await fetch(`${gw.url}/v1/jobs?limit=100`, { headers: bearer(gw.key) })).json()) as { data: unknown[] };
    const a = await gen({ model: "down-fb", steps: 2, seed: 3 });
    assert.equal(a.status, 200, JSON.stringify(a.body));
    const img = Buffer.from((a.body.data as { b64_json: string }[])[0].b64_json, "base64");
    assert.equal((await sharp(img).metadata()).width, 64);
    const w = warningsOf(a.res).find((x) => x.code === "W_FALLBACK");
    assert.ok(w, JSON.stringify(warningsOf(a.res)));
    assert.match(w.message, /fallback "sd15"/);
    assert.match(w.message, /provider "down" could not be reached.*\(3 attempts\)/);
    const j = await job(a.res.headers.get("x-easel-job-id"));
    assert.deepEqual(j.route.target, { model: "sd15", provider: "local" });
    assert.equal(j.route.fallback, true);
    assert.deepEqual(j.route.attempts.map((x) => `${x.provider}:${x.outcome}`), ["down:failed", "down:failed", "down:failed", "local:ok"]);
    const charged = Number(a.res.headers.get("x-easel-credits-charged"));
    assert.ok(charged > 0);
    assert.equal(j.creditsCharged, charged, "one charge, at the requested model's price");
    const afterList = (await (await fetch(`${gw.url}/v1/jobs?limit=100`, { headers: bearer(gw.key) })).json()) as { data: unknown[] };
    assert.equal(afterList.data.length, before.data.length + 1, "one job for the request, whoever served it");
  });
});

describe("weighted targets", () => {
  test("equivalent targets: a down one is passed over for the other (no fallback warning), then skipped once its circuit opens", async () => {
    const down: string[] = [];
    for (let i = 0; i < 6; i++) {
      const a = await gen({ model: "balanced" });
      assert.equal(a.status, 200, JSON.stringify(a.body));
      assert.ok(!warningsOf(a.res).some((w) => w.code === "W_FALLBACK"));
      const j = await job(a.res.headers.get("x-easel-job-id"));
      assert.equal(j.route.target.provider, "oa");
      assert.equal(j.route.fallback, false);
      down.push(...j.route.attempts.filter((x) => x.provider === "down-too").map((x) => String(x.outcome)));
    }
    // Tried first in about half of the requests: failed until two failures opened its circuit, skipped after.
    assert.ok(down.filter((o) => o === "failed").length <= 2, down.join(","));
    assert.equal(gw.server.gateway.circuit("down-too"), down.length > 0 ? "open" : "closed");
  });
});

describe("circuit breaker", () => {
  test("opens after 2 failures (later requests are not sent), lets one probe through after resetMs, closes on its success", async () => {
    pFlaky.otherwise = { type: "status", status: 500 };
    const circuit = () => gw.server.gateway.circuit("flaky");
    for (let i = 0; i < 2; i++) assert.equal((await gen({ model: "flaky" })).status, 502);
    assert.equal(pFlaky.seen.length, 2);
    assert.equal(circuit(), "open");
    const skipped = await gen({ model: "flaky" });
    assert.equal(skipped.status, 502);
    assert.match(skipped.body.error?.message ?? "", /circuit open/);
    assert.ok(Number(skipped.res.headers.get("retry-after")) >= 1, "says when to come back");
    assert.equal(pFlaky.seen.length, 2, "an open circuit sends nothing");

    await new Promise((r) => setTimeout(r, 550));
    assert.equal(circuit(), "half_open");
    assert.equal((await gen({ model: "flaky" })).status, 502, "the probe fails");
    assert.equal(pFlaky.seen.length, 3);
    assert.equal(circuit(), "open", "a failed probe opens it again");
    await gen({ model: "flaky" });
    assert.equal(pFlaky.seen.length, 3);

    await new Promise((r) => setTimeout(r, 550));
    pFlaky.otherwise = { type: "pass" };
    const probe = await gen({ model: "flaky" });
    assert.equal(probe.status, 200, JSON.stringify(probe.body));
    assert.equal(circuit(), "closed");
    assert.equal((await gen({ model: "flaky" })).status, 200);
    assert.equal(pFlaky.seen.length, 5);
  });
});

describe("keys", () => {
  test("no upstream key appears in the logs, the job rows (database files) or any answer", async () => {
    const secrets = [up.keys.gw, up.keys.poor, BAD_KEY];
    const logs = gw.logs.join("\n");
    assert.ok(logs.length > 1000, "the gateway logged (Fastify at trace level and its own lines)");
    assert.match(logs, /retry 1 of 2/, "retries were logged");
    const db = readdirSync(gw.dataDir)
      .filter((f) => f.startsWith("easel.db"))
      .map((f) => readFileSync(join(gw.dataDir, f)).toString("latin1"))
      .join("");
    assert.ok(db.includes("upstreamModel"), "the job rows hold the routes");
    const jobs = await (await fetch(`${gw.url}/v1/jobs?limit=100`, { headers: bearer(gw.key) })).text();
    for (const s of secrets) {
      for (const [where, text] of [["logs", logs], ["database", db], ["job list", jobs], ["answers", answers.join("\n")]]) {
        assert.ok(!text.includes(s), `a key leaked into the ${where}`);
        assert.ok(!text.includes(s.slice(4, 20)), `part of a key leaked into the ${where}`);
      }
    }
  });
});
