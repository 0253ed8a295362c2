/**
 * OpenAI image clients with a fixed model list, replayed against the real server on loopback (micro sd15 as the
 * default model, so `dall-e-*` and `gpt-image-*` answer with it): the exact requests each client sends, taken from
 * its source, and what it reads back.
 * - Open WebUI, backend/open_webui/routers/images.py (open-webui/open-webui 02530d5): `image_generations` (openai
 *   engine: JSON `{model, prompt, n, size}` plus `response_format: "b64_json"` unless the model matches `^gpt-image`;
 *   reads `data[].url` (fetched with the Authorization header, content-type must be image/*) or `data[].b64_json`)
 *   and `image_edits` (multipart: model, prompt, optional n and size, the same response_format rule, the image as
 *   `image`, or each as `image[]`).
 * - LibreChat, api/app/clients/tools/structured/OpenAIImageTools.js (danny-avila/LibreChat): image_gen_oai
 *   (`openai.images.generate` with model gpt-image-1, background auto, output_format png, quality auto, size auto;
 *   reads `data[0].b64_json`) and image_edit_oai (axios multipart to /images/edits: model, prompt, quality, size,
 *   `image[]`; reads `data.data[0].b64_json`).
 * - n8n, packages/@n8n/nodes-langchain/nodes/vendors/OpenAi/actions/image/generate.operation.ts (n8n-io/n8n
 *   4b50040): JSON `{prompt, model, response_format (left out for gpt-image-1), ...options}`; reads `data[].b64_json`,
 *   or `data[]` as JSON with "Respond with Image URL(s)".
 * - Home Assistant, homeassistant/components/openai_conversation/__init__.py (home-assistant/core 004090e):
 *   `models.list` at setup, then generate_image: `images.generate(model="dall-e-3", size, quality, style,
 *   response_format="url", n=1)` answering `data[0]` without `b64_json`.
 */
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { after, before, describe, test } from "node:test";
import OpenAI from "openai";
import sharp from "sharp";
import { startServer } from "../../src/cli/serve.ts";
import { loadConfig } from "../../src/config/index.ts";
import { withSqliteKeys } from "../helpers/keys.ts";

const FIXTURES = resolve("test/fixtures/models");

/** An OpenAI images answer, as these clients read it. */
interface Answer {
  data: { url?: string; b64_json?: string; revised_prompt?: string }[];
}

const answer = async (r: Response): Promise<Answer> => (await r.json()) as Answer;

async function photo(): Promise<Buffer> {
  return sharp({ create: { width: 64, height: 64, channels: 3, background: "#3366aa" } }).png().toBuffer();
}

/** What a client that stores the image checks of base64 bytes: they decode to a PNG of this size. */
async function pngOfSize(b64: unknown, width: number, height: number): Promise<void> {
  assert.equal(typeof b64, "string", "b64_json is a string");
  const meta = await sharp(Buffer.from(b64 as string, "base64")).metadata();
  assert.deepEqual([meta.format, meta.width, meta.height], ["png", width, height]);
}

describe("OpenAI image clients replayed from their source (Open WebUI, LibreChat, n8n, Home Assistant)", () => {
  let dataDir: string;
  let base = "";
  let apiKey = "";
  let close = async () => {};
  const json = (path: string, body: unknown) =>
    fetch(`${base}/v1${path}`, { method: "POST", headers: { authorization: `Bearer ${apiKey}`, "content-type": "application/json" }, body: JSON.stringify(body) });
  const multipart = (path: string, form: FormData) => fetch(`${base}/v1${path}`, { method: "POST", headers: { authorization: `Bearer ${apiKey}` }, body: form });
  const pngBlob = (b: Buffer) => new Blob([new Uint8Array(b)], { type: "image/png" });

  before(async () => {
    dataDir = mkdtempSync(join(tmpdir(), "easel-openai-clients-"));
    mkdirSync(join(dataDir, "models"));
    symlinkSync(join(FIXTURES, "sd15"), join(dataDir, "models", "sd15"));
    apiKey = (await withSqliteKeys(join(dataDir, "easel.db"), (keys) => keys.create({ name: "clients" }))).key;
    const config = loadConfig({ env: {}, flags: { dataDir, server: { host: "127.0.0.1", port: 0 }, engine: { intraOpThreads: 2 }, models: { default: "sd15" } } });
    const s = await startServer({ config, log: () => {} });
    base = s.url;
    close = () => s.close();
  });
  after(async () => {
    await close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  test("Open WebUI: generation with gpt-image-1 (no response_format) and dall-e-3 (b64_json); edits with image and image[]", async () => {
    // IMAGE_SIZE "auto" is offered for ^gpt-image models; no response_format for them.
    const gpt = await json("/images/generations", { model: "gpt-image-1", prompt: "a lighthouse", n: 1, size: "auto" });
    assert.equal(gpt.status, 200, await gpt.clone().text());
    for (const image of (await answer(gpt)).data) {
      assert.equal(image.url, undefined, "gpt-image answers base64, as OpenAI does");
      await pngOfSize(image.b64_json, 64, 64);
    }
    const dalle = await json("/images/generations", { model: "dall-e-3", prompt: "a lighthouse", n: 1, size: "1024x1024", response_format: "b64_json" });
    assert.equal(dalle.status, 200);
    await pngOfSize((await answer(dalle)).data[0].b64_json, 64, 64);

    const form = new FormData();
    form.append("model", "gpt-image-1");
    form.append("prompt", "make it night");
    form.append("n", "1");
    form.append("size", "1024x1024");
    form.append("image", pngBlob(await photo()), "image.png");
    const edit = await multipart("/images/edits", form);
    assert.equal(edit.status, 200, await edit.clone().text());
    await pngOfSize((await answer(edit)).data[0].b64_json, 64, 64);

    const several = new FormData();
    several.append("model", "dall-e-2");
    several.append("prompt", "make it night");
    several.append("response_format", "b64_json");
    several.append("image[]", pngBlob(await photo()), "a.png");
    several.append("image[]", pngBlob(await photo()), "b.png");
    const edits = await multipart("/images/edits", several);
    assert.equal(edits.status, 200, await edits.clone().text());
    await pngOfSize((await answer(edits)).data[0].b64_json, 64, 64);
  });

  test("Open WebUI: an answer with url is fetched with the client's Authorization header and is an image/*", async () => {
    const r = await json("/images/generations", { model: "dall-e-2", prompt: "a lighthouse", n: 1, size: "512x512", response_format: "url" });
    const url = (await answer(r)).data[0].url ?? "";
    const image = await fetch(url, { headers: { Authorization: `Bearer ${apiKey}` } });
    assert.equal(image.status, 200);
    assert.equal(image.headers.get("content-type")?.split("/")[0], "image");
  });

  test("LibreChat: image_gen_oai and image_edit_oai read data[0].b64_json", async () => {
    const openai = new OpenAI({ apiKey, baseURL: `${base}/v1/`, maxRetries: 0 });
    const resp = await openai.images.generate({
      model: "gpt-image-1",
      prompt: "a red cube on a table",
      n: 1,
      background: "auto",
      output_format: "png",
      output_compression: undefined,
      quality: "auto",
      size: "auto",
    });
    await pngOfSize(resp.data?.[0].b64_json, 64, 64);

    const form = new FormData();
    form.append("model", "gpt-image-1");
    form.append("prompt", "paint the cube blue");
    form.append("quality", "auto");
    form.append("size", "auto");
    form.append("image[]", pngBlob(await photo()), "cube.png");
    const edit = await multipart("/images/edits", form);
    assert.equal(edit.status, 200, await edit.clone().text());
    const body = await answer(edit);
    assert.ok(body.data.length > 0);
    await pngOfSize(body.data[0].b64_json, 64, 64);
  });

  test("n8n: dall-e-3 options, gpt-image-1 without response_format, dall-e-2 with image URLs", async () => {
    const d3 = await json("/images/generations", { prompt: "a cat", model: "dall-e-3", response_format: "b64_json", quality: "hd", size: "1792x1024", style: "natural" });
    assert.equal(d3.status, 200, await d3.clone().text());
    for (const entry of (await answer(d3)).data) await pngOfSize(entry.b64_json, 88, 48);

    const gpt = await json("/images/generations", { prompt: "a cat", model: "gpt-image-1" });
    for (const entry of (await answer(gpt)).data) await pngOfSize(entry.b64_json, 64, 64);

    const urls = await json("/images/generations", { prompt: "a cat", model: "dall-e-2", response_format: "url", n: 2, size: "256x256" });
    const data = (await answer(urls)).data;
    assert.equal(data.length, 2);
    for (const entry of data) assert.match(entry.url ?? "", /^http:\/\/127\.0\.0\.1:\d+\/v1\/files\/\S+\.png$/);
  });

  test("Home Assistant: models.list, then generate_image with dall-e-3 and response_format url", async () => {
    const openai = new OpenAI({ apiKey, baseURL: `${base}/v1`, maxRetries: 0 });
    const models = await openai.models.list();
    assert.ok(models.data.some((m) => m.id === "sd15"));
    const response = await openai.images.generate({
      model: "dall-e-3",
      prompt: "the living room at night",
      size: "1024x1792",
      quality: "standard",
      style: "vivid",
      response_format: "url",
      n: 1,
    });
    const first = response.data?.[0] ?? {};
    const { b64_json, ...shown } = first;
    assert.equal(b64_json, undefined);
    assert.equal(shown.revised_prompt, "the living room at night");
    const image = await fetch(shown.url ?? "");
    assert.equal(image.headers.get("content-type"), "image/png");
    const meta = await sharp(Buffer.from(await image.arrayBuffer())).metadata();
    assert.deepEqual([meta.width, meta.height], [48, 88]);
  });
});
