/**
 * Every quality field of every dialect, at both ends of its documented range, end to end: HTTP layer, real job
 * service, real encoder (sharp). 0 and 100 are valid values and produce images; one past either end is the
 * dialect's 400. Dialects without a quality field (Monica Playground, Playground, Segmind) have nothing to test.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import sharp from "sharp";
import type { GenerationRequest } from "../../src/core/types.ts";
import type { ImageProvider, ProviderResult } from "../../src/providers/spec.ts";
import { encodeImage, type RgbPixels } from "../../src/storage/image-codec.ts";
import { type HttpHarness, httpHarness, keyHeaders } from "./http-harness.ts";

/** Deterministic noise, so lossy quality visibly changes the file size (a solid colour barely would). */
function noise(width: number, height: number, seed: number): RgbPixels {
  const rgb = new Uint8Array(width * height * 3);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < rgb.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    rgb[i] = s >>> 24;
  }
  return { width, height, rgb };
}

function noiseProvider(): ImageProvider & { calls: number } {
  const p = {
    id: "noise",
    calls: 0,
    async generate(req: GenerationRequest): Promise<ProviderResult> {
      p.calls++;
      const seed = req.seed ?? 7;
      return { seed, images: Array.from({ length: req.n }, (_, i) => ({ ...noise(req.width, req.height, seed + i), seed: seed + i })), warnings: [] };
    },
  };
  return p;
}

test("the encoder takes the whole documented 0-100 range: 0 is its lowest quality (the same as 1), 100 its highest", async () => {
  const px = noise(64, 64, 3);
  for (const format of ["jpeg", "webp"] as const) {
    const q0 = await encodeImage(px, { format, quality: 0 });
    const q1 = await encodeImage(px, { format, quality: 1 });
    const q100 = await encodeImage(px, { format, quality: 100 });
    assert.deepEqual(q0.bytes, q1.bytes, `${format}: 0 maps onto the encoder's 1`);
    assert.ok(q0.bytes.length < q100.bytes.length, `${format}: ${q0.bytes.length} < ${q100.bytes.length}`);
  }
  // png is lossless: quality picks the zlib effort, 0 = level 9 (smallest), 100 = level 0 (stored).
  const p0 = await encodeImage(px, { format: "png", quality: 0 });
  const p100 = await encodeImage(px, { format: "png", quality: 100 });
  assert.ok(p0.bytes.length <= p100.bytes.length);
  assert.deepEqual(await sharp(p0.bytes).raw().toBuffer(), await sharp(p100.bytes).raw().toBuffer());
  await assert.rejects(encodeImage(px, { format: "jpeg", quality: 101 }), { code: "E_INPUT_INVALID" });
  await assert.rejects(encodeImage(px, { format: "jpeg", quality: -1 }), { code: "E_INPUT_INVALID" });
});

describe("quality fields at both ends, over HTTP with the real job service", () => {
  let h: HttpHarness;
  let key = "";
  before(async () => {
    h = await httpHarness({ provider: noiseProvider() });
    key = (await h.admin.create({ name: "quality" })).key;
  });
  after(() => h?.dispose());

  const post = (url: string, payload: Record<string, unknown>) => h.app.inject({ method: "POST", url, payload, headers: keyHeaders(key) });

  test("OpenAI output_compression 0 and 100 with jpeg, webp and png, on both paths", async () => {
    for (const url of ["/v1/images/generations", "/api/llm/images/generations"]) {
      for (const format of ["jpeg", "webp", "png"] as const) {
        const sizes: number[] = [];
        for (const c of [0, 100]) {
          const res = await post(url, { model: "sd15", prompt: "a cat", size: "64x64", steps: 1, response_format: "b64_json", output_format: format, output_compression: c });
          assert.equal(res.statusCode, 200, `${url} ${format} ${c}: ${res.body}`);
          const body = JSON.parse(res.body) as { data: { b64_json: string }[]; output_format: string };
          assert.equal(body.output_format, format);
          const bytes = Buffer.from(body.data[0].b64_json, "base64");
          const meta = await sharp(bytes).metadata();
          assert.deepEqual([meta.format, meta.width, meta.height], [format, 64, 64]);
          sizes.push(bytes.length);
        }
        if (format !== "png") assert.ok(sizes[0] < sizes[1], `${format}: compression 0 is the smaller file (${sizes})`);
      }
    }
  });

  test("OpenAI output_compression one past either end is a 400 naming the field", async () => {
    for (const c of [-1, 101]) {
      const res = await post("/v1/images/generations", { model: "sd15", prompt: "a cat", size: "64x64", output_format: "jpeg", output_compression: c });
      assert.equal(res.statusCode, 400, res.body);
      assert.equal(JSON.parse(res.body).error.param, "output_compression");
    }
  });

  test("Monica SD output_quality 0 and 100 on sd3 (WebP), and on sdxl where it is ignored (PNG)", async () => {
    const sizes: number[] = [];
    for (const q of [0, 100]) {
      const res = await post("/v1/image/gen/sd", { model: "sd3", prompt: "a cat", steps: 1, output_quality: q });
      assert.equal(res.statusCode, 200, `sd3 ${q}: ${res.body}`);
      const url = new URL((JSON.parse(res.body) as { data: { url: string }[] }).data[0].url);
      const file = await h.app.inject({ method: "GET", url: url.pathname });
      assert.equal(file.statusCode, 200);
      assert.equal(file.headers["content-type"], "image/webp");
      const meta = await sharp(file.rawPayload).metadata();
      assert.deepEqual([meta.format, meta.width, meta.height], ["webp", 1024, 1024]);
      sizes.push(file.rawPayload.length);
    }
    assert.ok(sizes[0] < sizes[1], `output_quality 0 is the smaller file (${sizes})`);
    for (const q of [0, 100]) {
      const res = await post("/v1/image/gen/sd", { model: "sdxl", prompt: "a cat", num_inference_steps: 1, output_quality: q });
      assert.equal(res.statusCode, 200, `sdxl ${q}: ${res.body}`);
      assert.match(String(res.headers["x-easel-warnings"]), /output_quality/);
    }
  });

  test("Monica SD output_quality one past either end is a 400 naming the field", async () => {
    for (const q of [-1, 101]) {
      const res = await post("/v1/image/gen/sd", { model: "sd3", prompt: "a cat", steps: 1, output_quality: q });
      assert.equal(res.statusCode, 400, res.body);
      assert.equal(JSON.parse(res.body).error.param, "output_quality");
    }
  });
});
