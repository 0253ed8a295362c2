/**
 * No image is free: prices round up to the ledger's unit with a configured minimum per image, so the smallest
 * request costs something and a key with no credits left is refused in every dialect's own shape.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { loadConfig } from "../../src/config/index.ts";
import { priceMillicredits } from "../../src/jobs/pricing.ts";
import { MODEL, request } from "./helpers.ts";
import { type HttpHarness, httpHarness, keyHeaders } from "./http-harness.ts";

/** The shipped defaults: 1 credit per 1024x1024 image at 30 steps, minimum 0.001 credit per image. */
const defaults = loadConfig({ env: {}, flags: { dataDir: "/tmp/easel-pricing" } });

describe("prices", () => {
  test("the smallest requests cost at least the minimum per image, never 0", () => {
    // 64x64 is 1/256 of the reference pixels: n*steps/7680 credits, under half a millicredit for n*steps <= 3.
    for (const [n, steps] of [[1, 1], [1, 2], [1, 3], [3, 1]]) {
      assert.equal(priceMillicredits(defaults, MODEL, request({ n, steps, width: 64, height: 64 })), n, `64x64 n=${n} steps=${steps}`);
    }
    assert.equal(priceMillicredits(defaults, MODEL, request({ steps: 1, width: 128, height: 64 })), 1, "128x64, one step");
    // Rounded up, not to the nearest: 64x64 at 4 steps is 0.52 millicredits, 64x64 at 8 steps 1.04.
    assert.equal(priceMillicredits(defaults, MODEL, request({ steps: 4, width: 64, height: 64 })), 1);
    assert.equal(priceMillicredits(defaults, MODEL, request({ steps: 8, width: 64, height: 64 })), 2);
  });

  test("rounding up ignores floating-point noise", () => {
    // 0.1 * 3 = 0.30000000000000004 in binary floating point: the price is 300 millicredits, not 301.
    const c = loadConfig({ env: {}, flags: { dataDir: "/tmp/easel-pricing", pricing: { default: { perImage: 0.1, referencePixels: 64, referenceSteps: 1 } } } });
    assert.equal(priceMillicredits(c, MODEL, request({ n: 3, steps: 1 })), 300);
  });

  test("pricing.minimumPerImage sets the floor, per image; it cannot be 0", () => {
    const c = loadConfig({ env: {}, flags: { dataDir: "/tmp/easel-pricing", pricing: { minimumPerImage: 0.25 } } });
    assert.equal(priceMillicredits(c, MODEL, request({ n: 2, steps: 1, width: 64, height: 64 })), 500);
    // Above the floor the scaled price applies: 1 credit at the reference size and steps.
    assert.equal(priceMillicredits(c, MODEL, request({ steps: 30, width: 1024, height: 1024 })), 1000);
    // A free model still costs the minimum.
    const free = loadConfig({ env: {}, flags: { dataDir: "/tmp/easel-pricing", pricing: { default: { perImage: 0 } } } });
    assert.equal(priceMillicredits(free, MODEL, request({ n: 4 })), 4);
    assert.throws(() => loadConfig({ env: {}, flags: { dataDir: "/tmp/x", pricing: { minimumPerImage: 0 } } }), /minimumPerImage/);
  });
});

interface Case {
  dialect: string;
  url: string;
  body: Record<string, unknown>;
  status: number;
  shape: (b: Record<string, unknown>) => void;
}

const openAiQuota = (b: Record<string, unknown>) => {
  const e = b.error as Record<string, unknown>;
  assert.equal(e.type, "insufficient_quota", JSON.stringify(b));
  assert.equal(e.code, "insufficient_quota");
  assert.equal(typeof e.message, "string");
};

/** The smallest request each dialect can express. */
const CASES: Case[] = [
  { dialect: "openai", url: "/v1/images/generations", body: { model: "sd15", prompt: "a cat", size: "64x64", steps: 1, response_format: "b64_json" }, status: 429, shape: openAiQuota },
  { dialect: "openai (gateway path)", url: "/api/llm/images/generations", body: { model: "sd15", prompt: "a cat", size: "64x64", steps: 1 }, status: 429, shape: openAiQuota },
  { dialect: "monica-playground", url: "/v1/image/gen/playground", body: { prompt: "a cat", step: 1 }, status: 429, shape: openAiQuota },
  { dialect: "monica-sd", url: "/v1/image/gen/sd", body: { model: "sd3", prompt: "a cat", steps: 1 }, status: 429, shape: openAiQuota },
  {
    dialect: "playground",
    url: "/api/models/external/v1",
    body: { prompt: "a cat", width: 64, height: 64, num_inference_steps: 1 },
    status: 402,
    shape: (b) => {
      assert.equal(b.code, "INSUFFICIENT_CREDITS", JSON.stringify(b));
      assert.equal(typeof b.error, "string");
    },
  },
  {
    dialect: "segmind",
    url: "/v1/playground-v2.5",
    body: { prompt: "a cat", num_inference_steps: 20 },
    status: 406,
    shape: (b) => {
      assert.equal(b.code, "E_CREDITS_INSUFFICIENT", JSON.stringify(b));
      assert.equal(typeof b.error, "string");
    },
  },
];

describe("a key with no credits left", () => {
  let h: HttpHarness;
  before(async () => {
    h = await httpHarness({ config: { pricing: { default: { perImage: 1 } } } });
  });
  after(() => h?.dispose());

  test("is refused in each dialect's shape, whatever the request, and nothing runs", async () => {
    const { key, info } = await h.admin.create({ name: "empty", credits: 0 });
    for (const c of CASES) {
      const res = await h.app.inject({ method: "POST", url: c.url, payload: c.body, headers: keyHeaders(key) });
      assert.equal(res.statusCode, c.status, `${c.dialect}: ${res.body}`);
      assert.equal(res.headers["x-easel-error-code"], "E_CREDITS_INSUFFICIENT", c.dialect);
      c.shape(JSON.parse(res.body));
    }
    assert.equal(h.provider.calls, 0, "nothing generated");
    assert.deepEqual((await h.store.ledger(info.id)).map((e) => e.kind), [], "nothing reserved or charged");
  });

  test("a balance of two minimum prices pays for two of the smallest images, then the key is refused", async () => {
    const { key, info } = await h.admin.create({ name: "two", credits: 0.002 });
    const tiny = { model: "sd15", prompt: "a cat", size: "64x64", steps: 1, response_format: "b64_json" };
    for (let i = 0; i < 2; i++) {
      const res = await h.app.inject({ method: "POST", url: "/v1/images/generations", payload: tiny, headers: keyHeaders(key) });
      assert.equal(res.statusCode, 200, res.body);
      assert.equal(res.headers["x-easel-credits-charged"], "0.001");
    }
    const refused = await h.app.inject({ method: "POST", url: "/v1/images/generations", payload: tiny, headers: keyHeaders(key) });
    assert.equal(refused.statusCode, 429, refused.body);
    openAiQuota(JSON.parse(refused.body));
    assert.equal(await h.store.balance(info.id), 0);
  });
});
