/**
 * Routing decisions that need many runs or a cancelled call: the weighted choice among equivalent targets, and a
 * cancellation that must not count against a provider. The clients are in-memory doubles here; every wire format
 * and failure against real upstream servers is in test/gateway/.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import sharp from "sharp";
import { familyLimits } from "../../test/helpers/models.ts";
import type { GenerationRequest, ModelInfo } from "../core/types.ts";
import { UpstreamError } from "../providers/_shared/errors.ts";
import type { UpstreamClient } from "../providers/index.ts";
import type { ImageProvider } from "../providers/spec.ts";
import { ModelRegistry, type UpstreamModel } from "./registry.ts";
import { createGateway } from "./route.ts";
import type { Upstreams } from "./upstreams.ts";

const png = new Uint8Array(await sharp({ create: { width: 8, height: 8, channels: 3, background: "red" } }).png().toBuffer());

const info: ModelInfo = {
  id: "balanced",
  family: "upstream",
  kind: "vp",
  backend: "a",
  aliases: [],
  defaults: { width: 8, height: 8, steps: 4, guidanceScale: 5 },
  limits: familyLimits("sd15"),
  created: 0,
};
const model: UpstreamModel = {
  info,
  backend: "upstream",
  fallbacks: [],
  targets: [
    { provider: "a", providerType: "openai", upstreamModel: "m", weight: 3 },
    { provider: "b", providerType: "openai", upstreamModel: "m", weight: 1 },
  ],
};
const req: GenerationRequest = { model: "balanced", prompt: "x", n: 1, width: 8, height: 8, output: { format: "png" } };
const noLocal: ImageProvider = { id: "local", generate: () => Promise.reject(new Error("no local model here")) };

function upstreams(call: UpstreamClient["call"], maxRetries = 0): Upstreams & { calls: string[] } {
  const calls: string[] = [];
  const client = (id: string): UpstreamClient => ({
    settings: { id, type: "openai", baseUrl: "http://x", easelExtensions: false, connectTimeoutMs: 1, totalTimeoutMs: 1 },
    plan: () => ({ calls: [{ index: 0, n: 1, format: "png", stream: false }], warnings: [] }),
    call: (...args) => {
      calls.push(id);
      return call(...args);
    },
    close: async () => {},
  });
  return {
    calls,
    describe: () => {
      throw new Error("unused");
    },
    client,
    policy: () => ({ retries: { max: maxRetries, baseDelayMs: 0, maxDelayMs: 0, maxRetryAfterMs: 0 }, breaker: { failureThreshold: 1, resetMs: 60_000 } }),
    close: async () => {},
  };
}

/** A small seeded generator (mulberry32), so the count below is the same on every run. */
function seeded(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

test("targets are chosen by weight: 3:1 sends about three quarters of the requests to the first", async () => {
  const u = upstreams(async () => [{ bytes: png, mime: "image/png", seed: 1 }]);
  const gw = createGateway({ registry: new ModelRegistry([model]), local: noLocal, upstreams: u, random: seeded(7) });
  for (let i = 0; i < 400; i++) await gw.executor(req, info).generate(req, {});
  const share = u.calls.filter((c) => c === "a").length / u.calls.length;
  assert.ok(share > 0.68 && share < 0.82, `share of the weight-3 target: ${share}`);
});

test("a call cancelled by the client is not a provider failure: the circuit stays closed", async () => {
  const u = upstreams(
    (_r, _m, _c, o) =>
      new Promise((_res, reject) => o.signal.addEventListener("abort", () => reject(o.signal.reason), { once: true })),
  );
  const gw = createGateway({ registry: new ModelRegistry([model]), local: noLocal, upstreams: u, random: () => 0 });
  const c = new AbortController();
  const run = gw.executor(req, info).generate(req, { signal: c.signal });
  setTimeout(() => c.abort(Object.assign(new Error("client gone"), { name: "AbortError" })), 10);
  await assert.rejects(run, /client gone/);
  assert.deepEqual(u.calls, ["a"], "no failover after a cancellation");
  assert.equal(gw.circuit("a"), "closed");
});

test("a target that failed after its partial images reached the client is neither retried nor failed over", async () => {
  const u = upstreams(async (_r, _m, _c, o) => {
    o.onEvent?.({ type: "preview", index: 0, step: 1, image: { width: 1, height: 1, rgb: new Uint8Array(3), seed: 1 } });
    throw new UpstreamError("server", 'provider "a" failed while streaming: boom');
  }, 2);
  const gw = createGateway({ registry: new ModelRegistry([model]), local: noLocal, upstreams: u, random: () => 0 });
  const previews: number[] = [];
  await assert.rejects(gw.executor(req, info).generate(req, { onEvent: (e) => e.type === "preview" && previews.push(e.index) }), /failed while streaming/);
  assert.deepEqual(u.calls, ["a"]);
  assert.deepEqual(previews, [0]);
});
