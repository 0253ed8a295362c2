/**
 * The prompt features through the real server (`startServer` on loopback, the real engine and job service): the
 * image safety checker configured by `safety` on a copy of the micro sd15 fixture with a tiny checker that flags every
 * image, a model without a checker, and the semantic prompt check wired to the engine's CLIP text embeddings
 * (prompts.semanticThreshold -1: every topic is "similar", so the refusal can only come from the embeddings).
 */
import assert from "node:assert/strict";
import { cpSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { after, before, describe, test } from "node:test";
import sharp from "sharp";
import { type EaselServer, startServer } from "../../src/cli/serve.ts";
import { loadConfig } from "../../src/config/index.ts";
import { addTinySafetyChecker } from "../../src/models/testing/tiny-safety-checker.ts";

const SD15 = resolve("test/fixtures/models/sd15");

describe("prompt features on a real server", { timeout: 300_000 }, () => {
  let dataDir: string;
  let server: EaselServer;
  before(async () => {
    dataDir = mkdtempSync(join(tmpdir(), "easel-e2e-prompts-"));
    const models = join(dataDir, "models");
    mkdirSync(models);
    cpSync(SD15, join(models, "checked"), { recursive: true });
    addTinySafetyChecker(join(models, "checked"), { seed: 4, thresholds: { special: -1, concept: -1 } });
    cpSync(SD15, join(models, "plain"), { recursive: true });
    const config = loadConfig({
      env: {},
      flags: { dataDir, server: { host: "127.0.0.1", port: 0 }, engine: { intraOpThreads: 2 }, models: { default: "plain" }, prompts: { semanticThreshold: -1 } },
    });
    server = await startServer({ config, log: () => {} });
  });
  after(async () => {
    await server?.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  const post = (body: Record<string, unknown>) =>
    fetch(`${server.url}/v1/images/generations`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ size: "64x64", steps: 2, response_format: "b64_json", ...body }),
    });

  test("safety_check on a model with a checker: the image comes back black with W_IMAGE_FLAGGED", async () => {
    const res = await post({ model: "checked", prompt: "a red circle", safety_check: true });
    assert.equal(res.status, 200, await res.clone().text());
    const warnings = JSON.parse(res.headers.get("x-easel-warnings") ?? "[]") as { code: string }[];
    assert.ok(warnings.some((w) => w.code === "W_IMAGE_FLAGGED"), JSON.stringify(warnings));
    const body = (await res.json()) as { data: { b64_json: string }[] };
    const { data, info } = await sharp(Buffer.from(body.data[0].b64_json, "base64")).raw().toBuffer({ resolveWithObject: true });
    assert.deepEqual([info.width, info.height], [64, 64]);
    assert.ok(data.every((v) => v === 0));
    // Unasked, the same model's image is not checked.
    const plain = await post({ model: "checked", prompt: "a red circle" });
    const img = await sharp(Buffer.from(((await plain.json()) as { data: { b64_json: string }[] }).data[0].b64_json, "base64")).raw().toBuffer();
    assert.ok(img.some((v) => v !== 0));
  });

  const jobCount = async () => ((await (await fetch(`${server.url}/v1/jobs?limit=100`)).json()) as { data: unknown[] }).data.length;

  test("safety_check on a model without a checker is refused before admission with unsupported_value naming safety_check", async () => {
    const jobs = await jobCount();
    const res = await post({ model: "plain", prompt: "a red circle", safety_check: true });
    assert.equal(await jobCount(), jobs, "no job recorded");
    assert.equal(res.status, 400);
    const e = ((await res.json()) as { error: { code: string; param: string; message: string } }).error;
    assert.deepEqual([e.code, e.param], ["unsupported_value", "safety_check"]);
    assert.match(e.message, /has no safety checker/);
  });

  test("the semantic check asks the engine for the model's CLIP embeddings", async () => {
    const res = await post({ model: "plain", prompt: "a red circle", prompt_rejection_topics: ["gambling"] });
    assert.equal(res.status, 400);
    assert.equal(res.headers.get("x-easel-error-code"), "E_PROMPT_UNSAFE");
    const e = ((await res.json()) as { error: { message: string } }).error;
    assert.match(e.message, /"gambling" \(similarity -?\d\.\d{3}\)/);
  });
});
