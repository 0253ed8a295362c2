/**
 * OpenAI clients against the real server on loopback (SQLite, fs blobs, engine worker) with tiny checkpoints: the
 * `openai` npm SDK's images.generate with OpenAI's model names and sizes, images.edit (img2img, inpainting with a
 * mask, several images, a 9-channel inpainting checkpoint), images.createVariation, and bad multipart input in
 * OpenAI's error shape with nothing generated or charged. The model names map onto the default model by
 * models.defaultAliases (here models.default = the micro sd15, 64x64 native).
 */
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { after, before, describe, test } from "node:test";
import OpenAI, { toFile } from "openai";
import sharp from "sharp";
import { startServer } from "../../src/cli/serve.ts";
import { loadConfig } from "../../src/config/index.ts";
import { writeTinyCheckpoint } from "../../src/models/testing/tiny-checkpoint.ts";
import { withSqliteKeys } from "../helpers/keys.ts";

const FIXTURES = resolve("test/fixtures/models");
/** A small upload limit, so the too-large case needs no large file. */
const IMAGE_LIMIT = 256 * 1024;

/** A 64x64 RGB PNG with a colour pattern. */
async function png(width = 64, height = 64): Promise<Buffer> {
  const raw = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) raw.set([(x * 4) % 256, (y * 4) % 256, 128], (y * width + x) * 3);
  }
  return sharp(raw, { raw: { width, height, channels: 3 } }).png().toBuffer();
}

/** OpenAI's mask: an RGBA PNG, transparent (alpha 0) where the image is to be edited: here the left half. */
async function leftHalfMask(width = 64, height = 64): Promise<Buffer> {
  const raw = Buffer.alloc(width * height * 4);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) raw.set([0, 0, 0, x < width / 2 ? 0 : 255], (y * width + x) * 4);
  return sharp(raw, { raw: { width, height, channels: 4 } }).png().toBuffer();
}

async function decoded(b64: string | undefined): Promise<{ width?: number; height?: number; format?: string; rgb: Buffer }> {
  assert.ok(b64, "b64_json in the answer");
  const bytes = Buffer.from(b64, "base64");
  const meta = await sharp(bytes).metadata();
  return { width: meta.width, height: meta.height, format: meta.format, rgb: await sharp(bytes).removeAlpha().raw().toBuffer() };
}

function warningsOf(headers: Headers): { code: string; param?: string; message: string }[] {
  const h = headers.get("x-easel-warnings");
  return h ? JSON.parse(h) : [];
}

describe("OpenAI SDK: model names, sizes, edits, inpainting, variations (tiny checkpoints, real server)", () => {
  let dataDir: string;
  let base = "";
  let close = async () => {};
  let apiKey = "";
  let client: OpenAI;
  // Extension fields ride along as extra body fields (the SDK sends unknown keys as they are).
  const fast = { steps: 2 } as Record<string, unknown>;

  before(async () => {
    dataDir = mkdtempSync(join(tmpdir(), "easel-openai-images-"));
    mkdirSync(join(dataDir, "models"));
    symlinkSync(join(FIXTURES, "sd15"), join(dataDir, "models", "sd15"));
    writeTinyCheckpoint(join(dataDir, "models", "sd15-inpainting"), { family: "sd15", seed: 9, inpainting: true });
    apiKey = (await withSqliteKeys(join(dataDir, "easel.db"), (keys) => keys.create({ name: "e2e", credits: 10_000 }))).key;
    const config = loadConfig({
      env: {},
      flags: {
        dataDir,
        server: { host: "127.0.0.1", port: 0, imageBodyLimitBytes: IMAGE_LIMIT },
        engine: { intraOpThreads: 2 },
        models: { default: "sd15" },
      },
    });
    const s = await startServer({ config, log: () => {} });
    base = s.url;
    close = () => s.close();
    client = new OpenAI({ apiKey, baseURL: `${base}/v1`, maxRetries: 0 });
  });
  after(async () => {
    await close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  test('images.generate with model "dall-e-3", size "1792x1024": the default model makes that aspect at its own resolution', async () => {
    const { data, response } = await client.images
      .generate({ model: "dall-e-3", prompt: "a lighthouse at dusk", size: "1792x1024", quality: "hd", style: "vivid", response_format: "b64_json", ...fast })
      .withResponse();
    assert.equal(data.data?.length, 1);
    const img = await decoded(data.data?.[0].b64_json);
    // 64x64 = 4096 pixels at 1792:1024 (1.75), sides rounded to multiples of 8.
    assert.deepEqual([img.format, img.width, img.height], ["png", 88, 48]);
    assert.equal(data.size, "88x48");
    const warnings = warningsOf(response.headers);
    const mapped = warnings.find((w) => w.code === "W_SIZE_MAPPED");
    assert.ok(mapped?.message.includes("1792x1024") && mapped.message.includes("88x48"), JSON.stringify(warnings));
    assert.ok(warnings.some((w) => w.code === "W_IGNORED" && w.param === "quality"));
    assert.ok(warnings.some((w) => w.code === "W_IGNORED" && w.param === "style"));
  });

  test('background "transparent" (which OpenAI accepts) makes an opaque image and says so', async () => {
    const { data, response } = await client.images
      .generate({ model: "gpt-image-1", prompt: "a sticker of a cat", background: "transparent", ...fast } as OpenAI.ImageGenerateParamsNonStreaming)
      .withResponse();
    assert.equal(data.background, "opaque");
    const meta = await sharp(Buffer.from(data.data?.[0].b64_json ?? "", "base64")).metadata();
    assert.equal(meta.hasAlpha, false);
    assert.ok(warningsOf(response.headers).some((w) => w.code === "W_BACKGROUND_OPAQUE" && w.param === "background"));
  });

  test("gpt-image-1, gpt-image-1.5 and dall-e-2 answer with the default model at each size they offer; GET /v1/models lists the aliases", async () => {
    for (const [model, size, want] of [
      ["gpt-image-1", "auto", [64, 64]],
      ["gpt-image-1.5", "1024x1536", [56, 80]],
      ["dall-e-2", "256x256", [64, 64]],
    ] as const) {
      const r = await client.images.generate({ model, prompt: "a red cube", size, response_format: "b64_json", ...fast } as OpenAI.ImageGenerateParamsNonStreaming);
      const img = await decoded(r.data?.[0].b64_json);
      assert.deepEqual([img.width, img.height], want, `${model} ${size}`);
    }
    const sd15 = await client.models.retrieve("sd15");
    assert.ok((sd15 as unknown as { aliases: string[] }).aliases.includes("dall-e-3"));
    // An Easel model named directly makes an OpenAI size it accepts as asked.
    const direct = await client.images.generate({ model: "sd15", prompt: "a red cube", size: "256x256", response_format: "b64_json", ...fast } as OpenAI.ImageGenerateParamsNonStreaming);
    assert.deepEqual([(await decoded(direct.data?.[0].b64_json)).width], [256]);
  });

  test("images.edit without a mask is img2img from the image, at its size; with a mask it inpaints; url answers end in .png", async () => {
    const image = await png();
    const plain = await client.images
      .edit({ model: "gpt-image-1", image: await toFile(image, "photo.png", { type: "image/png" }), prompt: "a blue sky", response_format: "b64_json", seed: 7, ...fast } as OpenAI.ImageEditParamsNonStreaming)
      .withResponse();
    const p = await decoded(plain.data.data?.[0].b64_json);
    assert.deepEqual([p.width, p.height], [64, 64]);
    assert.equal(plain.data.size, "64x64");
    assert.equal(plain.data.data?.[0].revised_prompt, "a blue sky");

    const masked = await client.images.edit({
      image: await toFile(image, "photo.png", { type: "image/png" }),
      mask: await toFile(await leftHalfMask(), "mask.png", { type: "image/png" }),
      prompt: "a blue sky",
      response_format: "b64_json",
      seed: 7,
      ...fast,
    } as OpenAI.ImageEditParamsNonStreaming);
    const m = await decoded(masked.data?.[0].b64_json);
    assert.deepEqual([m.width, m.height], [64, 64]);
    assert.notDeepEqual(m.rgb, p.rgb, "the mask changes the run (inpainting from noise at strength 1, not img2img)");

    // The same mask carried by the image's own alpha (dall-e-2's rule without a mask) makes the same image.
    const rgba = await sharp(image).joinChannel(await sharp(await leftHalfMask()).extractChannel(3).toBuffer()).png().toBuffer();
    const ownAlpha = await client.images.edit({ image: await toFile(rgba, "photo.png", { type: "image/png" }), prompt: "a blue sky", response_format: "b64_json", seed: 7, ...fast } as OpenAI.ImageEditParamsNonStreaming);
    assert.deepEqual((await decoded(ownAlpha.data?.[0].b64_json)).rgb, m.rgb);

    const url = await client.images.edit({ image: await toFile(image, "photo.png", { type: "image/png" }), prompt: "a boat", ...fast } as OpenAI.ImageEditParamsNonStreaming);
    const link = url.data?.[0].url ?? "";
    assert.match(link, /\/v1\/files\/[^/]+\.png$/);
    const file = await fetch(link);
    assert.equal(file.status, 200);
    assert.equal(file.headers.get("content-type"), "image/png");
  });

  test("images.edit with image[] (several images) edits the first and says so; an inpainting checkpoint (UNet in_channels 9) runs", async () => {
    const image = await toFile(await png(), "a.png", { type: "image/png" });
    const second = await toFile(await png(48, 48), "b.png", { type: "image/png" });
    const r = await client.images.edit({ image: [image, second], prompt: "a cat", n: 2, response_format: "b64_json", ...fast } as OpenAI.ImageEditParamsNonStreaming).withResponse();
    assert.equal(r.data.data?.length, 2);
    assert.ok(warningsOf(r.response.headers).some((w) => w.code === "W_IGNORED" && w.param === "image"));

    const inpainted = await client.images.edit({
      model: "sd15-inpainting",
      image: await toFile(await png(), "a.png", { type: "image/png" }),
      mask: await toFile(await leftHalfMask(), "mask.png", { type: "image/png" }),
      prompt: "a cat",
      response_format: "b64_json",
      ...fast,
    } as OpenAI.ImageEditParamsNonStreaming);
    const img = await decoded(inpainted.data?.[0].b64_json);
    assert.deepEqual([img.width, img.height], [64, 64]);
    // Without an image the inpainting model cannot run; generations say so in OpenAI's shape.
    await assert.rejects(
      client.images.generate({ model: "sd15-inpainting", prompt: "a cat", ...fast } as OpenAI.ImageGenerateParamsNonStreaming),
      (e: unknown) => e instanceof OpenAI.APIError && /inpainting model/.test(e.message),
    );
  });

  test("images.edit with stream: true answers the SDK's image_edit.* events: partial images, then the edited image", async () => {
    const stream = await client.images.edit({
      image: await toFile(await png(), "photo.png", { type: "image/png" }),
      mask: await toFile(await leftHalfMask(), "mask.png", { type: "image/png" }),
      prompt: "a blue sky",
      stream: true,
      partial_images: 2,
      steps: 4,
    } as OpenAI.ImageEditParamsStreaming);
    const types: string[] = [];
    let last: OpenAI.ImageEditStreamEvent | undefined;
    for await (const e of stream) {
      types.push(e.type);
      last = e;
    }
    assert.deepEqual(types, ["image_edit.partial_image", "image_edit.partial_image", "image_edit.completed"]);
    assert.ok(last?.type === "image_edit.completed");
    const img = await decoded(last.b64_json);
    assert.deepEqual([img.width, img.height, last.size], [64, 64, "64x64"]);
  });

  test("images.createVariation: img2img from the image with an empty prompt; dall-e-2 sizes map to the model", async () => {
    const r = await client.images.createVariation({
      model: "dall-e-2",
      image: await toFile(await png(), "photo.png", { type: "image/png" }),
      n: 2,
      size: "512x512",
      response_format: "b64_json",
      ...fast,
    } as OpenAI.ImageCreateVariationParams);
    assert.equal(r.data?.length, 2);
    for (const d of r.data ?? []) assert.deepEqual([(await decoded(d.b64_json)).width], [64]);
    assert.notDeepEqual((await decoded(r.data?.[0].b64_json)).rgb, (await decoded(r.data?.[1].b64_json)).rgb);
  });

  test("bad multipart input: OpenAI's error shape, nothing generated or charged", async () => {
    const before = await fetch(`${base}/v1/jobs`, { headers: { authorization: `Bearer ${apiKey}` } });
    const credits = before.headers.get("x-remaining-credits");
    const newest = ((await before.json()) as { data: { id: string }[] }).data[0]?.id;
    assert.ok(newest, "the earlier tests' jobs are listed");
    const image = await png();
    const form = (parts: [string, Blob | string, string?][]) => {
      const f = new FormData();
      for (const [k, v, name] of parts) {
        if (typeof v === "string") f.append(k, v);
        else f.append(k, v, name);
      }
      return f;
    };
    const pngBlob = (b: Buffer) => new Blob([new Uint8Array(b)], { type: "image/png" });
    const cases: [string, string, FormData | string, number, string, string | null][] = [
      ["no image", "/v1/images/edits", form([["prompt", "x"]]), 400, "missing_required_parameter", "image"],
      ["no prompt", "/v1/images/edits", form([["image", pngBlob(image), "a.png"]]), 400, "missing_required_parameter", "prompt"],
      ["unknown field", "/v1/images/edits", form([["image", pngBlob(image), "a.png"], ["prompt", "x"], ["colour", "red"]]), 400, "unknown_parameter", "colour"],
      ["bad n", "/v1/images/edits", form([["image", pngBlob(image), "a.png"], ["prompt", "x"], ["n", "eleven"]]), 400, "invalid_value", "n"],
      ["not an image", "/v1/images/edits", form([["image", new Blob(["hello"], { type: "image/png" }), "a.png"], ["prompt", "x"]]), 400, "invalid_value", "image"],
      ["image as text", "/v1/images/edits", form([["image", "aGVsbG8="], ["prompt", "x"]]), 400, "invalid_type", "image"],
      ["mask of another size", "/v1/images/edits", form([["image", pngBlob(image), "a.png"], ["mask", pngBlob(await leftHalfMask(32, 32)), "m.png"], ["prompt", "x"]]), 400, "invalid_value", "mask"],
      ["mask without alpha", "/v1/images/edits", form([["image", pngBlob(image), "a.png"], ["mask", pngBlob(image), "m.png"], ["prompt", "x"]]), 400, "invalid_value", "mask"],
      ["file too large", "/v1/images/edits", form([["prompt", "x"], ["image", new Blob([new Uint8Array(IMAGE_LIMIT + 1)], { type: "image/png" }), "big.png"]]), 413, "payload_too_large", "image"],
      ["two images on variations", "/v1/images/variations", form([["image", pngBlob(image), "a.png"], ["image", pngBlob(image), "b.png"]]), 400, "invalid_value", "image"],
      ["prompt on variations", "/v1/images/variations", form([["image", pngBlob(image), "a.png"], ["prompt", "x"]]), 400, "unknown_parameter", "prompt"],
      ["JSON body", "/v1/images/edits", JSON.stringify({ prompt: "x", image: "abc" }), 400, "invalid_type", null],
    ];
    for (const [name, path, body, status, code, param] of cases) {
      const headers: Record<string, string> = { authorization: `Bearer ${apiKey}` };
      if (typeof body === "string") headers["content-type"] = "application/json";
      const r = await fetch(`${base}${path}`, { method: "POST", headers, body });
      const text = await r.text();
      assert.equal(r.status, status, `${name}: ${text}`);
      const e = JSON.parse(text).error;
      assert.deepEqual([e.type, e.code, e.param], ["invalid_request_error", code, param], `${name}: ${text}`);
      assert.equal(typeof e.message, "string");
    }
    // A declared length past every limit is refused before the body is read (the rest is never sent).
    const declared = await new Promise<{ status: number; body: string }>((done, fail) => {
      const r = request(`${base}/v1/images/variations`, {
        method: "POST",
        headers: { authorization: `Bearer ${apiKey}`, "content-type": "multipart/form-data; boundary=x", "content-length": String(IMAGE_LIMIT + 64 * 256 * 1024 + 1) },
      });
      r.on("response", (res) => {
        let body = "";
        res.on("data", (c) => (body += c));
        res.on("end", () => done({ status: res.statusCode ?? 0, body }));
      });
      r.on("error", fail);
      r.write("--x\r\n");
    });
    assert.equal(declared.status, 413, declared.body);
    assert.equal(JSON.parse(declared.body).error.code, "payload_too_large");
    const unauthorised = await fetch(`${base}/v1/images/edits`, { method: "POST", body: form([["prompt", "x"]]) });
    assert.equal(unauthorised.status, 401);
    const afterwards = await fetch(`${base}/v1/jobs`, { headers: { authorization: `Bearer ${apiKey}` } });
    assert.equal(afterwards.headers.get("x-remaining-credits"), credits, "nothing charged");
    assert.equal(((await afterwards.json()) as { data: { id: string }[] }).data[0]?.id, newest, "no job admitted");
  });
});
