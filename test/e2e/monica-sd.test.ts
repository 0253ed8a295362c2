/**
 * Monica SD (`POST /v1/image/gen/sd`, specs/003) end to end over the real engine: `startServer` on loopback with
 * seeded tiny SD3 and SD3.5 checkpoints (written into the temp data dir) and the micro SDXL fixture as the installed
 * models. The page allows only the sizes 1024x1024, 1344x768 and 768x1344, so every image here is 1024x1024; the
 * page's own curl body runs verbatim (sd3_5, 28 steps), the other requests lower their step counts to save time.
 */
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { after, before, describe, test } from "node:test";
import sharp from "sharp";
import { loadCheckpoint } from "../../src/checkpoint/checkpoint.ts";
import { startServer } from "../../src/cli/serve.ts";
import { loadConfig } from "../../src/config/index.ts";
import { sd3TransformerConfigFromJson } from "../../src/models/sd3/config.ts";
import { buildMmditGraph } from "../../src/models/sd3/mmdit.graph.ts";
import { planSd3ForRuntime } from "../../src/models/sd3/pipeline.ts";
import { type TinyTransformerBuilder, writeTinyCheckpoint } from "../../src/models/testing/tiny-checkpoint.ts";
import { withSqliteKeys } from "../helpers/keys.ts";
import { MONICA_SD_EXAMPLE as PAGE_BODY } from "../http/spec-examples.ts";

const SDXL_FIXTURE = resolve("test/fixtures/models/sdxl");
const transformer: TinyTransformerBuilder = (json, w) => buildMmditGraph(sd3TransformerConfigFromJson(json), w);


const dataDir = mkdtempSync(join(tmpdir(), "easel-monica-sd-"));
const modelsDir = join(dataDir, "models");
mkdirSync(modelsDir);
writeTinyCheckpoint(join(modelsDir, "sd3"), { family: "sd3", seed: 3, transformer });
writeTinyCheckpoint(join(modelsDir, "sd3_5"), { family: "sd3_5", seed: 35, transformer });
symlinkSync(SDXL_FIXTURE, join(modelsDir, "sdxl"));

/**
 * The server plans SD3 memory from the machine's free memory when a model loads (src/models/sd3/memory.ts) and
 * refuses when its estimate does not fit; on a machine that busy the SD3 requests cannot pass, so they are skipped
 * with the plan's own message.
 */
function sd3MemorySkip(): string | undefined {
  const rt = { executionProvider: "cpu" as const, intraOpThreads: 2, cacheDir: join(dataDir, "cache") };
  try {
    for (const name of ["sd3", "sd3_5"]) planSd3ForRuntime(loadCheckpoint(join(modelsDir, name)), rt);
    return undefined;
  } catch (e) {
    return `SD3 memory plan refuses on this machine now: ${(e as Error).message}`;
  }
}
const skipSd3 = sd3MemorySkip();

function countFiles(dir: string): number {
  let n = 0;
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true })) if (e.isFile()) n++;
  return n;
}

describe("Monica SD over the real engine (tiny sd3 / sd3_5, micro sdxl)", () => {
  let base = "";
  let apiKey = "";
  let close = async () => {};
  const imagesDir = join(dataDir, "images");

  before(async () => {
    apiKey = (await withSqliteKeys(join(dataDir, "easel.db"), (keys) => keys.create({ name: "monica-sd" }))).key;
    const config = loadConfig({ env: {}, flags: { dataDir, server: { host: "127.0.0.1", port: 0 }, engine: { intraOpThreads: 2 } } });
    const s = await startServer({ config, log: () => {} });
    base = s.url;
    close = () => s.close();
    mkdirSync(imagesDir, { recursive: true });
  });
  after(async () => {
    await close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  /** POSTs a Monica SD body; returns the answer, its JSON and the request's wall time in seconds. */
  async function generate(body: Record<string, unknown>) {
    const t0 = performance.now();
    const res = await fetch(`${base}/v1/image/gen/sd`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${apiKey}` },
      body: JSON.stringify(body),
    });
    const json = (await res.json()) as Record<string, unknown>;
    return { res, json, seconds: (performance.now() - t0) / 1000 };
  }

  /** Downloads the answer's URL and decodes it. */
  async function download(json: Record<string, unknown>) {
    const data = json.data as { url: string; seed?: number }[];
    assert.equal(data.length, 1);
    assert.ok(data[0].url.startsWith(`${base}/v1/files/`), data[0].url);
    const file = await fetch(data[0].url);
    assert.equal(file.status, 200);
    const bytes = Buffer.from(await file.arrayBuffer());
    const meta = await sharp(bytes).metadata();
    const stats = await sharp(bytes).stats();
    return { meta, stats, seed: data[0].seed, contentType: file.headers.get("content-type") };
  }

  test("steps past the model's range is the dialect's 400, and nothing is generated", async (t) => {
    const before = countFiles(imagesDir);
    for (const [model, steps, max] of [
      ["sd3", 29, 28],
      ["sd3_5", 51, 50],
    ] as const) {
      const { res, json, seconds } = await generate({ ...PAGE_BODY, model, steps });
      t.diagnostic(`${model} steps ${steps}: ${res.status} in ${seconds.toFixed(2)} s`);
      assert.equal(res.status, 400, JSON.stringify(json));
      const error = json.error as { message: string; type: string; param: string; code: string };
      assert.equal(error.type, "invalid_request_error");
      assert.equal(error.param, "steps");
      assert.match(error.message, new RegExp(`steps for ${model} must be between 1 and ${max}, got ${steps}`));
      assert.equal(res.headers.get("x-easel-error-code"), "E_INPUT_INVALID");
    }
    assert.equal(countFiles(imagesDir), before, "a rejected request stored an image");
  });

  test("the page's curl body verbatim (sd3_5, 28 steps, string numbers): a WebP 1024x1024 at the URL", { skip: skipSd3 }, async (t) => {
    const { res, json, seconds } = await generate(PAGE_BODY);
    t.diagnostic(`sd3_5 1024x1024 28 steps cfg 3.5: ${res.status} in ${seconds.toFixed(1)} s`);
    assert.equal(res.status, 200, JSON.stringify(json));
    assert.equal(res.headers.get("x-easel-seed"), "42");
    // Every sdxl-only field of the page's body has its default value, so none is reported as ignored.
    assert.doesNotMatch(res.headers.get("x-easel-warnings") ?? "", /negative_prompt|num_outputs|scheduler|num_inference_steps/);
    const img = await download(json);
    assert.equal(img.meta.format, "webp");
    assert.equal(img.contentType, "image/webp");
    assert.deepEqual([img.meta.width, img.meta.height], [1024, 1024]);
    assert.equal(img.seed, 42);
    assert.ok(img.stats.channels.some((c) => c.stdev > 1), "the image is flat");
  });

  test("sd3 with fewer steps: a WebP 1024x1024; an sdxl-only field that differs from its default is a warning", { skip: skipSd3 }, async (t) => {
    const { res, json, seconds } = await generate({ ...PAGE_BODY, model: "sd3", steps: 2, seed: "7", scheduler: "K_DPMPP_2M", output_quality: 60 });
    t.diagnostic(`sd3 1024x1024 2 steps cfg 3.5: ${res.status} in ${seconds.toFixed(1)} s`);
    assert.equal(res.status, 200, JSON.stringify(json));
    assert.match(res.headers.get("x-easel-warnings") ?? "", /scheduler/);
    const img = await download(json);
    assert.equal(img.meta.format, "webp");
    assert.deepEqual([img.meta.width, img.meta.height], [1024, 1024]);
    assert.equal(img.seed, 7);
  });

  test("sdxl with fewer num_inference_steps: a 1024x1024 image (sdxl answers PNG)", async (t) => {
    const { res, json, seconds } = await generate({ ...PAGE_BODY, model: "sdxl", num_inference_steps: 2, cfg_scale: "7.5", seed: "5", steps: undefined, output_quality: undefined });
    t.diagnostic(`sdxl 1024x1024 2 steps cfg 7.5: ${res.status} in ${seconds.toFixed(1)} s`);
    assert.equal(res.status, 200, JSON.stringify(json));
    const img = await download(json);
    assert.equal(img.meta.format, "png");
    assert.deepEqual([img.meta.width, img.meta.height], [1024, 1024]);
    assert.equal(img.seed, 5);
  });
});
