/**
 * LoRAs in requests: the `loras` extension field on every dialect that takes extra fields and `<lora:name:scale>` in
 * the prompt text reach the GenerationRequest resolved and the prompt without its tags; a LoRA that is not in the
 * models directory's loras/ folder, or a scale out of range, is refused in the dialect's own error shape before
 * anything is generated or charged.
 */
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { extractLoraTags } from "../../src/dialects/_shared/lora-fields.ts";
import { AUTH, expectOk, expectRejected, makeApp } from "./helpers.ts";

describe("LoRAs in requests", async () => {
  const models = mkdtempSync(join(tmpdir(), "easel-loras-"));
  mkdirSync(join(models, "loras"));
  // The dialects only check that the file is there; what is in it is the engine's business (lora.test.ts).
  for (const n of ["ink", "pixel art"]) writeFileSync(join(models, "loras", `${n}.safetensors`), "x");
  const { app, images } = await makeApp({ keys: { "sk-test": 1000 } }, { models: { dir: models } });
  after(() => rmSync(models, { recursive: true, force: true }));

  test("A1111's prompt syntax: tags out of the text, in order, scale 1 when absent", () => {
    assert.deepEqual(extractLoraTags("a castle <lora:ink:0.6>, at night <lora:pixel art> <LORA:ink:-1.5>"), {
      prompt: "a castle, at night",
      loras: [
        { name: "ink", scale: 0.6 },
        { name: "pixel art", scale: 1 },
        { name: "ink", scale: -1.5 },
      ],
    });
    assert.deepEqual(extractLoraTags("no tags <here>"), { prompt: "no tags <here>", loras: [] });
  });

  test("OpenAI: the loras field and prompt tags together, body first", async () => {
    await expectOk(app, {
      url: "/v1/images/generations",
      payload: { model: "sd15", size: "512x512", prompt: "a fox <lora:ink:0.5>", loras: [{ name: "pixel art", scale: 0.8 }, { name: "ink" }] },
      headers: AUTH,
    });
    const req = images.calls.at(-1)!.req;
    assert.equal(req.prompt, "a fox");
    assert.deepEqual(req.loras, [
      { name: "pixel art", scale: 0.8 },
      { name: "ink", scale: 1 },
      { name: "ink", scale: 0.5 },
    ]);
  });

  test("Monica, Playground and Segmind take the same field", async () => {
    await expectOk(app, { url: "/v1/image/gen/sd", payload: { model: "sdxl", prompt: "a fox", loras: [{ name: "ink", scale: 0.3 }] }, headers: AUTH });
    assert.deepEqual(images.calls.at(-1)!.req.loras, [{ name: "ink", scale: 0.3 }]);
    await expectOk(app, { url: "/v1/playground-v2.5", payload: { prompt: "a fox <lora:ink:0.7>" }, headers: { "x-api-key": "sk-test" } });
    assert.deepEqual(images.calls.at(-1)!.req.loras, [{ name: "ink", scale: 0.7 }]);
  });

  test("A1111: <lora:name:scale> in the prompt", async () => {
    await expectOk(app, { url: "/sdapi/v1/txt2img", payload: { prompt: "a fox <lora:pixel art:0.4>", steps: 4, width: 512, height: 512 }, headers: AUTH });
    const req = images.calls.at(-1)!.req;
    assert.equal(req.prompt, "a fox");
    assert.deepEqual(req.loras, [{ name: "pixel art", scale: 0.4 }]);
    await expectRejected(app, images, { url: "/sdapi/v1/txt2img", payload: { prompt: "a fox <lora:nope:1>", steps: 4 }, headers: AUTH }, 422);
  });

  test("unknown names, paths and scales out of range are refused before admission", async () => {
    const missing = await expectRejected(app, images, { url: "/v1/images/generations", payload: { model: "sd15", prompt: "a fox", loras: [{ name: "nope" }] }, headers: AUTH }, 400);
    const e = missing.body.error as { param: string; message: string };
    assert.equal(e.param, "loras");
    assert.match(e.message, /no LoRA named "nope" .*there: ink, pixel art/);
    await expectRejected(app, images, { url: "/v1/images/generations", payload: { model: "sd15", prompt: "a fox <lora:../ink:1>" }, headers: AUTH }, 400);
    await expectRejected(app, images, { url: "/v1/images/generations", payload: { model: "sd15", prompt: "a fox", loras: [{ name: "ink", scale: 50 }] }, headers: AUTH }, 400);
    await expectRejected(app, images, { url: "/v1/images/generations", payload: { model: "sd15", prompt: "a fox <lora:ink:lots>" }, headers: AUTH }, 400);
  });
});
