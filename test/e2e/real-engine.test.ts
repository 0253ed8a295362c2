/**
 * The loopback e2e suite over the real composition `easel serve` uses (SQLite store, fs blobs, engine worker,
 * model registry, job service, HTTP app) with the micro reference checkpoints as the installed models.
 */
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { after, before, describe, test } from "node:test";
import { startServer } from "../../src/cli/serve.ts";
import { loadConfig } from "../../src/config/index.ts";
import { withSqliteKeys } from "../helpers/keys.ts";
import { e2eSuite } from "../http/e2e-suite.ts";

const FIXTURES = resolve("test/fixtures/models");

function makeDataDir(): string {
  const dataDir = mkdtempSync(join(tmpdir(), "easel-e2e-"));
  mkdirSync(join(dataDir, "models"));
  symlinkSync(join(FIXTURES, "sd15"), join(dataDir, "models", "sd15"));
  symlinkSync(join(FIXTURES, "playground"), join(dataDir, "models", "playground-v2.5"));
  return dataDir;
}

async function createKey(dataDir: string, credits?: number): Promise<string> {
  return (await withSqliteKeys(join(dataDir, "easel.db"), (keys) => keys.create({ name: "e2e", credits }))).key;
}

const dataDir = makeDataDir();
const apiKey = await createKey(dataDir);
const config = (extra = {}) =>
  loadConfig({ env: {}, flags: { dataDir, server: { host: "127.0.0.1", port: 0 }, engine: { intraOpThreads: 2 }, ...extra } });

e2eSuite("e2e over the real engine (micro checkpoints)", {
  async start() {
    const s = await startServer({ config: config(), log: () => {} });
    return { base: s.url, close: () => s.close() };
  },
  apiKey,
  model: "sd15",
  size: "64x64",
  skip: { monicaSd: "covered by test/e2e/monica-sd.test.ts over tiny SD3 / SD3.5 checkpoints" },
});

describe("credits over HTTP with the real engine", () => {
  let base = "";
  let close = async () => {};
  let key = "";
  before(async () => {
    const dir = makeDataDir();
    key = await createKey(dir, 2);
    // One credit per 64x64 two-step image, so the balance pays for exactly two.
    const pricing = { default: { perImage: 1, referencePixels: 64 * 64, referenceSteps: 2 } };
    const s = await startServer({ config: loadConfig({ env: {}, flags: { dataDir: dir, server: { port: 0 }, pricing } }), log: () => {} });
    base = s.url;
    close = () => s.close();
  });
  after(() => close());

  const post = (path: string, body: unknown, headers: Record<string, string>) =>
    fetch(`${base}${path}`, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: JSON.stringify(body) });

  test("a balance for two images pays for two; then OpenAI and Segmind refuse in their own shapes", async () => {
    const body = { model: "sd15", prompt: "a lighthouse", size: "64x64", steps: 2, response_format: "b64_json" };
    const auth = { authorization: `Bearer ${key}` };
    const answers: { status: number; text: string }[] = [];
    for (let i = 0; i < 3; i++) {
      const r = await post("/v1/images/generations", body, auth);
      answers.push({ status: r.status, text: await r.text() });
    }
    assert.deepEqual(answers.map((a) => a.status), [200, 200, 429], answers.map((a) => a.text).join("\n"));
    // OpenAI answers an exhausted balance with 429 insufficient_quota.
    assert.equal(JSON.parse(answers[2].text).error.code, "insufficient_quota");
    const seg = await post("/v1/playground-v2.5", { prompt: "x", samples: 1, num_inference_steps: 20, base64: true }, { "x-api-key": key });
    assert.equal(seg.status, 406);
    assert.equal(Number(seg.headers.get("x-remaining-credits")), 0);
  });
});

describe("OpenAI extension fields reach the real pipeline", () => {
  let base = "";
  let close = async () => {};
  before(async () => {
    const s = await startServer({ config: config(), log: () => {} });
    base = s.url;
    close = () => s.close();
  });
  after(() => close());

  const generate = async (extra: Record<string, unknown>) => {
    const res = await fetch(`${base}/v1/images/generations`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${apiKey}` },
      body: JSON.stringify({ model: "sd15", prompt: "a lighthouse", size: "64x64", steps: 2, seed: 7, response_format: "b64_json", ...extra }),
    });
    return { status: res.status, body: (await res.json()) as { data?: { b64_json: string }[]; error?: { param: string } } };
  };

  test("clip_skip changes the conditioning (a different image for the same seed); past the encoder's depth it is a 400", async () => {
    const plain = await generate({});
    const again = await generate({});
    const skipped = await generate({ clip_skip: 1 });
    assert.equal(plain.status, 200);
    assert.equal(skipped.status, 200);
    assert.equal(plain.body.data?.[0].b64_json, again.body.data?.[0].b64_json, "same seed, same image");
    assert.notEqual(plain.body.data?.[0].b64_json, skipped.body.data?.[0].b64_json, "clip_skip reached the text encoder");
    const tooDeep = await generate({ clip_skip: 99 });
    assert.equal(tooDeep.status, 400);
    assert.equal(tooDeep.body.error?.param, "clip_skip");
  });
});
